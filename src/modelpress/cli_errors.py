"""How every CLI command turns user errors into one clear line and an exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from .errors import ModelpressError, RecipeError


@contextmanager
def user_errors() -> Iterator[None]:
    """Exit 2 for a bad recipe, 1 for any other error the user can act on; bugs still raise."""
    try:
        yield
    except RecipeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except ModelpressError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RuntimeError as exc:  # ZenML re-raises a failed step as RuntimeError
        cause = user_cause(exc)
        if cause is None:
            raise
        click.echo(f"error: {cause}", err=True)
        sys.exit(1)


def guarded(action: Callable[[], Any]) -> Any:
    with user_errors():
        return action()


def user_cause(exc: BaseException) -> ModelpressError | None:
    """The ModelpressError somewhere in ``exc``'s chain of causes, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModelpressError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
