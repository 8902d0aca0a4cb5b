"""Pruning masks survive fine-tuning: weights exactly zero at the start stay exactly zero.

Masks are detected, not passed in: the ``prune`` stage hands over a plain module whose pruned
weights are zeros, and a trained dense weight is essentially never exactly 0.0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Masks = dict[str, torch.Tensor]


def detect_masks(model: nn.Module) -> Masks:
    """``name -> keep`` (bool) for every weight matrix/kernel that holds exact zeros."""
    return {name: p.detach() != 0 for name, p in model.named_parameters()
            if p.dim() >= 2 and bool((p == 0).any())}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        param = params[name]
        param.mul_(keep.to(param.device, param.dtype))


def mask_applier(model: nn.Module, masks: Masks) -> Callable[[], None]:
    """A cheap after-step hook bound to the parameter objects (survives DDP wrapping)."""
    params = dict(model.named_parameters())
    pairs = [(params[name], keep) for name, keep in masks.items() if name in params]

    @torch.no_grad()
    def reapply() -> None:
        for param, keep in pairs:
            param.mul_(keep.to(param.device, param.dtype))

    return reapply


def sparsity(model: nn.Module, masks: Masks, min_share: float = 0.01) -> float:
    """Zero share over the tensors that look pruned (≥ ``min_share`` zeros), so that, e.g., a
    BERT word-embedding table whose only zero row is the padding token does not dilute it."""
    params = dict(model.named_parameters())
    pruned = [n for n, keep in masks.items() if 1 - keep.float().mean().item() >= min_share]
    total = sum(params[n].numel() for n in pruned)
    zeros = sum(int((params[n] == 0).sum()) for n in pruned)
    return zeros / total if total else 0.0
