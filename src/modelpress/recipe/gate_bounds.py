"""Gate thresholds that no model could meet together: a rule across the gate, the task and registry:.

Found when the recipe is validated, with the field path, before any data or model is read.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from modelpress.core.intervals import smallest_resolvable_drop

if TYPE_CHECKING:
    from modelpress.settings.blocks import Statistics, Threshold
    from modelpress.tasks import Task

#: bounds on an absolute paired difference, which eval rows resolve only down to a size
DROP_RULES = ("max_drop", "max_champion_drop")


def contradictions(gate: dict[str, Threshold], task: type[Task], tolerance: float | None = None) -> list[str]:
    """Thresholds that no model could meet together, each with its field path."""
    problems: list[str] = []
    for metric, threshold in gate.items():
        problems += [f"gate.{metric}: {p}" for p in _within_metric(task, metric, threshold)]
    p50, p95 = gate.get("latency_ms"), gate.get("latency_p95_ms")
    if p50 is not None and p95 is not None and p50.min is not None and p95.max is not None \
            and p95.max < p50.min:
        problems.append(f"gate: latency_p95_ms.max ({p95.max}) is below latency_ms.min ({p50.min}); "
                        "the p95 latency is never below the median")
    primary = gate.get(task.primary_metric)
    drop = primary.max_champion_drop if primary is not None else None
    # tolerance 0 is the registry default (a dumped recipe always carries it): only a value
    # someone chose can disagree; otherwise the gate's bound is the promotion tolerance.
    if drop is not None and tolerance and drop != tolerance:
        problems.append(f"gate.{task.primary_metric}.max_champion_drop ({drop}) and registry.tolerance "
                        f"({tolerance}) disagree on how much {task.primary_metric} a new champion may lose; "
                        "set only one")
    return problems


def _within_metric(task: type[Task], metric: str, threshold: Threshold) -> list[str]:
    problems = []
    spec = task.metric(metric)
    low, high = spec.low, spec.high
    if threshold.min is not None and threshold.min > high:
        problems.append(f"min ({threshold.min}) is above the largest possible {metric} ({high})")
    if threshold.max is not None and threshold.max < low:
        problems.append(f"max ({threshold.max}) is below the smallest possible {metric} ({low})")
    # max_ratio caps candidate/baseline from above, max_relative_drop from below (ratio ≥ 1 - d).
    if threshold.max_ratio is not None and threshold.max_relative_drop is not None \
            and 1 - threshold.max_relative_drop > threshold.max_ratio + 1e-12:
        problems.append(f"max_ratio ({threshold.max_ratio}) requires the candidate to shrink to "
                        f"{threshold.max_ratio:.0%} of the baseline but max_relative_drop "
                        f"({threshold.max_relative_drop}) allows at most a {threshold.max_relative_drop:.0%} drop")
    return problems


def unresolvable(gate: dict[str, Threshold], task: type[Task], eval_rows: int, statistics: Statistics) -> list[str]:
    """Drop bounds on a 0–1 metric finer than ``eval_rows`` can resolve (see
    :func:`smallest_resolvable_drop`): warnings, since a candidate identical in its predictions
    still passes."""
    if statistics.method == "none":
        return []
    floor = smallest_resolvable_drop(eval_rows, statistics.level)
    warnings = []
    for metric, threshold in gate.items():
        spec = task.metric(metric)
        if (spec.low, spec.high) != (0.0, 1.0):  # a proportion-like metric (accuracy, f1, agreement)
            continue
        for rule in DROP_RULES:
            bound = getattr(threshold, rule)
            if bound is not None and bound < floor:
                warnings.append(
                    f"gate.{metric}.{rule} ({bound}) is finer than {eval_rows} eval rows can resolve at "
                    f"{statistics.level:.0%} (≥ {floor:.4f}: a candidate losing half the bound, every changed row a "
                    f"loss, still straddles it); only a candidate that changes no prediction passes: raise the "
                    f"bound or give eval about {_rows_for(bound, statistics.level):,} rows")
    return warnings


def _rows_for(bound: float, level: float) -> int:
    return math.ceil(smallest_resolvable_drop(1, level) / bound)
