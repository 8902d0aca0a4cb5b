"""Importance of every weight, from magnitude or from calibration statistics.

All pruning granularities start from one element-wise score per weight; structured pruning sums
it over the rows/columns a unit owns. Keeping one definition means a scorer is tested once
(a planted unimportant neuron must rank lowest) and means the same thing in every granularity:

* ``l1`` / ``l2``: |w| / w²;
* ``taylor``: |w · ∂L/∂w|, first-order estimate of the loss change when w is removed
  (Molchanov et al. 2019), gradients summed over calibration batches;
* ``wanda``: |w| · ‖x_j‖, weight times the L2 norm of its input feature over calibration
  tokens (Sun et al. 2023); for a convolution the norm is taken per input channel.

Memory: Wanda needs only forward passes without autograd (one block's activations at a time);
with ``Calibration.device`` set, the model's repeated blocks are run there one at a time (the
block-by-block walk of ``quantize/sequential.py``), the other blocks' weights staying on the
host. Taylor needs a backward pass through the whole model; it allocates gradients for the
scored weights only (every other parameter is frozen while scoring) and sums them in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.steps.quantize.calibration import progress

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.tasks.context import StageContext


@dataclass
class Calibration:
    """Batches of model inputs (tensors by name) and how to get a scalar loss from one."""

    batches: Sequence[tuple[dict[str, torch.Tensor], Any]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor], Any], torch.Tensor]
    #: the model's raw output on one batch's inputs, called the way the model is written
    forward: Callable[[nn.Module, dict[str, torch.Tensor]], Any]
    #: wanda: run the model's blocks on this device one at a time (None: where the model is)
    device: str | None = None
    progress: bool = True


def classification_calibration(context: StageContext, batches: int, batch_size: int) -> Calibration:
    """Calibration rows (else training rows) as the task batches them, with the task's loss."""
    import torch

    frame = context.calibration if len(context.calibration) else context.train
    if len(frame) == 0:
        raise ModelpressError(
            "prune: score 'taylor'/'wanda' needs calibration or train rows in the data"
        )
    out = []
    for batch, labels in context.task.batches(frame, batch_size):
        out.append(({k: torch.from_numpy(v) for k, v in batch.items()}, torch.from_numpy(labels)))
        if len(out) == batches:
            break
    task = context.task

    def loss(model: nn.Module, inputs: dict[str, torch.Tensor], labels: Any) -> torch.Tensor:
        return task.loss(task.outputs(task.call(model, inputs))[0], labels)  # cross-entropy for classifiers

    return Calibration(out, loss, task.call)


def element_scores(
    model: nn.Module,
    modules: dict[str, nn.Module],
    score: str,
    calibration: Calibration | None = None,
) -> dict[str, torch.Tensor]:
    """One non-negative score per weight of each module (same shape as ``module.weight``)."""
    if score == "l1":
        return {name: m.weight.detach().abs() for name, m in modules.items()}
    if score == "l2":
        return {name: m.weight.detach().pow(2) for name, m in modules.items()}
    if calibration is None:
        raise ModelpressError(f"prune: score {score!r} needs calibration batches")
    if score == "taylor":
        grads = _summed_gradients(model, modules, calibration)
        return {name: (m.weight.detach() * grads[name]).abs() for name, m in modules.items()}
    if score == "wanda":
        norms = _input_norms(model, modules, calibration)
        return {
            name: m.weight.detach().abs() * _broadcast(norms[name], m.weight)
            for name, m in modules.items()
        }
    raise ModelpressError(f"prune: unknown score {score!r}; use l1, l2, taylor or wanda")


def _summed_gradients(
    model: nn.Module, modules: dict[str, nn.Module], calibration: Calibration
) -> dict[str, torch.Tensor]:
    import torch

    was_training = model.training
    model.eval()  # dropout off: scores should not depend on a dropout draw
    saved = [(p, p.requires_grad) for p in model.parameters()]
    scored = {id(m.weight) for m in modules.values()}
    try:
        model.zero_grad(set_to_none=True)
        for p, _ in saved:  # gradients of the scored weights only: no model-sized .grad buffers
            p.requires_grad_(id(p) in scored)
        for m in modules.values():
            m.weight.requires_grad_(True)
        for inputs, target in progress(list(calibration.batches), calibration.progress, "taylor scores"):
            with torch.enable_grad():  # .grad sums over the batches in place
                calibration.loss(model, inputs, target).backward()
        grads = {name: m.weight.grad.detach() if m.weight.grad is not None  # kept: zero_grad drops .grad only
                 else torch.zeros_like(m.weight) for name, m in modules.items()}
    finally:
        model.zero_grad(set_to_none=True)
        for p, requires_grad in saved:
            p.requires_grad_(requires_grad)
        model.train(was_training)
    return grads


