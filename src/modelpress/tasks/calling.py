"""How a model takes a task's inputs: the one place that decides, from the model's own signature.

A task's batches are keyed by the inputs' Hugging Face names (``input_ids``, ``attention_mask``,
``token_type_ids``, ``pixel_values``; ``features`` for a row of numbers). Models are written
every which way: a Hugging Face model takes those names as keywords, a torchvision-style or
tutorial module takes ``forward(self, x)``, a TorchScript module has a schema, an exported graph
has input names. :func:`bind` matches the two once per call site:

1. **by name** when the model names every input the task requires (Hugging Face models, and
   modules written with the task's names); an optional input (``token_type_ids``) is passed
   only when the model takes it and the batch has it;
2. **by position** when the model takes exactly as many required positional arguments as the
   task has required inputs (``forward(self, x)``, ``forward(self, ids, mask)``), in the task's
   order;
3. otherwise one line says what the model takes and what the task gives.

The ONNX export names its graph inputs after the bound argument names (``x`` for
``forward(self, x)``), and evaluation, calibration and serving feed graphs through the same
rule, so a graph and the module it came from are fed alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Parameter:
    """One argument a model (or graph) takes."""

    name: str
    positional: bool = True  # can be given by position
    keyword: bool = True  # can be given by name
    required: bool = True  # has no default


@dataclass(frozen=True)
class Signature:
    """What a model takes: its named arguments in order, and whether it takes ``*args``/``**kwargs``."""

    parameters: tuple[Parameter, ...]
    var_positional: bool = False
    var_keyword: bool = False

    def describe(self) -> str:
        names = [p.name if p.required else f"{p.name}=…" for p in self.parameters]
        names += ["*args"] * self.var_positional + ["**kwargs"] * self.var_keyword
        return f"({', '.join(names)})"


@dataclass(frozen=True)
class Binding:
    """Which batch input feeds which of the model's arguments, and how they are passed."""

    names: tuple[str, ...]  # the model's argument names (a graph's input names), in call order
    keys: tuple[str, ...]  # the batch input fed to each
    by_name: bool

    def arguments(self, batch: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` to call the model with."""
        if self.by_name:
            return (), {name: batch[key] for name, key in zip(self.names, self.keys)}
        return tuple(batch[key] for key in self.keys), {}

    def feeds(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch keyed by the model's argument names (an ONNX Runtime feed dict)."""
        return {name: batch[key] for name, key in zip(self.names, self.keys)}

    def call(self, model: Any, batch: Mapping[str, Any]) -> Any:
        args, kwargs = self.arguments(batch)
        return model(*args, **kwargs)


def bind(signature: Signature, required: Sequence[str], optional: Sequence[str],
         available: Iterable[str], what: str = "the model") -> Binding:
    """Match a task's inputs (``required`` always in the batch, ``optional`` when ``available``)
    to ``signature``; raise one line when they cannot be matched."""
    available = set(available)
    keyword = {p.name: p for p in signature.parameters if p.keyword}
    if required and all(name in keyword for name in required):
        wanted = set(required) | {name for name in optional if name in available}
        names = tuple(p.name for p in signature.parameters if p.name in wanted)
        binding = Binding(names, names, by_name=True)
    else:
        binding = _positional(signature, tuple(required), what)
    unfed = [p.name for p in signature.parameters if p.required and p.name not in binding.names]
    if unfed:
        raise ModelpressError(f"{what} takes {signature.describe()}, and {', '.join(unfed)} has no input "
                              f"to feed it: the task gives {', '.join(required)}")
    return binding


def _positional(signature: Signature, required: tuple[str, ...], what: str) -> Binding:
    positional = [p for p in signature.parameters if p.positional]
    needed = [p for p in positional if p.required]
    if len(needed) == len(required) or (not needed and len(positional) >= len(required)):
        return Binding(tuple(p.name for p in positional[:len(required)]), required, by_name=False)
    if not positional and signature.var_positional:  # forward(self, *inputs): the task's order
        return Binding(required, required, by_name=False)
    raise ModelpressError(f"{what} takes {signature.describe()}, but the task gives {', '.join(required)}: "
                          f"name its forward arguments {', '.join(required)}, or take "
                          f"{len(required)} input{'s' if len(required) > 1 else ''} by position in that order")


def signature_of(model: nn.Module) -> Signature:
    """The signature of what ``model`` finally runs: wrappers that pass ``*args, **kwargs`` through
    (DistributedDataParallel, PEFT, ``torch.compile``) are looked through to the module they wrap."""
    import torch

    model = unwrapped(model)
    if isinstance(model, torch.jit.ScriptModule):
        return _script_signature(model)
    try:
        found = inspect.signature(model.forward)
    except (TypeError, ValueError):  # a builtin or C-implemented forward: take inputs by position
        return Signature((), var_positional=True)
    return _python_signature(found)


def unwrapped(model: nn.Module) -> nn.Module:
    """The innermost module behind pass-through wrappers."""
    for _ in range(8):  # wrappers nest a few deep at most (DDP around PEFT around the model)
        inner = _wrapped_module(model)
        if inner is None:
            return model
        model = inner
    return model


def _wrapped_module(model: nn.Module) -> nn.Module | None:
    from torch import nn

    base = getattr(model, "get_base_model", None)  # PEFT's PeftModel: forward(*args, **kwargs)
    if callable(base):
        inner = base()
        return inner if isinstance(inner, nn.Module) and inner is not model else None
    if _passes_through(model):
        for attribute in ("module", "_orig_mod"):  # DistributedDataParallel/DataParallel, torch.compile
            inner = getattr(model, attribute, None)
            if isinstance(inner, nn.Module):
                return inner
    return None


def _passes_through(model: nn.Module) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = {p.kind for p in parameters}
    return kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


def _python_signature(found: inspect.Signature) -> Signature:
    kind = inspect.Parameter
    parameters = tuple(
        Parameter(p.name, positional=p.kind in (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD),
                  keyword=p.kind in (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY),
                  required=p.default is kind.empty)
        for p in found.parameters.values() if p.kind not in (kind.VAR_POSITIONAL, kind.VAR_KEYWORD))
    kinds = {p.kind for p in found.parameters.values()}
    return Signature(parameters, kind.VAR_POSITIONAL in kinds, kind.VAR_KEYWORD in kinds)


def _script_signature(model: Any) -> Signature:
    """A TorchScript module's forward schema (its first argument is ``self``)."""
    arguments = model.forward.schema.arguments[1:]
    return Signature(tuple(Parameter(a.name, positional=not a.kwarg_only, required=not a.has_default_value())
                           for a in arguments))


def graph_signature(input_names: Sequence[str]) -> Signature:
    """An exported graph takes each of its inputs, all required, by name or in order."""
    return Signature(tuple(Parameter(name) for name in input_names))
