"""The accuracy gate: compare candidate metrics with the recipe's thresholds.

Three kinds of bounds per metric: absolute (``min``/``max``), relative to the baseline the
candidate was compressed from (``max_drop``, ``max_relative_drop``, ``max_ratio``) and relative
to the registry's current champion measured on the same eval rows in the same process
(``max_champion_drop``, ``max_champion_ratio``). With no champion yet, champion checks are
recorded as skipped (they cannot fail a first model); a champion that could not be measured
fails them, so a broken comparison never lets a candidate through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelpress.core.handoffs import ChampionReport, Check, Verdict

if TYPE_CHECKING:
    from modelpress.core.handoffs import Evaluation
    from modelpress.settings.blocks import Threshold

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

    champion = champion or ChampionReport()
    checks = [_check(metric, rule, limit, evaluation, champion)
              for metric, threshold in thresholds.items()
              for rule, limit in threshold.model_dump(exclude_none=True).items()]
    failed = [describe(c) for c in checks if not c.passed]
    return Verdict(passed=not failed, checks=checks, reason="; ".join(failed) if failed else "all checks passed",
                   champion_version=champion.version)


def _check(metric: str, rule: str, limit: float, evaluation: Evaluation, champion: ChampionReport) -> Check:
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
