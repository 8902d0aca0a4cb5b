"""Global magnitude pruning: zero the smallest weights across all prunable layers at once.

Global (not layer-wise) selection matters on small CNNs: layer-wise 80% collapses the small
first convolution (DESIGN.md §5), while a global threshold leaves small layers mostly intact;
``min_density`` additionally guarantees each layer keeps a share of its weights.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from modelpress.registry import StageConfig, register_stage

if TYPE_CHECKING:
    import torch

    from modelpress.context import StageContext


class PruneConfig(StageConfig):
    method: Literal["magnitude"] = "magnitude"
    scope: Literal["global"] = "global"
    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="share of weights set to zero")
    layers: Literal["linear", "conv", "all"] = "all"
    min_density: float = Field(0.05, ge=0.0, le=1.0, description="each layer keeps at least this share")


def prunable_layers(model: "torch.nn.Module", layers: str) -> list[tuple[str, "torch.nn.Module"]]:
    from torch import nn

    kinds = {"linear": (nn.Linear,), "conv": (nn.Conv1d, nn.Conv2d), "all": (nn.Linear, nn.Conv1d, nn.Conv2d)}[layers]
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


@register_stage("prune", PruneConfig, kind="module",
                summary="zero the smallest-magnitude weights (global threshold, per-layer floor)")
def prune(model: "torch.nn.Module", config: PruneConfig, context: "StageContext") -> "torch.nn.Module":
    import torch

    pruned = copy.deepcopy(model)
    layers = prunable_layers(pruned, config.layers)
    if not layers:
        raise ValueError(f"prune: the model has no {config.layers} layers to prune")
    scores = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
    k = int(config.sparsity * scores.numel())
    threshold = scores.kthvalue(k).values if k > 0 else scores.min() - 1
    with torch.no_grad():
        for name, module in layers:
            keep = _mask(module.weight.abs(), threshold, config.min_density)
            module.weight.mul_(keep)
            context.report[f"sparsity.{name}"] = round(1 - keep.float().mean().item(), 4)
    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    context.report["sparsity"] = round(zeros / total, 4)
    return pruned


def _mask(magnitude: "torch.Tensor", threshold: "torch.Tensor", min_density: float) -> "torch.Tensor":
    import torch

    keep = magnitude > threshold
    floor = int(min_density * magnitude.numel())
    if int(keep.sum()) < floor:  # too few survive the global threshold: keep this layer's largest
        keep = torch.zeros_like(magnitude, dtype=torch.bool)
        keep.view(-1)[magnitude.flatten().topk(floor).indices] = True
    return keep
