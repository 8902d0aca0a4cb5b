"""The table printed at the end of ``modelpress run``: the task's metrics, baseline vs candidate,
with the paired interval of each difference (of the ratio, for timings) where rows were kept,
and every gate check with its interval."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from modelpress.core.intervals import paired_interval
from modelpress.gate.rules import describe
from modelpress.tasks import get_task

if TYPE_CHECKING:
    from modelpress.core.handoffs import Samples

#: how the summary compares two models on a statistic: a timing by ratio, the rest by difference
COMPARED: dict[str, tuple[str, Callable[[float, float], float], str]] = {
    "median": ("ratio", lambda cand, base: cand / base if base else float("nan"), "{:.3g}"),
}
DIFFERENCE: tuple[str, Callable[[float, float], float], str] = ("Δ", lambda cand, base: cand - base, "{:+.4g}")


def print_summary(result: Any) -> None:
    evaluation = result.evaluation
    base, cand = evaluation.baseline, evaluation.candidate
    click.echo(f"\nmodelpress run {result.run_name}")
    shown = [m for m in get_task(evaluation.task).shown_metrics(base) if m.name in cand]
    width = max([20, *(len(m.label) + 1 for m in shown)])
    level = next((c.level for c in result.verdict.checks if c.level is not None), 0.95)
    click.echo(f"{'':<{width}}{'baseline':>12}{'candidate':>12}{'ratio':>9}   {level:.0%} interval (paired)")
    for metric in shown:
        # no ratio to a zero baseline (a causal LM's KL to itself)
        ratio = f"{cand[metric.name] / base[metric.name]:>8.2f}x" if base[metric.name] else f"{'-':>9}"
        samples = evaluation.samples.get(metric.name)
        click.echo(f"{metric.label:<{width}}{metric.fmt.format(base[metric.name]):>12}"
                   f"{metric.fmt.format(cand[metric.name]):>12}{ratio}   {_interval(samples, level)}")
    for check in result.verdict.checks:
        click.echo(f"  check {describe(check)}")
    for line in runtime_lines(evaluation):
        click.echo(line)
    for note in getattr(result, "notes", ()):
        click.echo(f"note: {note}")
    verdict = "PASSED" if result.verdict.passed else "FAILED"
    click.echo(f"gate: {verdict} ({result.verdict.reason})")
    reg, promo = result.registration, result.promotion
    aliases = ", ".join(f"@{a}" for a in reg.aliases) or "no alias"
    click.echo(f"registry: {reg.name} version {reg.version} ({aliases}); "
               f"{'promoted to @' + str(promo.alias) if promo.promoted else 'not promoted'}: {promo.reason}")
    click.echo(f"MLflow: {result.tracking.tracking_uri} (run {reg.run_id})")
    if result.cached_steps:
        click.echo(f"cached steps: {', '.join(result.cached_steps)}")


def _interval(samples: Samples | None, level: float) -> str:
    """``Δ [low, high]`` of candidate − baseline (``ratio [low, high]`` for a timing), or ``-``."""
    if samples is None:
        return "-"
    name, derive, fmt = COMPARED.get(samples.statistic, DIFFERENCE)
    found = paired_interval(samples, derive, level)
    return f"{name} [{fmt.format(found.low)}, {fmt.format(found.high)}]"


def runtime_lines(evaluation: Any) -> list[str]:
    """Where the speed figures (latency, tokens/s) come from, per model: one line each, or one
    line when both ran on the same runtime."""
    runtimes = evaluation.runtimes
    if not runtimes:
        return []
    if len(set(runtimes.values())) == 1:
        return [f"speed measured on: {next(iter(runtimes.values()))} (both)"]
    return [f"speed measured on ({name}): {label}" for name, label in runtimes.items()]
