"""Finding the module at fault when a forward pass or a trace breaks, and the output layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError
from modelpress.tasks import split_outputs

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.tasks import Task


def module_kinds(layers: str) -> tuple[type, ...]:
    from torch import nn

    return {
        "linear": (nn.Linear,),
        "conv": (nn.Conv1d, nn.Conv2d),
        "all": (nn.Linear, nn.Conv1d, nn.Conv2d),
    }[layers]


def layers_of(model: nn.Module, layers: str) -> dict[str, nn.Module]:
    """The model's prunable layers by name; a TorchScript module's are matched by the class
    they were scripted from (``original_name``), as scripted submodules are not nn.Linear."""
    import torch

    kinds = module_kinds(layers)
    names = {kind.__name__ for kind in kinds}
    return {name: m for name, m in model.named_modules()
            if isinstance(m, kinds) or (isinstance(m, torch.jit.ScriptModule) and m.original_name in names)}


@contextlib.contextmanager
def trace_errors(model: nn.Module, what: str) -> Iterator[None]:
    """Re-raise a failure inside ``model``'s forward as a ModelpressError naming the module."""
    stack: list[str] = []
    failed: list[str] = []
    names = {m: name for name, m in model.named_modules()}

    def enter(module: nn.Module, _inputs: tuple) -> None:
        stack.append(names.get(module, type(module).__name__))

    def leave(module: nn.Module, _inputs: tuple, _outputs: object) -> None:
        if stack:
            stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    handles += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        yield
    except ModelpressError:
        raise
    except Exception as error:
        failed = stack[-1:] or ["<model>"]
        raise ModelpressError(
            f"prune: {what} failed in module {failed[0] or '<root>'!r} "
            f"({type(error).__name__}: {error})"
        ) from error
    finally:
        for h in handles:
            h.remove()


def output_layer(model: nn.Module, example: dict[str, torch.Tensor], task: Task) -> nn.Module | None:
    """The Linear/Conv whose output *is* the logits (identity check), else the last one run."""
    import torch

    seen: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [
        m.register_forward_hook(lambda mod, _i, out: seen.append((mod, out)))
        for m in model.modules()
        if isinstance(m, module_kinds("all"))
    ]
    try:
        with torch.no_grad():
            logits, _ = split_outputs(task.call(model, example))
    finally:
        for h in handles:
            h.remove()
    for module, out in reversed(seen):
        if out is logits:
            return module
    return seen[-1][0] if seen else None


def returns_embedding(model: nn.Module, example: dict[str, torch.Tensor], task: Task) -> bool:
    import torch

    with torch.no_grad():
        out = task.call(model, example)
    return isinstance(out, (tuple, list)) and len(out) > 1
