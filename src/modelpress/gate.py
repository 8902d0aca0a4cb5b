"""The accuracy gate: compare candidate metrics with the recipe's thresholds.

Three kinds of bounds per metric: absolute (``min``/``max``), relative to the baseline the
candidate was compressed from (``max_drop``, ``max_relative_drop``, ``max_ratio``) and relative
to the registry's current champion measured on the same eval rows in the same process
(``max_champion_drop``, ``max_champion_ratio``). With no champion yet, champion checks are
recorded as skipped (they cannot fail a first model); a champion that could not be measured
fails them, so a broken comparison never lets a candidate through.

Cheap to import: the recipe loader calls :func:`contradictions` at validation time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .recipe import Threshold

# rule → (how the checked value is derived from (candidate, reference), whether it is an upper bound)
RULES: dict[str, tuple[Callable[[float, float], float], bool]] = {
    "min": (lambda cand, base: cand, False),
    "max": (lambda cand, base: cand, True),
    "max_drop": (lambda cand, base: base - cand, True),
    "max_relative_drop": (lambda cand, base: (base - cand) / base if base else 0.0, True),
    "max_ratio": (lambda cand, base: cand / base if base else float("inf"), True),
    "max_champion_drop": (lambda cand, champ: champ - cand, True),
    "max_champion_ratio": (lambda cand, champ: cand / champ if champ else float("inf"), True),
}
CHAMPION_RULES = ("max_champion_drop", "max_champion_ratio")

HIGHER_IS_BETTER = ("accuracy", "f1", "agreement", "cosine")
LOWER_IS_BETTER = ("size_mb", "latency_ms", "latency_p95_ms", "peak_memory_mb")
# Metrics that cannot leave these ranges, so a bound outside them can never be met.
METRIC_RANGE: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "agreement": (0.0, 1.0), "cosine": (-1.0, 1.0),
    "size_mb": (0.0, float("inf")), "latency_ms": (0.0, float("inf")),
    "latency_p95_ms": (0.0, float("inf")), "peak_memory_mb": (0.0, float("inf")),
}


@dataclass(frozen=True)
class Check:
    metric: str
    rule: str
    limit: float
    value: float | None
    passed: bool
    note: str = ""

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric}.{self.rule}: {self.note}"
        sign = "≤" if RULES[self.rule][1] else "≥"
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.metric}.{self.rule}: {self.value:.4g} {sign} {self.limit:.4g} {verdict}"


def run_gate(thresholds: dict[str, Threshold], report: dict[str, dict[str, float]],
             champion: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every configured check with its value; ``passed`` only if all pass (JSON-able).

    ``champion`` is what :func:`modelpress.champion.measure_champion` returns: ``{}`` when
    the registry has no champion, else ``metrics`` (the champion's) and ``candidate`` (the
    candidate measured alongside it, so latency ratios compare one interleaved timing).
    """
    checks = []
    for metric, threshold in thresholds.items():
        for rule, limit in threshold.model_dump(exclude_none=True).items():
            checks.append(_check(metric, rule, limit, report, champion or {}))
    failed = [c.describe() for c in checks if not c.passed]
    verdict: dict[str, Any] = {"passed": not failed, "checks": [asdict(c) for c in checks],
                               "reason": "; ".join(failed) if failed else "all checks passed"}
    if champion and champion.get("version"):
        verdict["champion_version"] = str(champion["version"])
    return verdict


def _check(metric: str, rule: str, limit: float, report: dict[str, dict[str, float]],
           champion: dict[str, Any]) -> Check:
    derive, upper = RULES[rule]
    if rule in CHAMPION_RULES:
        if champion.get("error"):
            return Check(metric, rule, limit, None, False, f"champion not measured: {champion['error']}")
        if not champion.get("metrics"):
            return Check(metric, rule, limit, None, True, "skipped: no champion yet")
        cand, ref = champion["candidate"][metric], champion["metrics"][metric]
    else:
        cand, ref = report["candidate"][metric], report["baseline"][metric]
    value = derive(cand, ref)
    return Check(metric, rule, limit, value, value <= limit if upper else value >= limit)


def contradictions(gate: dict[str, Threshold], tolerance: float | None = None) -> list[str]:
    """Thresholds that no model could meet together, each with its field path."""
    problems: list[str] = []
    for metric, threshold in gate.items():
        problems += [f"gate.{metric}: {p}" for p in _within_metric(metric, threshold)]
    p50, p95 = gate.get("latency_ms"), gate.get("latency_p95_ms")
    if p50 is not None and p95 is not None and p50.min is not None and p95.max is not None \
            and p95.max < p50.min:
        problems.append(f"gate: latency_p95_ms.max ({p95.max}) is below latency_ms.min ({p50.min}); "
                        "the p95 latency is never below the median")
    accuracy = gate.get("accuracy")
    drop = accuracy.max_champion_drop if accuracy is not None else None
    # tolerance 0 is the registry default (a dumped recipe always carries it): only a value
    # someone chose can disagree; otherwise the gate's bound is the promotion tolerance.
    if drop is not None and tolerance and drop != tolerance:
        problems.append(f"gate.accuracy.max_champion_drop ({drop}) and registry.tolerance ({tolerance}) "
                        "disagree on how much accuracy a new champion may lose; set only one")
    return problems


def _within_metric(metric: str, threshold: Threshold) -> list[str]:
    problems = []
    low, high = METRIC_RANGE.get(metric, (float("-inf"), float("inf")))
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
