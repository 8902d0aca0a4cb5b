"""Public steps that check their parameters when the pipeline is composed, not deep inside a run.

ZenML validates a step's parameters against their type annotations, one at a time, in two
places: when the step is called in the pipeline function, and when a run configuration
(``with_options(config_path=...)``) sets them at compile time. A public step's parameters are
recipe syntax (a stage config as a dict, a task by name with options), so their real checks
need the registered config classes and one another (a gate threshold against the task's
metrics). :class:`CheckedStep` runs the step's own check on every parameter known at both
points, and a bad one stops the pipeline with one line naming the step and the field.

ZenML has no public hook for this; the two overridden methods are the ones its
``BaseStep.__call__`` and its compiler call (pinned ZenML 0.98), and each calls ZenML's own
validation as well.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ValidationError
from zenml.steps import BaseStep
from zenml.steps.decorated_step import _DecoratedStep  # what @step instantiates (see public_step)

from modelpress.core.errors import ModelpressError
from modelpress.recipe.schema import format_errors

Check = Callable[[str, Mapping[str, Any]], None]


class StepParameterError(ModelpressError):
    """A public step was given a parameter it cannot use (raised while the pipeline is composed)."""


class CheckedStep(_DecoratedStep):
    """A decorated step whose parameters are checked by ``parameter_check`` (set per step)."""

    parameter_check: Check | None = None

    def _parse_call_args(self, *args: Any, **kwargs: Any) -> Any:
        parsed = super()._parse_call_args(*args, **kwargs)
        parameters, defaults = parsed[4], parsed[5]
        # Parameters a run configuration sets later are absent here; each check looks only at
        # what it is given, and runs again with the whole set at compile time.
        self._check({**defaults, **self.configuration.parameters, **parameters})
        return parsed

    def _validate_configuration(self, config: Any, runtime_parameters: dict[str, Any]) -> None:
        if config.parameters:
            self._check({**self.configuration.parameters, **runtime_parameters, **config.parameters})
        super()._validate_configuration(config, runtime_parameters)

    def _check(self, parameters: Mapping[str, Any]) -> None:
        check = type(self).parameter_check
        if check is not None:
            check(self.name, parameters)


def public_step(check: Check | None = None, **step_options: Any) -> Callable[[Callable[..., Any]], BaseStep]:
    """``@step(**step_options)`` whose parameters are checked by ``check(step_name, parameters)``."""
    from zenml import step

    def decorate(func: Callable[..., Any]) -> BaseStep:
        instance = step(**step_options)(func)
        # The same class ZenML made (its name and module resolve the step's source), with the check.
        instance.__class__ = type(func.__name__, (CheckedStep,), {
            "entrypoint": staticmethod(func), "__module__": func.__module__, "__doc__": func.__doc__,
            "parameter_check": staticmethod(check) if check is not None else None})
        return instance

    return decorate


def validated(cls: type[BaseModel], value: Any, where: str) -> Any:
    """``value`` (a dict, or an instance of ``cls`` or of another pydantic class) as ``cls``;
    the first problem in one line led by ``where`` and the field's path."""
    raw = value.model_dump(mode="json", by_alias=True, exclude_unset=True) if isinstance(value, BaseModel) else value
    try:
        return cls.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        first = format_errors(exc)[0]
        nested = bool(exc.errors(include_url=False)[0]["loc"])
        raise StepParameterError(f"{where}.{first}" if nested else f"{where}: {first}") from None


#: ZenML's local orchestrator logs a failed step with its traceback, then raises this
ZENML_RUN_FAILED = "Pipeline run has failed due to failure in step(s)"
STEP_FAILURES = "zenml.orchestrators.local.local_orchestrator"


class _StepFailures(logging.Filter):
    """Keeps the modelpress errors that failed steps of this process, and drops their tracebacks
    from ZenML's log (ZenML has already logged the error's one line)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ModelpressError):
            self.errors.append(str(record.exc_info[1]))
            record.exc_info, record.exc_text = None, None
        return True


def _one_line_hook(previous: Any, failures: _StepFailures) -> Any:
    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, ModelpressError):
            print(f"modelpress: {exc}", file=sys.stderr)
        elif isinstance(exc, RuntimeError) and str(exc).startswith(ZENML_RUN_FAILED) and failures.errors:
            for error in failures.errors:
                print(f"modelpress: {error}", file=sys.stderr)
        else:
            previous(kind, exc, tb)

    hook.modelpress = True  # type: ignore[attr-defined]
    return hook


def install_error_hook() -> None:
    """A user's script that dies on a modelpress error (a bad parameter while the pipeline is
    composed, bad data in a step) prints its one line, not a traceback; every other exception
    goes to the hook that was there before (ZenML's)."""
    if getattr(sys.excepthook, "modelpress", False):
        return
    failures = _StepFailures()
    logging.getLogger(STEP_FAILURES).addFilter(failures)
    sys.excepthook = _one_line_hook(sys.excepthook, failures)
