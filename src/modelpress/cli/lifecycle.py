"""CLI commands for the registry and the recipe lifecycle: promote, rollback, search, retrain,
schedule. Only click is imported here (start-up stays fast); the rest loads inside commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from modelpress.cli.errors import guarded as _guarded
from modelpress.cli.running import run_logged
from modelpress.core.errors import ModelpressError
from modelpress.core.quiet import captured, new_log_path, verbose_requested
from modelpress.core.safe_yaml import load_recipe_yaml
from modelpress.pipelines.retrain import retrain as run_retrain
from modelpress.pipelines.retrain import schedule_retraining
from modelpress.pipelines.search import run_search
from modelpress.recipe.schema import load_recipe, resolve_recipe_path
from modelpress.release.promotion import promote_across, promote_version
from modelpress.release.promotion import rollback as roll_back
from modelpress.tracking.stack import home


def _tracking_uri(given: str | None) -> str | None:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the embedded stack's sqlite registry."""
    if given:
        return given
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]

    database = home() / "mlflow.db"
    if database.exists():
        return f"sqlite:///{database}"
    raise ModelpressError(f"no MLflow registry: pass --tracking-uri, set MLFLOW_TRACKING_URI, or run from the "
                          f"folder whose .modelpress holds it (looked for {database})")


def _outcome_line(outcome: Any) -> str:
    verb = "promoted" if outcome.promoted else "not promoted"
    checks = "".join(f"\n  gate {line}" for line in getattr(outcome, "checks", ()))
    return f"{outcome.name} v{outcome.version}: {verb} to @{outcome.alias} ({outcome.reason}){checks}"


@click.command()
@click.argument("name")
@click.option("--version", "version", default=None, help="Version to promote (default: the one at --from-alias).")
@click.option("--from-alias", default="challenger", show_default=True, help="Alias naming the version to promote.")
@click.option("--alias", default="champion", show_default=True, help="Alias to move.")
@click.option("--tolerance", default=0.0, show_default=True, type=float,
              help="Accuracy the new version may lose versus the current holder.")
@click.option("--force", is_flag=True, help="Promote even if the gate failed or the holder scores better.")
@click.option("--tracking-uri", default=None, help="Registry (default: MLFLOW_TRACKING_URI or ./.modelpress).")
@click.option("--to", "target_uri", default=None,
              help="Another registry (e.g. the production tracking server): copy the version there, then promote.")
def promote(name: str, version: str | None, from_alias: str, alias: str, tolerance: float, force: bool,
            tracking_uri: str | None, target_uri: str | None) -> None:
    """Move @ALIAS of registered model NAME to a version that passed its gate (check-then-set)."""

    def act() -> None:
        source = _tracking_uri(tracking_uri)
        if target_uri:
            outcome = promote_across(name, version, source, target_uri, alias, from_alias, tolerance, force)
            click.echo(f"copied to {target_uri}: " + _outcome_line(outcome))
        else:
            outcome = promote_version(name, version, from_alias, alias, tolerance, force, source)
            click.echo(_outcome_line(outcome))
        if not outcome.promoted:
            sys.exit(1)

    _guarded(act)


@click.command()
@click.argument("name")
@click.option("--alias", default="champion", show_default=True)
@click.option("--tracking-uri", default=None, help="Registry (default: MLFLOW_TRACKING_URI or ./.modelpress).")
def rollback(name: str, alias: str, tracking_uri: str | None) -> None:
    """Put @ALIAS of NAME back on the version that held it before the current one."""

    def act() -> None:
        outcome = roll_back(name, alias, _tracking_uri(tracking_uri))
        click.echo(f"{name}: {outcome.reason}")

    _guarded(act)


@click.command()
@click.argument("recipe")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing ZenML's cache.")
def search(recipe: str, no_cache: bool) -> None:
    """Run every candidate of RECIPE's search grid, promote the best passing one, report the Pareto set."""

    def act() -> None:
        loaded = load_recipe(recipe)
        if loaded.search is None:
            raise ModelpressError(f"{recipe}: no `search:` block (see `modelpress search --help`)")
        raw = load_recipe_yaml(resolve_recipe_path(recipe))
        log_path = new_log_path(home() / "logs", f"{loaded.name}-search")
        with captured(log_path, verbose_requested()):
            result = run_search(loaded, raw, enable_cache=not no_cache)
        _print_search(result)
        click.echo(f"log: {log_path}")

    _guarded(act)


def _print_search(result: Any) -> None:
    objective = result.summary["objective"]
    primary = result.primary
    click.echo(f"\n{'#':>3} {'gate':<5}{primary[:10]:>11}{'size MB':>9}{'lat ms':>8}  P  candidate")
    for r in result.rows:
        click.echo(f"{r['index']:>3} {'pass' if r['passed'] else 'FAIL':<5}{r[primary]:>11.4f}{r['size_mb']:>9.3f}"
                   f"{r['latency_ms']:>8.2f}  {'*' if r['pareto'] else ' '}  {r['candidate']}")
    if result.best:
        click.echo(f"best on {objective}: #{result.best['index']} ({result.best['candidate']}), "
                   f"v{result.best['version']}; {result.promotion['reason']}")
    else:
        click.echo("no candidate passed the gate; nothing promoted")
    if "single_over_composed" in result.summary:
        click.echo(f"best composed vs best single technique on {objective}: "
                   f"{result.summary['single_over_composed']:.2f}x smaller")
    click.echo(f"Pareto report: {result.report_path}")


@click.command()
@click.argument("name")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Fresh data (CSV/Parquet, same columns as the champion's data); default: the recipe's own source.")
@click.option("--alias", default="champion", show_default=True, help="Whose recipe and data profile to use.")
@click.option("-v", "--verbose", is_flag=True, help="Show every library's output, not only steps and progress.")
def retrain(name: str, data: Path | None, alias: str, verbose: bool) -> None:
    """Retrain registered model NAME: check fresh data for drift, re-run its champion's recipe, gate, promote."""

    def pipeline() -> Any:
        return run_retrain(name, data, alias)

    run_logged(f"{name}-retrain", pipeline, verbose)


@click.command()
@click.argument("recipe")
def schedule(recipe: str) -> None:
    """Register RECIPE's `schedule: {cron}` as a ZenML schedule (orchestrators that support it)."""

    def act() -> None:
        info = schedule_retraining(load_recipe(recipe))
        click.echo(f"scheduled {info['name']} ({info['cron']}) on orchestrator {info['orchestrator']} "
                   f"({info['flavor']}); drift reference: "
                   f"{'champion profile' if info['drift_reference'] else 'none yet'}")

    _guarded(act)


COMMANDS = (promote, rollback, search, retrain, schedule)
