"""The ``modelpress`` command line: run, validate, stages (and later pull/promote/…).

Start-up stays fast: heavy modules are imported inside the commands that use them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .errors import GateFailed, ModelpressError, RecipeError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelpress")
def main() -> None:
    """Compress PyTorch models in ZenML pipelines, gate them and register them in MLflow."""


def _load(recipe_ref: str) -> Any:
    from .recipe import load_recipe

    return load_recipe(recipe_ref)


@main.command()
@click.argument("recipe")
def validate(recipe: str) -> None:
    """Check RECIPE (a file or a shipped recipe name); print every problem with its field path."""
    try:
        loaded = _load(recipe)
    except RecipeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    click.echo(f"{recipe}: ok ({loaded.task}, stages: {', '.join(s.name for s in loaded.stages)})")


@main.command()
def stages() -> None:
    """List the registered stages with each config's fields."""
    from .registry import stages as registered

    for name, spec in sorted(registered().items()):
        click.echo(f"{name} [{spec.kind}]: {spec.summary}")
        for field_name, field in spec.config.model_fields.items():
            default = "required" if field.is_required() else f"default {field.default!r}"
            annotation = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
            click.echo(f"    {field_name}: {annotation} ({default})")


@main.command()
@click.argument("recipe")
@click.option("--no-cache", is_flag=True, help="Re-run every step instead of reusing ZenML's cache.")
def run(recipe: str, no_cache: bool) -> None:
    """Run RECIPE end to end: data → validate → baseline → stages → gate → MLflow → promote."""
    try:
        loaded = _load(recipe)
        from modelpress.pipelines.run import run_recipe

        from .summary import print_summary

        result = run_recipe(loaded, enable_cache=not no_cache)
        print_summary(result)
        if not result.passed:
            raise GateFailed(f"gate failed: {result.verdict['reason']}")
    except RecipeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except ModelpressError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RuntimeError as exc:  # ZenML re-raises a failed step as RuntimeError
        cause = _user_cause(exc)
        if cause is None:
            raise
        click.echo(f"error: {cause}", err=True)
        sys.exit(1)


def _user_cause(exc: BaseException) -> ModelpressError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModelpressError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


if __name__ == "__main__":
    main()
