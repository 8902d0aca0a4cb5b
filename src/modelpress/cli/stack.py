"""``modelpress stack register``: give the user's own ZenML a stack with an MLflow tracker.

``modelpress run`` records in the user's ZenML when one is configured
(src/modelpress/tracking/zenml_config.py); a stack without an MLflow experiment tracker stops
the run with one line naming this command. ZenML loads inside the command (start-up stays fast).
"""

from __future__ import annotations

import click

from modelpress.cli.errors import user_errors
from modelpress.core.quiet import captured, new_log_path, verbose_requested
from modelpress.tracking.stack import STACK, TRACKER, home, register_stack


@click.group()
def stack() -> None:
    """Set up the ZenML stack `modelpress run` records in."""


@stack.command()
def register() -> None:
    """Add modelpress's sqlite MLflow tracker (under MODELPRESS_HOME) to a stack 'modelpress' in your ZenML
    (ZENML_CONFIG_PATH, else ZenML's global config), with your active stack's orchestrator, artifact store and
    other components, and make it active. Does nothing if the active stack already has an MLflow tracker."""
    log_path = new_log_path(home() / "logs", "stack-register")
    with user_errors(log_hint=str(log_path)):
        with captured(log_path, verbose_requested()):  # ZenML's own chatter goes to the log
            done = register_stack()
    if not done.created:
        click.echo(f"the active stack '{done.stack}' already has the MLflow tracker '{done.tracker}' "
                   f"({done.tracking_uri}); nothing registered. ZenML: {done.store}")
        return
    click.echo(f"stack '{STACK}' is active in your ZenML ({done.store}): your components, with the MLflow "
               f"tracker '{TRACKER}' ({done.tracking_uri}); `modelpress run` now records there")
