"""The table printed at the end of ``modelpress run``: the task's metrics, baseline vs candidate."""

from __future__ import annotations

from typing import Any

import click


def print_summary(result: Any) -> None:
    from .registry import get_task

    evaluation = result.evaluation
    base, cand = evaluation.baseline, evaluation.candidate
    click.echo(f"\nmodelpress run {result.run_name}")
    click.echo(f"{'':<20}{'baseline':>12}{'candidate':>12}{'ratio':>9}")
    for metric in get_task(evaluation.task).metrics:
        if metric.name not in base or metric.name not in cand:
            continue
        ratio = cand[metric.name] / base[metric.name] if base[metric.name] else float("nan")
        click.echo(f"{metric.label:<20}{metric.fmt.format(base[metric.name]):>12}"
                   f"{metric.fmt.format(cand[metric.name]):>12}{ratio:>8.2f}x")
    verdict = "PASSED" if result.verdict.passed else "FAILED"
    click.echo(f"gate: {verdict} ({result.verdict.reason})")
    reg, promo = result.registration, result.promotion
    aliases = ", ".join(f"@{a}" for a in reg.aliases) or "no alias"
    click.echo(f"registry: {reg.name} version {reg.version} ({aliases}); "
               f"{'promoted to @' + str(promo.alias) if promo.promoted else 'not promoted'}: {promo.reason}")
    click.echo(f"MLflow: {result.tracking.tracking_uri} (run {reg.run_id})")
    if result.cached_steps:
        click.echo(f"cached steps: {', '.join(result.cached_steps)}")
