"""The recipe: a declarative description of one compression pipeline.

A recipe is YAML validated by pydantic (``extra="forbid"`` everywhere). Stage entries are a
tagged union built from the stage registry, so a new technique needs no edit here. Every
problem is reported at once with its field path (``stages[1].quantize.bits: ...``) by
:func:`load_recipe`, before any data or model is touched.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .errors import RecipeError
from .search import SearchSpec
from .strict_fields import StrictModel

TaskName = Literal["image-classification", "text-classification"]

# What each task can measure; gate thresholds must name one of these (checked at load).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "image-classification": (
        "accuracy", "f1", "agreement", "cosine", "size_mb", "latency_ms", "latency_p95_ms",
        "peak_memory_mb",
    ),
    "text-classification": (
        "accuracy", "f1", "agreement", "cosine", "size_mb", "latency_ms", "latency_p95_ms",
        "peak_memory_mb",
    ),
}
PIPELINE_STEPS = ("load_data", "validate_data", "load_model", "evaluate_baseline",
                  "export_onnx", "evaluate_candidate")
SHIPPED_RECIPES_PACKAGE = "modelpress.recipes"


class Strict(StrictModel):
    """extra="forbid", frozen; booleans are never numbers, inf/nan never pass (strict_fields.py)."""


def _existing_path(value: Path | None) -> Path | None:
    if value is None:
        return None
    if not Path(value).expanduser().exists():
        raise ValueError(f"no such file or folder: '{value}'")
    return Path(value).expanduser().resolve()


# --- model sources -------------------------------------------------------------------------

class BaselineTraining(Strict):
    """How a package model's task head (or a shipped CNN) is trained to form the baseline."""

    epochs: int = Field(3, ge=1, le=100)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)


class PackageModel(Strict):
    """A model whose architecture/weights ship in an installed package (see `modelpress.zoo`)."""

    source: Literal["package"]
    name: str
    task: TaskName | None = None
    baseline: BaselineTraining = BaselineTraining()

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from .zoo import ZOO

        if name not in ZOO:
            raise ValueError(f"unknown package model {name!r}; known: {', '.join(sorted(ZOO))}")
        return name


class FileModel(Strict):
    """A whole ``torch.save``-d nn.Module (``.pt``) on local disk."""

    source: Literal["file"]
    path: Path
    task: TaskName

    _exists = field_validator("path")(_existing_path)


class MlflowModel(Strict):
    """A registered MLflow model, e.g. ``models:/mnist-cnn@champion``."""

    source: Literal["mlflow"]
    uri: str = Field(pattern=r"^(models:/[^/@\s]+(@[\w-]+|/\d+)|runs:/\w+/\S+)$")
    task: TaskName


ModelSource = Annotated[Union[PackageModel, FileModel, MlflowModel], Field(discriminator="source")]


# --- data ----------------------------------------------------------------------------------

class Split(Strict):
    """Fractions (0–1) or row counts for train and eval; calibration rows are drawn from train."""

    train: float = Field(0.7, gt=0)
    eval: float = Field(0.3, gt=0)
    calibration: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _fractions_fit(self) -> "Split":
        if self.train < 1 and self.eval < 1 and self.train + self.eval > 1 + 1e-9:
            raise ValueError(f"train + eval fractions exceed 1 ({self.train} + {self.eval})")
        return self


class _DataBase(Strict):
    split: Split = Split()
    seed: int = 0
    limit: int | None = Field(None, ge=10, description="sample at most this many rows (seeded)")


class ShippedData(_DataBase):
    """A dataset that ships in an installed package (see `modelpress.data.SHIPPED`)."""

    source: Literal["rotten-tomatoes", "mnist-5k", "digits"]


class FileData(_DataBase):
    """A user CSV or Parquet file with a label column and either a text or feature columns."""

    source: Literal["csv", "parquet"]
    path: Path
    label: str
    text: str | None = None
    features: list[str] | None = Field(None, min_length=1)
    image_shape: tuple[int, int, int] | None = Field(None, description="C, H, W of the features")
    labels: list[str | int] | None = Field(None, min_length=2, description="declared label set")

    _exists = field_validator("path")(_existing_path)

    @model_validator(mode="after")
    def _one_input_kind(self) -> "FileData":
        if (self.text is None) == (self.features is None):
            raise ValueError("give exactly one of 'text' (a column) or 'features' (columns)")
        return self


DataSource = Annotated[Union[ShippedData, FileData], Field(discriminator="source")]


# --- gate, export, registry, resources, schedule -------------------------------------------

