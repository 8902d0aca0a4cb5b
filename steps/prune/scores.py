"""Importance of every weight, from magnitude or from calibration statistics.

All pruning granularities start from one element-wise score per weight; structured pruning sums
it over the rows/columns a unit owns. Keeping one definition means a scorer is tested once
(a planted unimportant neuron must rank lowest) and means the same thing in every granularity:

* ``l1`` / ``l2``: |w| / w²;
* ``taylor``: |w · ∂L/∂w|, first-order estimate of the loss change when w is removed
  (Molchanov et al. 2019), gradients summed over calibration batches;
* ``wanda``: |w| · ‖x_j‖, weight times the L2 norm of its input feature over calibration
  tokens (Sun et al. 2023); for a convolution the norm is taken per input channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Sequence

from modelpress.errors import ModelpressError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.context import StageContext


@dataclass
class Calibration:
    """Batches of model inputs (tensors by name) and how to get a scalar loss from one."""

    batches: Sequence[tuple[dict[str, torch.Tensor], Any]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor], Any], torch.Tensor]


def classification_calibration(context: StageContext, batches: int, batch_size: int) -> Calibration:
    """Calibration rows (else training rows) of a classification task, with cross-entropy."""
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
    return Calibration(out, _cross_entropy)


def _cross_entropy(model: nn.Module, inputs: dict[str, torch.Tensor], labels: Any) -> torch.Tensor:
    import torch.nn.functional as F

    from modelpress.tasks import split_outputs

    logits, _ = split_outputs(model(**inputs))
    return F.cross_entropy(logits, labels)


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
    saved = {name: m.weight.requires_grad for name, m in modules.items()}
    grads = {name: torch.zeros_like(m.weight) for name, m in modules.items()}
    try:
        for m in modules.values():
            m.weight.requires_grad_(True)
        for inputs, target in calibration.batches:
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                calibration.loss(model, inputs, target).backward()
            for name, m in modules.items():
                if m.weight.grad is not None:
                    grads[name] += m.weight.grad.detach()
    finally:
        model.zero_grad(set_to_none=True)
        for name, m in modules.items():
            m.weight.requires_grad_(saved[name])
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

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in modules.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs, _ in calibration.batches:
                model(**inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = [name for name in modules if name not in sums]
    if missing:
        raise ModelpressError(f"prune: score 'wanda' saw no input reach module(s) {missing}")
    return {name: s.sqrt() for name, s in sums.items()}


def _broadcast(norms: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Shape input-feature norms to broadcast over a Linear [out, in] or Conv [out, in, ...]."""
    return norms.view(1, -1, *([1] * (weight.dim() - 2)))


def row_scores(scores: torch.Tensor) -> torch.Tensor:
    """Score of each output unit (row / output channel)."""
    return scores.flatten(1).sum(1)


def column_scores(scores: torch.Tensor) -> torch.Tensor:
    """Score of each input unit (column / input channel)."""
    return scores.transpose(0, 1).flatten(1).sum(1)
