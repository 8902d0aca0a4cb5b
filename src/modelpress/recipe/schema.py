"""The recipe: a declarative description of one compression pipeline.

A recipe is YAML validated by pydantic (``extra="forbid"`` everywhere). Its ``model:``
(sources), ``data:`` (data sources), task, ``stages:`` and ``export:`` (builds) are unions
generated from the registries, so a new kind needs no edit here. Every problem is reported at
once with its field path (``stages[1].quantize.bits: ...``) by :func:`load_recipe`, before any
data or model is touched; relative paths are relative to the recipe's folder.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from modelpress.core.errors import ModelpressError, RecipeError
from modelpress.core.files import resolve_path
from modelpress.core.registry import BUILDS, DATASETS, SOURCES, TASKS, RecipeFacts, get_stage, stages
from modelpress.core.safe_yaml import load_recipe_yaml
from modelpress.core.strict_fields import ignored_problems
from modelpress.recipe.gate_bounds import contradictions
from modelpress.settings.blocks import Drift, ModelRegistrySettings, Resources, Schedule, Statistics, Strict, Threshold
from modelpress.settings.search import SearchSpec, search_problems
from modelpress.sources.zoo import BaselineTraining
from modelpress.tasks import get_task

PIPELINE_STEPS = ("load_data", "validate_data", "load_model", "evaluate_baseline",
                  "export_onnx", "evaluate_candidate")
SHIPPED_RECIPES_PACKAGE = "modelpress.recipes"
__all__ = ["BaselineTraining", "RecipeBase", "load_recipe", "validate_recipe"]


def _existing_path(value: Path | None, info: ValidationInfo) -> Path | None:
    return None if value is None else resolve_path(value, info)


# --- registry-backed unions: stages and builds (`- name: {config}`), model sources -----------

class Entry(Strict):
    """One ``- name: {config}`` item of ``stages:`` or ``export:``; subclasses are generated."""

    @property
    def name(self) -> str:
        return next(iter(type(self).model_fields))

    @property
    def config(self) -> Any:
        return getattr(self, self.name)


StageEntry = Entry  # kept for callers that type stage items


def _entry_tag(value: Any) -> str | None:
    if isinstance(value, Entry):
        return value.name
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    return None


@functools.cache
def _entry_class(name: str, config: type[BaseModel]) -> type[Entry]:
    fields: dict[str, Any] = {name: (config, ...)}
    return create_model(f"{name.title().replace('-', '')}Entry", __base__=Entry, **fields)


def _entry_union(configs: dict[str, type[BaseModel]]) -> Any:
    members = [Annotated[_entry_class(name, config), Tag(name)] for name, config in sorted(configs.items())]
    return Annotated[Union[tuple(members)], Discriminator(_entry_tag)]  # noqa: UP007  # members known at runtime only


def _bare_names(items: Any) -> Any:
    """``- quantize`` and ``- quantize:`` (no config) both mean "defaults"."""
    if not isinstance(items, list):
        return items
    return [{item: {}} if isinstance(item, str)
            else {k: ({} if v is None else v) for k, v in item.items()} if isinstance(item, dict)
            else item for item in items]


#: what a ``stages:``/``export:`` item names, for errors about unknown names
ENTRY_KINDS = {"stages": "stage", "export": "build"}


def _unknown_entry(loc: tuple[Any, ...], err: dict[str, Any]) -> str | None:
    """The readable error for an item of ``stages:``/``export:`` that names no registered kind."""
    kind = ENTRY_KINDS.get(loc[0]) if loc else None
    if kind is None or err["type"] not in ("union_tag_invalid", "union_tag_not_found"):
        return None

    known = ", ".join(sorted(stages() if kind == "stage" else BUILDS.all()))
    tag = (err.get("ctx") or {}).get("tag")
    if tag is None:
        return f"expected '<{kind}>: {{config}}' with a known {kind}; known {kind}s: {known}"
    return f"unknown {kind} {tag!r}; known {kind}s: {known}"


@functools.cache
def _unions() -> tuple[Any, Any, Any, Any]:

    stage_union = _entry_union({n: s.config for n, s in stages().items()})
    build_union = _entry_union(dict(BUILDS.all()))
    return stage_union, build_union, _source_union("model", SOURCES.all()), _source_union("data", DATASETS.all())


def _source_union(block: str, kinds: Mapping[str, type[BaseModel]]) -> Any:
    """The registered configs of ``model:`` or ``data:``, told apart by their ``source:``."""
    members = tuple(Annotated[cls, Tag(name)] for name, cls in sorted(kinds.items()))
    return Annotated[Union[members], Discriminator(  # noqa: UP007  # members known at runtime only
        _source_tag, custom_error_type="unknown_source",
        custom_error_message=f"expected {block}.source to be one of " + ", ".join(sorted(kinds)))]


def _known_kind(value: Any, block: str, kind: str, kinds: Mapping[str, Any]) -> Any:
    """``value`` when its ``source:`` names a registered kind; else one line listing them."""
    source = _source_tag(value)
    if isinstance(value, dict) and source not in kinds:
        raise ValueError(f"{block}.source: unknown {kind} {source!r}; known {kind}s: {', '.join(sorted(kinds))}")
    return value


def _source_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return getattr(value, "source", None)
    tag = value.get("source") if isinstance(value, dict) else None
    return tag if tag is None or isinstance(tag, str) else repr(tag)  # a list is no name (nor hashable)


# --- the recipe ----------------------------------------------------------------------------

class RecipeBase(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    model: Any  # a registered Source (the concrete Recipe types it with the source union)
    data: Any  # a registered Dataset (the concrete Recipe types it with the data source union)
    stages: list[Entry] = Field(min_length=1)
    gate: dict[str, Threshold] = {}
    statistics: Statistics = Statistics()  # how the gate and promotion judge a difference
    # names → entries; none given: the build the task registers (RecipeBase.builds), so a dumped
    # recipe re-validates for every task (a default of [onnx] would be refused for a causal LM)
    export: list[Entry] = Field([], validate_default=True)
    registry: ModelRegistrySettings
    resources: dict[str, Resources] = {}
    schedule: Schedule | None = None
    drift: Drift = Drift()
    search: SearchSpec | None = None
    peers: Path | None = Field(None, description="benchmark JSON (name, accuracy, size_mb, latency_ms) "
                               "drawn in the gate report's Pareto plot")

    _peers_exist = field_validator("peers")(_existing_path)

    @field_validator("model", mode="before")
    @classmethod
    def _known_source(cls, value: Any) -> Any:

        return _known_kind(value, "model", "source", SOURCES.all())

    @field_validator("data", mode="before")
    @classmethod
    def _known_data_source(cls, value: Any) -> Any:

        return _known_kind(value, "data", "data source", DATASETS.all())

    _stage_names = field_validator("stages", mode="before")(_bare_names)
    _build_names = field_validator("export", mode="before")(_bare_names)

    # --- what the recipe resolves to -------------------------------------------------------

    @property
    def task(self) -> str:
        return self.task_config.name

    @functools.cached_property
    def task_config(self) -> Any:
        """The task's options (a TaskConfig): ``model.task``, else the task the model was built for."""
        return resolve_task(self.model)

    @property
    def task_class(self) -> Any:
        return get_task(self.task)

    @functools.cached_property
    def builds(self) -> list[Entry]:
        """``export:`` as given, led by the build the task registers (onnx for the classifiers)
        when no listed build registers the version."""

        given = list(self.export)
        if any(b.config.registers for b in given):
            return given
        name = self.task_class.registered_build
        config: type[BaseModel] = BUILDS.get(name)
        return [_entry_class(name, config).model_validate({name: {}}), *given]

    @model_validator(mode="after")
    def _cross_rules(self, info: ValidationInfo) -> RecipeBase:
        try:
            task = self.task_class
        except (ModelpressError, KeyError) as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        problems = [*_model_problems(self, task), *_stage_problems(self, task), *_build_problems(self, task)]
        if (info.context or {}).get("as_written", True):  # what the user wrote: nothing is ignored
            problems += ignored_problems(self, "")
        steps = {s.name for s in self.stages} | set(PIPELINE_STEPS)
        problems += [f"resources.{key}: no such stage or step; have: {', '.join(sorted(steps))}"
                     for key in self.resources if key not in steps]
        problems += _data_problems(self, task) + _gate_problems(self, task)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def resolve_task(model: Any) -> Any:
    """The TaskConfig for a source: its ``task`` (a name or ``{name, options}``), else its model's."""

    chosen = model.task
    if chosen is None:
        chosen = model.facts().task
        if chosen is None:
            raise ModelpressError(f"model.task: required for source {model.source} "
                                  f"(one of {', '.join(TASKS)})")
    raw = {"name": chosen} if isinstance(chosen, str) else dict(chosen)
    name = raw.get("name")
    if not isinstance(name, str) or name not in TASKS.all():
        raise ModelpressError(f"model.task: unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    try:
        return TASKS.get(str(name)).Config.model_validate(raw)
    except ValidationError as exc:
        raise ModelpressError("; ".join(f"model.task.{_readable_loc(e['loc'])}: {e['msg']}"
                                        for e in exc.errors(include_url=False))) from None


def _model_problems(recipe: RecipeBase, task: Any) -> list[str]:
    """The source's own checks, and what its artifact lets the stages do."""

    source = recipe.model
    problems = [*source.problems(task), *task.source_problems(recipe.task_config, source)]
    for index, stage in enumerate(recipe.stages):
        kind = get_stage(stage.name).kind
        where = f"stages[{index}].{stage.name}"
        if kind == "graph" and task.evaluated_in != "onnx":
            problems.append(f"{where}: a graph stage works on the exported ONNX graph, but a {task.name} model "
                            "is evaluated and registered as a PyTorch module; use a module stage")
        elif source.artifact == "graph" and kind == "module":
            problems.append(f"{where}: model.source {source.source} gives an ONNX graph; only graph stages "
                            "(quantize) can follow it")
        elif source.artifact == "scripted" and (why := stage.config.needs_eager()):
            problems.append(f"{where}: {why}, which a TorchScript model cannot take; use source "
                            "state-dict (weights + class) for it")
    return problems


def _stage_problems(recipe: RecipeBase, task: Any) -> list[str]:
    problems: list[str] = []
    kinds = [get_stage(s.name).kind for s in recipe.stages]
    if "graph" in kinds and "module" in kinds[kinds.index("graph"):]:
        problems.append("stages: a graph stage (applied to the exported ONNX) must come after "
                        "every module stage; order: "
                        + ", ".join(f"{s.name}({k})" for s, k in zip(recipe.stages, kinds, strict=True)))
    facts = RecipeFacts(task=task, source=recipe.model, stages=tuple(recipe.stages))
    for index, stage in enumerate(recipe.stages):
        where = f"stages[{index}].{stage.name}"
        problems += [f"{where}: {p}" for p in stage.config.recipe_problems(facts)]
        problems += missing_extras(stage.config.required_modules(), where)
    return problems


def missing_extras(modules: dict[str, str], where: str) -> list[str]:
    """One problem per Python module that is not installed, naming the pip install that fixes it."""
    return [f'{where}: needs the Python package {module!r}, which is not installed: '
            f'pip install "modelpress[{extra}]"'
            for module, extra in modules.items() if importlib.util.find_spec(module) is None]


def _build_problems(recipe: RecipeBase, task: Any) -> list[str]:
    facts = RecipeFacts(task=task, source=recipe.model, stages=tuple(recipe.stages))
    registering = [b.name for b in recipe.builds if b.config.registers]
    problems = [] if len(registering) == 1 else [
        f"export: exactly one build registers the version ({task.registered_build} for a {task.name} model); "
        f"got {', '.join(registering) or 'none'}"]
    for index, build in enumerate(recipe.builds):
        problems += [f"export[{index}].{build.name}: {p}" for p in build.config.problems(facts)]
    return problems


def _data_problems(recipe: RecipeBase, task: Any) -> list[str]:
    schema = recipe.data.describe()
    if not task.takes(schema.kind):
        return [f"data: a {task.name} model needs {task.data_kind} data, but data.source "
                f"{recipe.data.source} gives {schema.kind}"]
    if task.labelled and not schema.labelled:
        return [f"data.label: a {task.name} model learns from labels; data.source {recipe.data.source} "
                "gives none (name the label column)"]
    if recipe.data.split.sized and not task.sized_splits:
        return [f"data.split: eval and calibration in sequences or tokens are for models that read tokens "
                f"(causal-lm); a {task.name} model takes fractions or row counts"]
    facts = recipe.model.facts()
    problems = recipe.data.problems() + task.data_problems(recipe.data, schema, facts)
    if task.labelled and (facts.labels is not None or facts.num_labels is not None):
        problems += _label_problems(schema.source, facts, recipe.data.declared_labels())
    return problems


def _label_problems(data: str, facts: Any, labels: tuple[Any, ...] | None) -> list[str]:
    """The model's classes (HF ``id2label``) must cover the data's labels, in a known order."""
    if labels is None:
        return []
    where = f"data.label ({data})"
    if facts.labels is not None:
        missing = [str(label) for label in labels if str(label) not in facts.labels]
        if missing:
            return [f"{where}: label(s) {', '.join(missing)} are not classes of the model "
                    f"(its id2label: {', '.join(facts.labels)})"]
        return []
    if facts.num_labels is not None and len(labels) > facts.num_labels:
        return [f"{where}: {len(labels)} labels but the model has {facts.num_labels} outputs"]
    return []


def _gate_problems(recipe: RecipeBase, task: Any) -> list[str]:
    available = [m.name for m in task.configured_metrics(recipe.task_config)]
    unknown = [m for m in recipe.gate if m not in available]
    # a name of the task's own making (a causal LM's tasks.NAME.acc) with no such task configured
    unmade = [m for m in unknown if task.dynamic_metric(m) is not None]
    made = [m for m in available if task.dynamic_metric(m) is not None]
    problems = [f"gate.{m}: model.task configures no task that measures it; configured: "
                f"{', '.join(made) or 'none'}" for m in unmade]
    if len(unknown) > len(unmade):
        problems.append(f"gate: a {task.name} model cannot produce {', '.join(m for m in unknown if m not in unmade)}; "
                        f"available: {', '.join(available)}")
    if problems:
        return problems
    problems = contradictions(recipe.gate, task, recipe.registry.tolerance)
    if recipe.search is not None:
        problems += search_problems(recipe.search, recipe.stages, task)
    return problems


@functools.cache
def recipe_model() -> type[RecipeBase]:
    """The concrete Recipe class, typed by the current stage, build, source and data source registries."""
    stage_union, build_union, source_union, data_union = _unions()
    return create_model("Recipe", __base__=RecipeBase, model=(source_union, ...), data=(data_union, ...),
                        stages=(list[stage_union], Field(min_length=1)),  # type: ignore[valid-type]  # runtime unions
                        export=(list[build_union], Field([], validate_default=True)))  # type: ignore[valid-type]


Recipe = RecipeBase  # for type hints: every recipe is a RecipeBase
#: the top-level fields every dump of a recipe spells out (no user writes `peers: null`)
DUMPED_FIELDS = frozenset(RecipeBase.model_fields) - {"search"}


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

    path = resolve_recipe_path(ref)
    raw = load_recipe_yaml(path)  # plain data only; size, depth and alias bombs refused
    if not isinstance(raw, dict):
        raise RecipeError(str(path), [f"a recipe is a YAML mapping, got {type(raw).__name__}"])
    return validate_recipe(raw, source=str(path), base=path.resolve().parent)


def validate_recipe(raw: dict[str, Any], source: str = "<recipe>", base: Path | None = None,
                    as_written: bool | None = None) -> RecipeBase:
    """Validate ``raw``; relative paths resolve against ``base`` (the recipe's folder), then the cwd.

    ``as_written``: ``raw`` is what a user wrote, so a field it sets that would have no effect is
    an error (``strict_fields.ignored_problems``). False for recipes modelpress made from one it
    checked: a search candidate (a grid value may make a written field moot: ``algorithm: rtn``
    beside ``calibration.samples``) or a dump. None: False for a dump, which spells out every
    top-level field (``peers: null``, ``drift``, … as ``model_dump`` writes them; the
    ``recipe/recipe.json`` of a registered version; a search candidate drops ``search``), else True.
    """
    if as_written is None:
        as_written = not DUMPED_FIELDS <= set(raw)
    try:
        return recipe_model().model_validate(raw, context={"base": base, "as_written": as_written})
    except ValidationError as exc:
        raise RecipeError(source, format_errors(exc)) from None


def format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = _readable_loc(err["loc"])
        msg = _unknown_entry(err["loc"], dict(err)) or err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        if "\n" in msg or (not loc and ":" in msg.split(" ")[0]):  # cross rules carry their own paths
            problems += msg.splitlines()
        elif loc in ("model", "data") and msg.startswith(f"{loc}."):  # the source validators name the field
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