class Threshold(Strict):
    """Bounds on one metric of the candidate: absolute and relative to the baseline."""

    min: float | None = None
    max: float | None = None
    max_drop: float | None = Field(None, ge=0, description="baseline - candidate, absolute")
    max_relative_drop: float | None = Field(None, ge=0, le=1)
    max_ratio: float | None = Field(None, gt=0, description="candidate / baseline")
    # Relative to the registry's current champion, re-measured on the same eval rows.
    max_champion_drop: float | None = Field(None, ge=0, description="champion - candidate")
    max_champion_ratio: float | None = Field(None, gt=0, description="candidate / champion")

    @model_validator(mode="after")
    def _consistent(self) -> "Threshold":
        # `max_drop: null` is set but bounds nothing: count the bounds that have a value
        if all(getattr(self, bound) is None for bound in type(self).model_fields):
            raise ValueError("a threshold needs at least one of min, max, max_drop, "
                             "max_relative_drop, max_ratio, max_champion_drop, max_champion_ratio")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Registry(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$")
    challenger: str = Field("challenger", pattern=r"^[A-Za-z][\w-]*$")
    promote_to: str | None = Field("champion", pattern=r"^[A-Za-z][\w-]*$")
    tolerance: float = Field(0.0, ge=0, description="accuracy the candidate may lose vs the champion")

    @model_validator(mode="after")
    def _distinct_aliases(self) -> "Registry":
        if self.promote_to == self.challenger:
            raise ValueError(f"challenger and promote_to are both {self.challenger!r}")
        return self


class Resources(Strict):
    """Per-step resources → ZenML ResourceSettings (and optionally a step operator)."""

    cpu: float | None = Field(None, gt=0)
    memory: str | None = Field(None, pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    gpu: int | None = Field(None, ge=0)
    step_operator: str | None = None


class Drift(Strict):
    """How far fresh data may move from the reference (champion's) data before retraining stops."""

    max_label_kl: float = Field(0.1, ge=0, description="KL(fresh labels || reference labels)")
    max_mean_shift: float = Field(0.5, ge=0, description="|mean shift| of row means, in reference std")
    max_out_of_range: float = Field(0.01, ge=0, le=1, description="share of values outside the reference range")


class Schedule(Strict):
    cron: str

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[\d*/,\-A-Za-z?]+", f) for f in fields):
            raise ValueError(f"not a 5-field cron expression: {cron!r}")
        from .schedule import cron_problems

        problems = cron_problems(cron)
        if problems:
            raise ValueError(f"invalid cron expression {cron!r}: " + "; ".join(problems))
        return cron


ExportTarget = Literal["onnx", "triton-repository", "tensorrt"]


# --- stages: a tagged union over the registry ----------------------------------------------

class StageEntry(Strict):
    """One ``- name: {config}`` item; subclasses are generated per registered stage."""

    @property
    def name(self) -> str:
        return next(iter(type(self).model_fields))

    @property
    def config(self) -> Any:
        return getattr(self, self.name)


def _stage_tag(value: Any) -> str | None:
    if isinstance(value, StageEntry):
        return value.name
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    return None


@functools.cache
def _stage_union() -> Any:
    from .registry import stages

    known = stages()
    members = [
        Annotated[create_model(f"{name.title()}Entry", __base__=StageEntry,
                               **{name: (spec.config, ...)}), Tag(name)]
        for name, spec in sorted(known.items())
    ]
    return Annotated[
        Union[tuple(members)],
        Discriminator(
            _stage_tag,
            custom_error_type="unknown_stage",
            custom_error_message="expected '<stage>: {config}' with a known stage; known stages: "
            + ", ".join(sorted(known)),
        ),
    ]


class RecipeBase(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    model: ModelSource
    data: DataSource
    stages: list[StageEntry] = Field(min_length=1)
    gate: dict[str, Threshold] = {}
    export: list[ExportTarget] = ["onnx"]
    registry: Registry
    resources: dict[str, Resources] = {}
    schedule: Schedule | None = None
    drift: Drift = Drift()
    search: SearchSpec | None = None
    peers: Path | None = Field(None, description="benchmark JSON (name, accuracy, size_mb, latency_ms) "
                               "drawn in the gate report's Pareto plot")

    _peers_exist = field_validator("peers")(_existing_path)

    @field_validator("stages", mode="before")
    @classmethod
    def _bare_names(cls, items: Any) -> Any:
        # `- quantize` and `- quantize:` (no config) both mean "defaults".
        if not isinstance(items, list):
            return items
        return [
            {item: {}} if isinstance(item, str)
            else {k: ({} if v is None else v) for k, v in item.items()} if isinstance(item, dict)
            else item
            for item in items
        ]

    @field_validator("gate")
    @classmethod
    def _gate_metrics_exist(cls, gate: dict[str, Threshold], info: ValidationInfo) -> dict[str, Threshold]:
        model = info.data.get("model")
        if model is None:
            return gate  # the model error is reported on its own
        task = _task_of(model)
        unknown = [m for m in gate if m not in TASK_METRICS[task]]
        if unknown:
            raise ValueError(f"a {task} model cannot produce {', '.join(unknown)}; "
                             f"available: {', '.join(TASK_METRICS[task])}")
        return gate

    @property
    def task(self) -> str:
        return _task_of(self.model)

    @model_validator(mode="after")
    def _cross_stage_rules(self) -> "RecipeBase":
        from .registry import get_stage

        problems: list[str] = []
        kinds = [get_stage(s.name).kind for s in self.stages]
        if "graph" in kinds and "module" in kinds[kinds.index("graph"):]:
            problems.append("stages: a graph stage (applied to the exported ONNX) must come after "
                            "every module stage; order: "
                            + ", ".join(f"{s.name}({k})" for s, k in zip(self.stages, kinds)))
        if "onnx" not in self.export:
            problems.append("export: 'onnx' is required (every other target is built from it)")
        steps = {s.name for s in self.stages} | set(PIPELINE_STEPS)
        for key in self.resources:
            if key not in steps:
                problems.append(f"resources.{key}: no such stage or step; have: "
                                f"{', '.join(sorted(steps))}")
        problems += _task_fits_data(self.task, self.data, self.model)
        problems += _gate_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _gate_problems(recipe: "RecipeBase") -> list[str]:
    from .gate import contradictions
    from .search import search_problems

    problems = contradictions(recipe.gate, recipe.registry.tolerance)
    if recipe.search is not None:
        problems += search_problems(recipe.search, recipe.stages, TASK_METRICS[recipe.task])
    return problems


def _task_fits_data(task: str, data: Any, model: Any) -> list[str]:
    from .data import SHIPPED

    if isinstance(data, FileData):
        kind = "text" if data.text else "features"
    else:
        kind = SHIPPED[data.source].kind
    wanted = "text" if task == "text-classification" else "features"
    if kind != wanted:
        return [f"data: a {task} model needs {wanted} data, but data.source gives {kind}"]
    if isinstance(model, PackageModel) and model.task and model.task != _zoo_task(model.name):
        return [f"model.task: package model {model.name!r} is a {_zoo_task(model.name)} model"]
    return []


def _task_of(model: Any) -> str:
    if isinstance(model, PackageModel):
        return model.task or _zoo_task(model.name)
    return model.task


def _zoo_task(name: str) -> str:
    from .zoo import ZOO

    return ZOO[name].task


@functools.cache
def recipe_model() -> type[RecipeBase]:
    """The concrete Recipe class, with ``stages`` typed by the current stage registry."""
    return create_model("Recipe", __base__=RecipeBase, stages=(list[_stage_union()], Field(min_length=1)))


Recipe = RecipeBase  # for type hints: every recipe is a RecipeBase


# --- loading -------------------------------------------------------------------------------

def shipped_recipes() -> dict[str, Path]:
    from importlib.resources import files

    folder = files(SHIPPED_RECIPES_PACKAGE)
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in folder.iterdir()
            if p.name.endswith(".yaml")}


def resolve_recipe_path(ref: str | Path) -> Path:
    """A recipe file path, or the name of a recipe that ships with modelpress."""
    path = Path(ref)
    if path.exists():
        return path
    shipped = shipped_recipes()
    if str(ref) in shipped:
        return shipped[str(ref)]
    raise RecipeError(str(ref), [f"no such recipe file; shipped recipes: {', '.join(sorted(shipped))}"])


def load_recipe(ref: str | Path) -> RecipeBase:
    """Read and validate a recipe; raise :class:`RecipeError` listing every problem."""
    from .safe_yaml import load_recipe_yaml

    path = resolve_recipe_path(ref)
    raw = load_recipe_yaml(path)  # plain data only; size, depth and alias bombs refused
    if not isinstance(raw, dict):
        raise RecipeError(str(path), [f"a recipe is a YAML mapping, got {type(raw).__name__}"])
    return validate_recipe(raw, source=str(path))


def validate_recipe(raw: dict[str, Any], source: str = "<recipe>") -> RecipeBase:
    try:
        return recipe_model().model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(source, format_errors(exc)) from None


def format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = _readable_loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        if "\n" in msg and not loc:  # cross-stage rules carry their own field paths
            problems += msg.splitlines()
        else:
            problems.append(f"{loc}: {msg}" if loc else msg)
    return problems


def _readable_loc(loc: tuple[Any, ...]) -> str:
    parts: list[Any] = list(loc)
    # Discriminated unions put their tag in the path (model.file.path): drop it for the
    # source-tagged fields, and collapse the stage tag that repeats the stage's own key.
    if len(parts) > 2 and parts[0] in ("model", "data"):
        del parts[1]
    out = ""
    for i, part in enumerate(parts):
        if i and part == parts[i - 1] and isinstance(part, str):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
