"""The accuracy gate: compare candidate metrics with the recipe's thresholds.

Three kinds of bounds per metric: absolute (``min``/``max``), relative to the baseline the
candidate was compressed from (``max_drop``, ``max_relative_drop``, ``max_ratio``) and relative
to the registry's current champion measured on the same eval rows in the same process
(``max_champion_drop``, ``max_champion_ratio``). With no champion yet, champion checks are
recorded as skipped (they cannot fail a first model); a champion that could not be measured
fails them, so a broken comparison never lets a candidate through.

Where the evaluation kept a metric's per-row values (``Evaluation.samples``, ``ChampionReport.samples``)
each check is decided on a paired-bootstrap interval of the quantity the rule bounds
(``modelpress.core.intervals``, settings in the recipe's ``statistics:``): pass when the interval is
within the bound, fail when it is beyond it, inconclusive when it straddles it. Metrics without
samples (size, peak memory, p95 latency) are checked on their point estimate, and the check says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelpress.core.handoffs import ChampionReport, Check, Evaluation, Verdict
from modelpress.core.intervals import paired_interval, rows_needed
from modelpress.settings.blocks import Statistics

if TYPE_CHECKING:
    from modelpress.core.handoffs import Samples
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
    # promotion on a lower-is-better primary metric (perplexity): what the candidate adds
    "max_champion_rise": (lambda cand, champ: cand - champ, True),
}
CHAMPION_RULES = ("max_champion_drop", "max_champion_ratio", "max_champion_rise")


def describe(check: Check) -> str:
    if check.value is None:
        return f"{check.metric}.{check.rule}: {check.note}"
    sign = "≤" if RULES[check.rule][1] else "≥"
    shown = {"pass": "ok", "fail": "FAILED", "inconclusive": "INCONCLUSIVE"}[check.result]
    interval = f" [{check.low:.4g}, {check.high:.4g}]" if check.low is not None and check.high is not None else ""
    needs = f" (about {check.rows_needed:,} eval rows would resolve it)" if check.rows_needed else ""
    return f"{check.metric}.{check.rule}: {check.value:.4g}{interval} {sign} {check.limit:.4g} {shown}{needs}"


def run_gate(thresholds: dict[str, Threshold], evaluation: Evaluation,
             champion: ChampionReport | None = None, statistics: Statistics | None = None) -> Verdict:
    """Every configured check with its value (and interval); ``passed`` only if all pass.

    ``champion`` is what :func:`modelpress.gate.champion.measure_champion` returns: no version when
    the registry has no champion, else its metrics and the candidate's measured beside them
    (so latency ratios compare one interleaved timing). ``statistics`` is the recipe's block
    (default: paired bootstrap at 95 %, inconclusive fails).
    """

    champion = champion or ChampionReport()
    statistics = statistics or Statistics()
    checks = [_check(metric, rule, limit, evaluation, champion, statistics)
              for metric, threshold in thresholds.items()
              for rule, limit in threshold.model_dump(exclude_none=True).items()]
    failed = [describe(c) for c in checks if not c.passed]
    unsure = [describe(c) for c in checks if c.result == "inconclusive"]
    reason = "; ".join(failed) if failed else "all checks passed"
    if unsure and statistics.on_inconclusive == "warn":  # "pass" counts them silently (still in ``inconclusive``)
        reason += "; WARNING inconclusive, counted as passed (statistics.on_inconclusive: warn): " + "; ".join(unsure)
    return Verdict(passed=not failed, checks=checks, reason=reason, champion_version=champion.version,
                   inconclusive=unsure, on_inconclusive=statistics.on_inconclusive if unsure else None)


def _check(metric: str, rule: str, limit: float, evaluation: Evaluation, champion: ChampionReport,
           statistics: Statistics) -> Check:
    samples = evaluation.samples.get(metric)
    if rule in CHAMPION_RULES:
        if champion.error:
            return Check(metric=metric, rule=rule, limit=limit, value=None, passed=False,
                         note=f"champion not measured: {champion.error}")
        if not champion.measured:
            return Check(metric=metric, rule=rule, limit=limit, value=None, passed=True,
                         note="skipped: no champion yet")
        assert champion.candidate is not None and champion.metrics is not None
        cand, ref = champion.candidate[metric], champion.metrics[metric]
        samples = champion.samples.get(metric)
    else:
        cand, ref = evaluation.candidate[metric], evaluation.baseline[metric]
    return JUDGES[statistics.method](metric, rule, limit, RULES[rule][0](cand, ref), samples, statistics)


def _point(metric: str, rule: str, limit: float, value: float, samples: Samples | None,
           statistics: Statistics) -> Check:
    """The point estimate against the bound (``statistics: none``, the behaviour before intervals)."""
    upper = RULES[rule][1]
    return Check(metric=metric, rule=rule, limit=limit, value=value, passed=value <= limit if upper else value >= limit)


def _interval(metric: str, rule: str, limit: float, value: float, samples: Samples | None,
              statistics: Statistics) -> Check:
    """The paired-bootstrap interval against the bound; a point estimate where no rows were kept."""
    if samples is None:
        check = _point(metric, rule, limit, value, samples, statistics)
        return check.model_copy(update={"note": f"point estimate: no per-row values of {metric} were kept"})
    derive, upper = RULES[rule]
    interval = paired_interval(samples, derive, statistics.level, statistics.resamples, statistics.seed)
    inside, beyond = (interval.high <= limit, interval.low > limit) if upper else \
        (interval.low >= limit, interval.high < limit)
    outcome = "pass" if inside else "fail" if beyond else "inconclusive"
    needed = rows_needed(interval, limit) if outcome == "inconclusive" else None
    passed = outcome == "pass" or (outcome == "inconclusive" and statistics.on_inconclusive != "fail")
    # the estimate stays the evaluation's number (identical to the samples' unless rounding differs)
    return Check(metric=metric, rule=rule, limit=limit, value=value, passed=passed, outcome=outcome,
                 low=interval.low, high=interval.high, level=interval.level, rows=interval.rows,
                 rows_needed=needed)


#: ``statistics.method`` → how a check is decided
JUDGES: dict[str, Callable[[str, str, float, float, Samples | None, Statistics], Check]] = {
    "paired-bootstrap": _interval, "none": _point,
}


def promotion_check(metric: str, higher_is_better: bool, champion: ChampionReport, tolerance: float,
                    statistics: Statistics | None = None) -> Check:
    """Whether the candidate may replace the champion: its loss on ``metric`` (the primary one)
    is within ``tolerance``, by the same paired test the gate uses (the whole interval within
    the tolerance; inconclusive does what ``statistics.on_inconclusive`` says)."""
    rule = "max_champion_drop" if higher_is_better else "max_champion_rise"
    empty = Evaluation(task="", baseline={}, candidate={}, eval_rows=0)
    return _check(metric, rule, tolerance, empty, champion, statistics or Statistics())
