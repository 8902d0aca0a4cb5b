"""Which units each group loses: layer-wise or global ranking, per-layer floor, rounding.

A *group* is a set of units (channels, neurons, FFN units, heads) removed together; ``original``
is its unit count before the first round so an iterative schedule keeps aiming at a share of
the original model. The plan is computed and checked in full before any weight is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import torch


@dataclass
class Group:
    name: str
    scores: torch.Tensor  # one score per current unit
    original: int


def plan_removals(
    groups: list[Group], sparsity: float, scope: str, min_density: float, round_to: int = 1
) -> dict[str, list[int]]:
    """Indices (into the current units) to remove from each group, sorted ascending."""
    if scope == "layer":
        plan = {g.name: _layer_removals(g, sparsity, min_density) for g in groups}
    else:
        plan = _global_removals(groups, sparsity, min_density)
    plan = {g.name: _round_kept(g, plan[g.name], round_to) for g in groups}
    for g in groups:
        if len(plan[g.name]) >= len(g.scores):
            raise ModelpressError(
                f"prune: the plan would remove every unit ({len(g.scores)}) of {g.name!r} "
                f"(scope={scope}, sparsity={sparsity}, min_density={min_density}); "
                "raise min_density or lower sparsity"
            )
    return plan


def _floor(group: Group, min_density: float) -> int:
    return math.ceil(min_density * group.original)


def _layer_removals(group: Group, sparsity: float, min_density: float) -> list[int]:
    keep = max(group.original - math.floor(sparsity * group.original), _floor(group, min_density))
    remove = max(len(group.scores) - keep, 0)
    return sorted(group.scores.argsort()[:remove].tolist())


def _global_removals(
    groups: list[Group], sparsity: float, min_density: float
) -> dict[str, list[int]]:
    """Rank every unit of every group together on scores normalised by their group's mean."""
    import torch

    total_original = sum(g.original for g in groups)
    already = sum(g.original - len(g.scores) for g in groups)
    budget = math.floor(sparsity * total_original) - already
    plan: dict[str, list[int]] = {g.name: [] for g in groups}
    if budget <= 0:
        return plan
    names, indices, values = [], [], []
    for g in groups:
        normalised = g.scores / g.scores.mean().clamp(min=1e-12)
        names += [g.name] * len(g.scores)
        indices += list(range(len(g.scores)))
        values.append(normalised)
    order = torch.cat(values).argsort().tolist()
    room = {g.name: len(g.scores) - _floor(g, min_density) for g in groups}
    for flat in order:
        if budget == 0:
            break
        name = names[flat]
        if room[name] > 0:
            plan[name].append(indices[flat])
            room[name] -= 1
            budget -= 1
    return {name: sorted(idx) for name, idx in plan.items()}


def _round_kept(group: Group, removals: list[int], round_to: int) -> list[int]:
    """Give back the best removed units until the kept count is a multiple of ``round_to``."""
    if round_to == 1 or not removals:
        return removals
    kept = len(group.scores) - len(removals)
    target = min(math.ceil(kept / round_to) * round_to, len(group.scores)) if kept else 0
    give_back = target - kept
    if give_back <= 0:
        return removals
    by_score = sorted(removals, key=lambda i: float(group.scores[i]), reverse=True)
    return sorted(set(removals) - set(by_score[:give_back]))
