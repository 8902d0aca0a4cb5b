"""``source: package``: a model whose architecture/weights ship in an installed package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator

from modelpress import __version__
from modelpress.core.errors import ModelpressError
from modelpress.core.facts import SourceFacts
from modelpress.core.registry import register_source
from modelpress.sources.base import Source
from modelpress.sources.zoo import ZOO, BaselineTraining

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task


@register_source("package")
class PackageModel(Source):
    """A model from `modelpress.sources.zoo` (``minilm-l6``, ``small-cnn``), trained on the data first."""

    source: Literal["package"] = "package"
    name: str
    baseline: BaselineTraining = BaselineTraining()

    summary = ("a model that ships in an installed package (see `modelpress.sources.zoo`), "
               "baseline-trained unless pretrained")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in ZOO:
            raise ValueError(f"unknown package model {name!r}; known: {', '.join(sorted(ZOO))}")
        return name

    def facts(self) -> SourceFacts:
        entry = ZOO[self.name]
        return SourceFacts(task=entry.task, tokenizer=entry.tokenizer, hf_config=entry.hf_config,
                           notes=entry.notes)

    def problems(self, task: type[Task] | None) -> list[str]:
        entry = ZOO[self.name]
        if task is not None and task.name != entry.task:
            return [f"model.task: package model {self.name!r} is a {entry.task} model"]
        if entry.check_installed is not None:
            try:
                entry.check_installed()
            except ModelpressError as exc:
                return [str(exc)]
        # Left at its defaults (as the dump a version is registered with holds it), it is no error.
        if entry.train_baseline is None and "baseline" in self.model_fields_set and self.baseline != BaselineTraining():
            return [f"model.baseline: package model {self.name!r} is pretrained and used as it loads; "
                    "it has no baseline training to configure"]
        return []

    def fingerprint(self) -> str:
        return f"{self.name}:modelpress=={__version__}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        import torch

        entry = ZOO[self.name]
        torch.manual_seed(0)
        if entry.train_baseline is None:  # pretrained: the model as it ships
            return entry.build(0, None).eval()
        model = entry.build(int(dataset["label"].max()) + 1, task.spec.image_shape)
        entry.train_baseline(model, task, dataset[dataset["split"] == "train"], self.baseline)
        return model.eval()
