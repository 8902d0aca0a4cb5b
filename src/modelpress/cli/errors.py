"""How every CLI command turns errors into one clear line and an exit status.

Exit 2 for a bad recipe, 1 for anything else the user can act on (a missing file, a registry
that cannot be reached, a model name that does not exist), 130 when interrupted. No traceback
reaches the console: an error that is not the user's (a bug) is reported in one line and its
traceback written to a file under ``$MODELPRESS_HOME/logs``; ``--verbose`` re-raises it.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from modelpress.core.errors import ModelpressError, RecipeError
from modelpress.core.quiet import new_log_path, verbose_requested
from modelpress.tracking.stack import home

EXIT_USER, EXIT_RECIPE, EXIT_INTERRUPTED = 1, 2, 130


@contextmanager
def user_errors(log_hint: str | None = None) -> Iterator[None]:
    """``log_hint``: where the full output of this command is kept (named in the error)."""
    try:
        yield
    except RecipeError as exc:
        _fail(str(exc), EXIT_RECIPE, prefix="")
    except ModelpressError as exc:
        _fail(str(exc), EXIT_USER, log_hint=log_hint)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED, log_hint=log_hint)
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # click prints these itself (usage errors, --help)
    except Exception as exc:  # noqa: BLE001 -- the one place every other error is turned into a line
        cause = user_cause(exc)
        if cause is not None:
            _fail(str(cause), EXIT_USER, log_hint=log_hint)
        known = known_problem(exc)
        if known is not None:
            _fail(known, EXIT_USER, log_hint=log_hint)
        if verbose_requested():
            raise
        _fail(f"internal error ({type(exc).__name__}: {_first_line(exc)}); traceback in "
              f"{_write_traceback(exc)} (rerun with --verbose to see it here)", EXIT_USER, log_hint=log_hint)


def _fail(message: str, code: int, prefix: str = "error: ", log_hint: str | None = None) -> None:
    hint = f" (full log: {log_hint})" if log_hint and code != EXIT_RECIPE else ""
    click.echo(f"{prefix}{message}{hint}", err=True)
    sys.exit(code)


def guarded(action: Callable[[], Any]) -> Any:
    with user_errors():
        return action()


def user_cause(exc: BaseException) -> ModelpressError | None:
    """The ModelpressError somewhere in ``exc``'s chain of causes, if any (ZenML re-raises a
    failed step's exception wrapped in its own)."""
    seen: BaseException | None = exc
    hops = 0
    while seen is not None and hops < 50:
        if isinstance(seen, ModelpressError):
            return seen
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    return None


def known_problem(exc: BaseException) -> str | None:
    """One line for the errors of the outside world a user fixes: files, servers, registries."""
    seen: BaseException | None = exc
    hops = 0
    while seen is not None and hops < 50:
        line = _describe(seen)
        if line is not None:
            return line
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    return None


def _describe(exc: BaseException) -> str | None:
    name = type(exc).__name__
    module = type(exc).__module__
    if name == "MlflowException" or module.startswith("mlflow."):
        return f"MLflow: {_first_line(exc)}"
    if module.startswith(("requests.", "urllib3.")) or isinstance(exc, ConnectionError):
        return f"cannot reach a server: {_first_line(exc)}"
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return f"{exc.strerror}: {exc.filename}" if exc.filename else _first_line(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror or _first_line(exc)}{': ' + str(exc.filename) if exc.filename else ''}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:500]


def _write_traceback(exc: BaseException) -> str:
    try:
        path = new_log_path(home() / "logs", "crash")
        path.write_text("".join(traceback.format_exception(exc)))
        return str(path)
    except OSError:
        return "(could not write it: rerun with --verbose)"
