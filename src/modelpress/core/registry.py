"""The registries: YAML names → the modules that implement them.

Five extension points, one mechanism. A **stage** (technique), a model **source**, a **task**,
a **build** (export format) and a **dataset** (data source) are each one module that registers
its pydantic config (and, for stages, its pure ``apply`` function) under the name the YAML uses.
The recipe schema, the CLI's listings and the pipeline builder read from here, so a new kind
touches only its module.

A registry finds its built-in kinds by importing every module of its package
(``modelpress.tasks``, ``modelpress.sources``, ``modelpress.datasets``, ``modelpress.deploy.builds``,
the rooms of ``modelpress.steps``), and third-party ones through the entry-point group
``modelpress.<kind>s`` (e.g. ``modelpress.sources``), so adding a kind is adding one module.
Registering modules must stay cheap to import (pydantic only; heavy imports inside functions):
recipe validation imports every one of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from modelpress.core.strict_fields import StrictModel

#: "module" stages map a torch.nn.Module to a torch.nn.Module and run before export;
#: "graph" stages map an exported onnx.ModelProto to another and run after it.
StageKind = Literal["module", "graph"]

Spec = TypeVar("Spec")


class PluginRegistry(Generic[Spec]):
    """Names → specs of one kind; the modules that register them are imported on first use."""

    def __init__(self, kind: str, package: str, group: str):
        self.kind, self._package, self._group = kind, package, group
        self._entries: dict[str, Spec] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False

    def _import_modules(self) -> None:
        from importlib.metadata import entry_points

        package = importlib.import_module(self._package)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")
        for entry in entry_points(group=self._group):
            entry.load()  # a plugin module registers its kinds when imported

    def add(self, name: str, spec: Spec, origin: str) -> None:
        known = self._origins.get(name)
        if known is not None and known != origin:
            raise ValueError(f"{self.kind} {name!r} is already registered by {known}")
        self._entries[name], self._origins[name] = spec, origin

    def all(self) -> dict[str, Spec]:
        if not self._loaded:
            self._loaded = True
            self._import_modules()
        return dict(self._entries)

    def get(self, name: str) -> Spec:
        known = self.all()
        if name not in known:
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(sorted(known))}")
        return known[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.all()))


class StrictConfig(StrictModel):
    """Base of every registered config: unknown keys are errors, never silently ignored;
    booleans are never numbers and inf/nan never pass a bound (strict_fields.py)."""


# --- stages ----------------------------------------------------------------------------------

class StageConfig(StrictConfig):
    """Base for every stage config.

    ``recipe_problems`` lets a stage refuse, at recipe load, a combination it cannot handle
    (a task whose models it cannot rewrite, a source whose modules are frozen); it returns one
    message per problem, without the field path, which the recipe adds.
    """

    def recipe_problems(self, facts: RecipeFacts) -> list[str]:
        return []

    #: Python modules this config needs at run time → the extra that installs them.
    def required_modules(self) -> dict[str, str]:
        return {}

    def calibration_warning(self, sequences: int, tokens_per_sequence: int) -> str | None:
        """Why a calibration split of ``sequences`` packed sequences is too small for this
        configuration (one line with the token count it uses), or None."""
        return None

    def needs_eager(self) -> str | None:
        """Why this configuration needs eager modules (it replaces or reshapes modules, or hooks
        into their calls), or None: a TorchScript model can only take stages that return None."""
        return None


@dataclass(frozen=True)
class RecipeFacts:
    """What a stage or build may know about the rest of the recipe when it is validated.

    Typed loosely, as the registries below are: the kinds' base classes (``Task``, ``Source``,
    ``Build``) live a layer up and import this module, which imports nothing of modelpress's.
    """

    task: type[Any]  # a modelpress.tasks.Task subclass
    source: Any  # a modelpress.sources.Source config
    stages: tuple[Any, ...]  # the recipe's stage entries, in order


@dataclass(frozen=True)
class StageSpec:
    name: str
    config: type[StageConfig]
    apply: Callable[[Any, Any, Any], Any]  # (model, config, StageContext)
    kind: StageKind
    summary: str


STAGES: PluginRegistry[StageSpec] = PluginRegistry("stage", "modelpress.steps", "modelpress.stages")


def register_stage(name: str, config: type[StageConfig], kind: StageKind,
                   summary: str) -> Callable[[Callable], Callable]:
    """Decorator registering ``apply(model, config, context) -> model`` under ``name``."""

    def decorate(apply: Callable) -> Callable:
        STAGES.add(name, StageSpec(name, config, apply, kind, summary), apply.__module__)
        return apply

    return decorate


def stages() -> dict[str, StageSpec]:
    """All registered stages by name (built-in rooms are imported on first use)."""
    return STAGES.all()


def get_stage(name: str) -> StageSpec:
    return STAGES.get(name)


# --- sources, tasks, builds, datasets: the config class (or task class) is the registered spec

SOURCES: PluginRegistry[type[Any]] = PluginRegistry("model source", "modelpress.sources", "modelpress.sources")
TASKS: PluginRegistry[type[Any]] = PluginRegistry("task", "modelpress.tasks", "modelpress.tasks")
BUILDS: PluginRegistry[type[Any]] = PluginRegistry("build", "modelpress.deploy.builds", "modelpress.builds")
#: typed loosely, as the others: the Dataset protocol (modelpress.datasets.base) sits a layer up;
#: modelpress.datasets.base.dataset_kind() gives the registered class as a Dataset
DATASETS: PluginRegistry[type[StrictConfig]] = PluginRegistry("data source", "modelpress.datasets",
                                                             "modelpress.datasets")

Registered = TypeVar("Registered", bound=type)


def _registrar(registry: PluginRegistry[Any], name: str) -> Callable[[Registered], Registered]:
    def decorate(cls: Registered) -> Registered:
        registry.add(name, cls, f"{cls.__module__}.{cls.__qualname__}")
        return cls

    return decorate


def register_source(name: str) -> Callable[[Registered], Registered]:
    """Class decorator: a :class:`~modelpress.sources.Source` config under ``model.source: name``."""
    return _registrar(SOURCES, name)


def register_task(name: str) -> Callable[[Registered], Registered]:
    """Class decorator: a :class:`~modelpress.tasks.Task` under the task name ``name``."""
    return _registrar(TASKS, name)


def register_build(name: str) -> Callable[[Registered], Registered]:
    """Class decorator: a :class:`~modelpress.builds.Build` config under ``export: [name]``."""
    return _registrar(BUILDS, name)


def register_dataset(name: str) -> Callable[[Registered], Registered]:
    """Class decorator: a :class:`~modelpress.datasets.base.Dataset` config under ``data.source: name``."""
    return _registrar(DATASETS, name)


# --- LLM task kinds: how a causal LM is scored on a local task file ---------------------------
#: ``model.task.tasks[].kind`` (multiple-choice, exact-match): the config class is the spec
LM_TASK_KINDS: PluginRegistry[type[StrictConfig]] = PluginRegistry("LLM task kind", "modelpress.lm.scorers",
                                                                  "modelpress.lm_task_kinds")


def register_lm_task_kind(name: str) -> Callable[[Registered], Registered]:
    """Class decorator: a scorer config (``modelpress.lm.scorers``) under ``tasks[].kind: name``."""
    return _registrar(LM_TASK_KINDS, name)
