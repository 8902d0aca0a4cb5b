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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelpress.core.handoffs import ChampionReport, Check, Evaluation, Verdict
    from modelpress.settings.blocks import Threshold
    from modelpress.tasks import Task

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


def describe(check: Check) -> str:
    if check.value is None:
        return f"{check.metric}.{check.rule}: {check.note}"
    sign = "≤" if RULES[check.rule][1] else "≥"
    verdict = "ok" if check.passed else "FAILED"
    return f"{check.metric}.{check.rule}: {check.value:.4g} {sign} {check.limit:.4g} {verdict}"


def run_gate(thresholds: dict[str, Threshold], evaluation: Evaluation,
             champion: ChampionReport | None = None) -> Verdict:
    """Every configured check with its value; ``passed`` only if all pass.

    ``champion`` is what :func:`modelpress.gate.champion.measure_champion` returns: no version when
    the registry has no champion, else its metrics and the candidate's measured beside them
    (so latency ratios compare one interleaved timing).
    """
    from modelpress.core.handoffs import ChampionReport, Verdict

    champion = champion or ChampionReport()
    checks = [_check(metric, rule, limit, evaluation, champion)
              for metric, threshold in thresholds.items()
              for rule, limit in threshold.model_dump(exclude_none=True).items()]
    failed = [describe(c) for c in checks if not c.passed]
    return Verdict(passed=not failed, checks=checks, reason="; ".join(failed) if failed else "all checks passed",
                   champion_version=champion.version)


def _check(metric: str, rule: str, limit: float, evaluation: Evaluation, champion: ChampionReport) -> Check:
    from modelpress.core.handoffs import Check

    derive, upper = RULES[rule]
    if rule in CHAMPION_RULES:
        if champion.error:
            return Check(metric=metric, rule=rule, limit=limit, value=None, passed=False,
                         note=f"champion not measured: {champion.error}")
        if not champion.measured:
            return Check(metric=metric, rule=rule, limit=limit, value=None, passed=True,
                         note="skipped: no champion yet")
        assert champion.candidate is not None and champion.metrics is not None
        cand, ref = champion.candidate[metric], champion.metrics[metric]
    else:
        cand, ref = evaluation.candidate[metric], evaluation.baseline[metric]
    value = derive(cand, ref)
    return Check(metric=metric, rule=rule, limit=limit, value=value, passed=value <= limit if upper else value >= limit)


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
