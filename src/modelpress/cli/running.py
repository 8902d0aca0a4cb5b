"""Running a pipeline from the command line: quiet output, one summary, the log kept with the run."""

from __future__ import annotations

import os
from typing import Any

import click

from modelpress.cli.errors import user_errors
from modelpress.core.quiet import captured, keep_with_run, new_log_path, verbose_requested
from modelpress.gate.summary import print_summary
from modelpress.tracking.stack import home


def run_logged(label: str, pipeline: Any, verbose: bool = False) -> Any:
    """Run ``pipeline()`` with its output captured (quiet.py), print the summary, keep the full
    log as the registered version's MLflow artifact ``logs/``; errors become one line."""
    log_path = new_log_path(home() / "logs", label)
    if not verbose_requested(verbose):  # a bar per downloaded champion file is noise, not progress
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with user_errors(log_hint=str(log_path)):
        with captured(log_path, verbose_requested(verbose)):
            result = pipeline()
        print_summary(result)
        if not result.tracking.embedded:  # the user's own ZenML: say where to look for the run
            click.echo(f"zenml: run {result.run_name} on stack '{result.tracking.stack}' ({result.tracking.store})")
        kept = keep_with_run(log_path, result.tracking.tracking_uri or None, result.registration.run_id)
        click.echo(f"log: {log_path}" + (" (also in the MLflow run, logs/)" if kept else ""))
    return result
