"""Typed records that cross ZenML steps: the plan, evaluations, verdicts, registrations.

Each is a frozen pydantic model, so ZenML stores it with its pydantic materializer, shows it in
the dashboard and keys its cache on the JSON. Registered kinds (a stage's, a source's, a task's,
a build's or a data source's config) travel as :class:`Ref`: the registered name plus the
config's JSON, which the consuming step validates again with the registered class. Metric
dictionaries are keyed by the names the task declares (``Task.metrics``), never by a list kept here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

Metrics = dict[str, float]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ref(Record):
    """A registered kind by name, with its config as JSON (validated again where it is used)."""

    name: str
    config: dict[str, JsonValue] = {}


class StagePlan(Ref):
    kind: Literal["module", "graph"]
    position: int  # 1-based, as in the step names (stage1_prune)


class Example(Record):
    """One input and what the baseline and the candidate made of it, shown side by side in the
    report (a prompt and its continuations, for a causal LM)."""

    input: str
    baseline: str
    candidate: str
    same: bool  # the two outputs are identical


class Samples(Record):
    """One metric's per-row values for two models scored on the same rows, paired by position.

    The metric is recomputed from them on any resample of the rows (the paired bootstrap), so
    ``statistic`` names how: ``mean`` of the values (accuracy: 1/0 per row), ``ratio`` = Σvalues /
    Σweights, ``exp_ratio`` = exp(Σvalues / Σweights) (perplexity: NLL and tokens per sequence),
    ``median`` (latency: one timing per interleaved round), ``macro_f1`` (values are predicted
    classes, ``labels`` the true ones).
    """

    statistic: Literal["mean", "ratio", "exp_ratio", "median", "macro_f1"]
    baseline: list[float]
    candidate: list[float]
    weights: list[float] | None = None  # per-row denominators of ratio / exp_ratio, shared by both
    labels: list[int] | None = None  # true classes, for macro_f1


class Evaluation(Record):
    """Every metric the task measures, for the baseline and the candidate, on the same eval rows,
    and the examples the task chose to show (``examples_title`` names what they are).

    ``samples`` keeps the per-row values behind a metric where the task has them, so the gate
    can put an interval on a difference instead of comparing two point estimates.

    ``runtimes`` names, per model (``baseline``, ``candidate``), the runtime its speed figures
    (latency, tokens/s) and peak memory were measured on, as it ships: ONNX Runtime for
    classifiers, PyTorch through the packed kernels for quantized LMs."""

    task: str
    baseline: Metrics
    candidate: Metrics
    eval_rows: int
    examples: list[Example] = []
    examples_title: str = "examples"
    samples: dict[str, Samples] = {}
    runtimes: dict[str, str] = {}

    def ratio(self, metric: str) -> float:
        base = self.baseline.get(metric)
        return self.candidate[metric] / base if base else float("nan")


class ChampionReport(Record):
    """The registry's current champion measured beside the candidate (``version`` None: no champion).

    ``error`` is set when a champion exists but could not be measured: the gate then fails its
    champion checks instead of skipping them.
    """

    version: str | None = None
    alias: str | None = None
    metrics: Metrics | None = None
    candidate: Metrics | None = None  # the candidate, timed interleaved with the champion
    error: str | None = None
    samples: dict[str, Samples] = {}  # per-row values: ``baseline`` is the champion's

    @property
    def measured(self) -> bool:
        return self.version is not None and self.metrics is not None


Outcome = Literal["pass", "fail", "inconclusive"]


class Check(Record):
    """One bound on one metric: the estimate (``value``), its interval where the metric has
    per-row samples (``low``/``high`` at ``level``, over ``rows`` paired rows), and the outcome:
    ``inconclusive`` when the interval straddles the bound, with the eval rows that would resolve
    it at the observed spread. ``passed`` is the outcome after ``statistics.on_inconclusive``."""

    metric: str
    rule: str
    limit: float
    value: float | None
    passed: bool
    note: str = ""
    outcome: Outcome | None = None  # None in records written before intervals: read ``passed``
    low: float | None = None
    high: float | None = None
    level: float | None = None
    rows: int | None = None
    rows_needed: int | None = None

    @property
    def result(self) -> Outcome:
        return self.outcome or ("pass" if self.passed else "fail")


class Verdict(Record):
    """All checks; ``inconclusive`` lists the checks whose interval straddled their bound and
    ``on_inconclusive`` what the recipe made of them (fail, pass, or pass with a warning)."""

    passed: bool
    reason: str
    checks: list[Check] = []
    champion_version: str | None = None
    inconclusive: list[str] = []
    on_inconclusive: Literal["fail", "pass", "warn"] | None = None


class Parity(Record):
    """ONNX Runtime against PyTorch on the start of the eval split."""

    agreement: float
    cosine: float
    cosine_min: float
    max_abs_diff: float


class ImageStats(Record):
    """What the image files hold (every one decoded by validate_data)."""

    files: int
    min_width: int
    max_width: int
    min_height: int
    max_height: int
    modes: dict[str, int]  # PIL mode (RGB, L, RGBA, …) → files


class DataReport(Record):
    """What great-expectations checked and how the labels were encoded."""

    success: bool
    expectations: int
    rows: int
    labels: list[str] = []  # class names in index order (empty: the task has no labels)
    rows_per_split: dict[str, int] = {}
    images: ImageStats | None = None  # image files: their sizes and modes
    sizes: dict[str, int] = {}  # a causal LM's splits: calibration_tokens, eval_sequences, ...


class StageReport(Record):
    """Facts a stage reported (logged to MLflow as ``stage.<position>.<stage>.<key>``)."""

    position: int
    stage: str
    facts: dict[str, JsonValue] = {}


class BuildReport(Record):
    """One build written, checked by its consumer and logged under ``builds/<name>/``."""

    name: str
    artifact_path: str | None = None  # None: nothing was written (e.g. TensorRT unavailable)
    model_uri: str | None = None  # the registering build's MLflow model
    checks: dict[str, float] = {}
    notes: list[str] = []


class Registration(Record):
    name: str
    version: str
    run_id: str
    model_uri: str
    aliases: list[str] = []
    builds: list[BuildReport] = []


class Promotion(Record):
    promoted: bool
    reason: str
    name: str
    version: str
    alias: str | None = None
    previous: str | None = None


class PeerPoint(Record):
    """A benchmark point drawn in the gate report's plot (``peers:`` in the recipe)."""

    name: str
    metrics: Metrics = Field(default_factory=dict)
