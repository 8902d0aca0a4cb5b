"""Truncated-SVD factorisation: Linear(in, out) → Linear(in, r, no bias) · Linear(r, out).

Written by hand because it is a few lines of ``torch.linalg.svd``; the factor pair is a plain
``nn.Sequential`` of Linears, so it trains, pickles and exports to ONNX like any Linear.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from typing import TYPE_CHECKING

from modelpress.core.registry import register_stage
from modelpress.steps.lowrank.config import LowRankConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.tasks.context import StageContext


@register_stage(
    "lowrank",
    LowRankConfig,
    kind="module",
    summary="factor Linear layers by truncated SVD (rank by energy or parameter budget)",
)
def lowrank(model: nn.Module, config: LowRankConfig, context: StageContext) -> nn.Module:
    factored = copy.deepcopy(model).eval()
    params_before = sum(p.numel() for p in factored.parameters())
    ranks: dict[str, str] = {}
    protected = context.task.protected_modules(factored) if context.task is not None else {}
    for name, why in protected.items():
        ranks[name] = f"kept: {why}"
    for name, layer in selected_linears(factored, config):
        if name in protected:
            continue
        rank = choose_rank(layer.weight.detach(), config)
        full = layer.in_features * layer.out_features
        if rank is None or rank * (layer.in_features + layer.out_features) >= full:
            ranks[name] = f"skipped (full rank {min(layer.in_features, layer.out_features)})"
            continue
        _replace(factored, name, factor(layer, rank))
        ranks[name] = f"{rank}/{min(layer.in_features, layer.out_features)}"
    if (
        config.recovery is not None
        and config.recovery.epochs > 0
        and any("/" in r for r in ranks.values())
    ):
        from modelpress.training import recover

        recover(factored, context.task, context.train, config.recovery, seed=context.seed,
                desc="lowrank recovery")
    params_after = sum(p.numel() for p in factored.parameters())
    context.report.update({f"rank.{name}": r for name, r in ranks.items()})
    context.report.update(
        {
            "params_before": params_before,
            "params_after": params_after,
            "factored_layers": sum("/" in r for r in ranks.values()),
        }
    )
    return factored


def selected_linears(model: nn.Module, config: LowRankConfig) -> list[tuple[str, nn.Linear]]:
    from torch import nn

    def wanted(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in config.include) and not any(
            fnmatch.fnmatchcase(name, p) for p in config.exclude
        )

    return [
        (name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and wanted(name)
    ]


def choose_rank(weight: torch.Tensor, config: LowRankConfig) -> int | None:
    """Rank by energy (smallest r whose σ² share ≥ energy) or by the per-layer parameter budget."""
    import torch

    out_features, in_features = weight.shape
    if config.param_budget is not None:
        rank = math.floor(
            config.param_budget * out_features * in_features / (out_features + in_features)
        )
        return max(rank, config.min_rank) if rank >= 1 else None
    target = config.energy if config.energy is not None else 1.0  # the config requires one of the two
    energy = torch.linalg.svdvals(weight.double()).pow(2)
    share = energy.cumsum(0) / energy.sum().clamp(min=1e-300)
    rank = int((share < target - 1e-12).sum()) + 1
    return max(min(rank, len(energy)), config.min_rank)


def factor(layer: nn.Linear, rank: int) -> nn.Sequential:
    """Best rank-r approximation (Eckart–Young), √σ split evenly between the two factors."""
    import torch
    from torch import nn

    u, s, vh = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    dtype = layer.weight.dtype
    with torch.no_grad():
        first.weight.copy_((root[:, None] * vh[:rank]).to(dtype))
        second.weight.copy_((u[:, :rank] * root[None, :]).to(dtype))
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach())
    return nn.Sequential(first, second)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
