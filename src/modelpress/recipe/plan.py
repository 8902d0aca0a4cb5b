"""The plan: a recipe resolved against the registries, the one record every pipeline step is built from."""

from __future__ import annotations

from pydantic import JsonValue

from modelpress.core.handoffs import PeerPoint, Record, Ref, StagePlan
from modelpress.settings.blocks import Drift, ModelRegistrySettings, Resources, Statistics, Threshold
from modelpress.tasks.base import TaskSpec


class Plan(Record):
    """Everything the pipeline is built from: the recipe resolved against the registries."""

    name: str
    recipe: dict[str, JsonValue]  # the validated recipe as JSON: logged, hashed, re-run by retraining
    source: Ref
    task: TaskSpec
    data: Ref  # the data source and its config (modelpress.datasets)
    stages: list[StagePlan]
    builds: list[Ref]
    gate: dict[str, Threshold]
    statistics: Statistics = Statistics()  # how the gate and promotion judge a difference
    registry: ModelRegistrySettings
    promotion_tolerance: float = 0.0
    resources: dict[str, Resources] = {}
    drift: Drift = Drift()
    seed: int = 0
    data_fingerprint: str
    model_fingerprint: str
    tracker: str
    experiment: str
    tags: dict[str, str] = {}
    peers: list[PeerPoint] = []
    reference_profile: dict[str, JsonValue] | None = None  # retraining: the champion's data profile
    notes: list[str] = []  # what the report's reader must know about the model (from its source)

    @property
    def has_module_stages(self) -> bool:
        return any(s.kind == "module" for s in self.stages)
