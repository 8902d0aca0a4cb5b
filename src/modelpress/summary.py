"""The table printed at the end of ``modelpress run``."""

from __future__ import annotations

from typing import Any

import click

ROWS = (("size_mb", "size (MB)", "{:.2f}"), ("accuracy", "accuracy", "{:.4f}"), ("f1", "macro F1", "{:.4f}"),
        ("agreement", "top-1 agreement", "{:.4f}"), ("cosine", "embedding cosine", "{:.4f}"),
        ("latency_ms", "latency p50 (ms)", "{:.2f}"), ("latency_p95_ms", "latency p95 (ms)", "{:.2f}"))


def print_summary(result: Any) -> None:
    base, cand = result.evaluation["baseline"], result.evaluation["candidate"]
    click.echo(f"\nmodelpress run {result.run_name}")
    click.echo(f"{'':<20}{'baseline':>12}{'candidate':>12}{'ratio':>9}")
    for key, label, fmt in ROWS:
        ratio = cand[key] / base[key] if base[key] else float("nan")
        click.echo(f"{label:<20}{fmt.format(base[key]):>12}{fmt.format(cand[key]):>12}{ratio:>8.2f}x")
    verdict = "PASSED" if result.verdict["passed"] else "FAILED"
    click.echo(f"gate: {verdict} ({result.verdict['reason']})")
    reg, promo = result.registration, result.promotion
    aliases = ", ".join(f"@{a}" for a in reg.get("aliases", [])) or "no alias"
    click.echo(f"registry: {reg['name']} version {reg['version']} ({aliases}); "
               f"{'promoted to @' + str(promo['alias']) if promo['promoted'] else 'not promoted'}: {promo['reason']}")
    click.echo(f"MLflow: {result.tracking.tracking_uri} (run {reg['run_id']})")
    if result.cached_steps:
        click.echo(f"cached steps: {', '.join(result.cached_steps)}")
