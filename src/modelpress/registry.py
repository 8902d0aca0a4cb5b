"""The stage registry: YAML stage names → (config class, pure apply function).

Adding a technique is one module in steps/ that calls :func:`register_stage`; the recipe
schema, the CLI's ``stages`` listing and the pipeline builder all read from here, so nothing
else changes. Stage modules must stay cheap to import (heavy imports inside ``apply``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from .strict_fields import StrictModel

if TYPE_CHECKING:
    from .context import StageContext

# The rooms shipped with modelpress; importing each registers its stages.
BUILTIN_STAGE_MODULES = (
    "modelpress.steps.prune",
    "modelpress.steps.lowrank",
    "modelpress.steps.quantize",
    "modelpress.steps.distill",
    "modelpress.steps.finetune",
)

#: "module" stages map a torch.nn.Module to a torch.nn.Module and run before export;
#: "graph" stages map an exported onnx.ModelProto to another and run after it.
StageKind = Literal["module", "graph"]


class StageConfig(StrictModel):
    """Base for every stage config: unknown keys are errors, never silently ignored; booleans
    are never numbers and inf/nan never pass a bound (strict_fields.py)."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    config: type[StageConfig]
    apply: Callable[[Any, Any, "StageContext"], Any]
    kind: StageKind
    summary: str


_STAGES: dict[str, StageSpec] = {}
_builtins_loaded = False


def register_stage(
    name: str, config: type[StageConfig], kind: StageKind, summary: str
) -> Callable[[Callable], Callable]:
    """Decorator registering ``apply(model, config, context) -> model`` under ``name``."""

    def decorate(apply: Callable) -> Callable:
        existing = _STAGES.get(name)
        if existing is not None and existing.apply is not apply:
            if existing.apply.__module__ != apply.__module__:
                raise ValueError(f"stage {name!r} is already registered by {existing.apply.__module__}")
        _STAGES[name] = StageSpec(name, config, apply, kind, summary)
        return apply

    return decorate


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_STAGE_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def stages() -> dict[str, StageSpec]:
    """All registered stages by name (built-in rooms are imported on first use)."""
    _load_builtins()
    return dict(_STAGES)


def get_stage(name: str) -> StageSpec:
    known = stages()
    if name not in known:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(sorted(known))}")
    return known[name]
