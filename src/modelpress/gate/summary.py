"""The table printed at the end of ``modelpress run``: the task's metrics, baseline vs candidate."""

from __future__ import annotations

from typing import Any

import click

from modelpress.tasks import get_task


def print_summary(result: Any) -> None:
    evaluation = result.evaluation
    base, cand = evaluation.baseline, evaluation.candidate
    click.echo(f"\nmodelpress run {result.run_name}")
    shown = [m for m in get_task(evaluation.task).metrics if m.name in base and m.name in cand]
    width = max([20, *(len(m.label) + 1 for m in shown)])
    click.echo(f"{'':<{width}}{'baseline':>12}{'candidate':>12}{'ratio':>9}")
    for metric in shown:
        # no ratio to a zero baseline (a causal LM's KL to itself)
        ratio = f"{cand[metric.name] / base[metric.name]:>8.2f}x" if base[metric.name] else f"{'-':>9}"
        click.echo(f"{metric.label:<{width}}{metric.fmt.format(base[metric.name]):>12}"
                   f"{metric.fmt.format(cand[metric.name]):>12}{ratio}")
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


def runtime_lines(evaluation: Any) -> list[str]:
    """Where the speed figures (latency, tokens/s) come from, per model: one line each, or one
    line when both ran on the same runtime."""
    runtimes = evaluation.runtimes
    if not runtimes:
        return []
    if len(set(runtimes.values())) == 1:
        return [f"speed measured on: {next(iter(runtimes.values()))} (both)"]
    return [f"speed measured on ({name}): {label}" for name, label in runtimes.items()]