def _input_norms(
    model: nn.Module, modules: dict[str, nn.Module], calibration: Calibration
) -> dict[str, torch.Tensor]:
    """‖x_j‖ over all calibration tokens/pixels for each input feature/channel j of each module."""
    import torch

    sums: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple) -> None:
            x = inputs[0].detach().float()
            per_feature = (
                x.transpose(0, 1).flatten(1) if x.dim() == 4 else x.reshape(-1, x.shape[-1]).T
            )
            sq = per_feature.pow(2).sum(1)
            sums[name] = sums[name] + sq if name in sums else sq

        return record

    was_training = model.training
    model.eval()
    with torch.no_grad():  # before the hooks: the chained-blocks check runs one forward pass
        blocks = _offload_blocks(model, modules, calibration)
    handles = [m.register_forward_pre_hook(hook(name)) for name, m in modules.items()]
    try:
        with torch.no_grad():
            if blocks is not None:
                _blockwise_pass(model, blocks, calibration)
            else:
                for inputs, _ in _progress(calibration, "wanda scores"):
                    calibration.forward(model, inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = [name for name in modules if name not in sums]
    if missing:
        raise ModelpressError(f"prune: score 'wanda' saw no input reach module(s) {missing}")
    return {name: s.sqrt().to(modules[name].weight.device) for name, s in sums.items()}


def _progress(calibration: Calibration, desc: str) -> Any:
    return progress(list(calibration.batches), calibration.progress, desc)


def _offload_blocks(model: nn.Module, modules: dict[str, nn.Module],
                    calibration: Calibration) -> tuple[str, nn.ModuleList] | None:
    """The chained blocks to run one at a time on ``calibration.device``, if one is set."""
    from modelpress.steps.quantize.sequential import chained_blocks

    if calibration.device is None or not calibration.batches:
        return None
    blocks = chained_blocks(model, list(modules), calibration.batches[0], _runner(calibration))
    if blocks is None or not all(name.startswith(blocks[0] + ".") for name in modules):
        return None  # a scored layer outside the blocks: one pass of the whole model instead
    return blocks


def _blockwise_pass(model: nn.Module, blocks: tuple[str, nn.ModuleList], calibration: Calibration) -> None:
    """The float model's forward, block by block on ``calibration.device``: the hooks of the
    scored modules see exactly their inputs of a whole-model pass. Layers after the blocks (a
    head) are not reached; the pruners score block layers only."""
    import torch

    from modelpress.steps.quantize.sequential import BlockInputs, onloaded, outside_on

    prefix, stack = blocks
    device = torch.device(calibration.device)
    with outside_on(model, stack, device):
        inputs = BlockInputs.capture(model, stack[0], list(calibration.batches), _runner(calibration))
    for block in progress(list(stack), calibration.progress, f"wanda {prefix} ({len(stack)} blocks)"):
        with onloaded(block, device):
            inputs.advance(inputs.run(block))


def _runner(calibration: Calibration) -> Callable[[nn.Module, tuple[dict[str, torch.Tensor], Any]], Any]:
    """What the block walk calls with one (inputs, labels) batch."""
    return lambda model, batch: calibration.forward(model, batch[0])


def _broadcast(norms: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Shape input-feature norms to broadcast over a Linear [out, in] or Conv [out, in, ...]."""
    return norms.view(1, -1, *([1] * (weight.dim() - 2)))


def row_scores(scores: torch.Tensor) -> torch.Tensor:
    """Score of each output unit (row / output channel)."""
    return scores.flatten(1).sum(1)


def column_scores(scores: torch.Tensor) -> torch.Tensor:
    """Score of each input unit (column / input channel)."""
    return scores.transpose(0, 1).flatten(1).sum(1)
