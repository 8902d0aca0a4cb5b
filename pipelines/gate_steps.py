"""ZenML steps for the champion comparison, the gate report and drift checks.

Kept apart from ``steps.py`` so the compression steps stay thin; these are wired into the
same pipeline by ``compress.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

import onnx
import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from .steps import _task


@step(enable_cache=False)  # the champion alias can move between runs: never reuse a comparison
def evaluate_champion(candidate: onnx.ModelProto, dataset: pd.DataFrame, task: dict[str, Any],
                      registry: dict[str, Any]) -> Annotated[dict[str, Any], "champion"]:
    """The current champion's metrics beside the candidate's, on the same eval rows ({} if none)."""
    from modelpress.champion import measure_champion

    alias = registry.get("promote_to") or "champion"
    result = measure_champion(registry["name"], alias, candidate, _task(task),
                              dataset[dataset["split"] == "eval"])
    log_metadata(metadata={"champion": {k: v for k, v in result.items() if k != "candidate"}})
    return result


@step
def gate_report(evaluation: dict[str, dict[str, float]], verdict: dict[str, Any], champion: dict[str, Any],
                peers: list[dict[str, Any]], name: str) -> Annotated[HTMLString, "gate_report"]:
    """The gate report as a dashboard visualization: table, checks, accuracy-size-latency plot."""
    from modelpress.report import render_gate

    page, _ = render_gate(evaluation, verdict, champion, peers, name)
    return HTMLString(page)


@step
def profile_data(dataset: pd.DataFrame, reference: dict[str, Any] | None, drift: dict[str, Any]) -> tuple[
    Annotated[dict[str, Any], "data_profile"], Annotated[dict[str, Any], "drift_report"]
]:
    """Profile the data (recorded with the model for later drift checks) and, when retraining
    against a champion, validate it against the champion's profile; raises on drift."""
    from modelpress.validation import check_against_profile, data_profile

    report: dict[str, Any] = {"checked": False}
    if reference:
        report = {"checked": True, **check_against_profile(dataset, reference, drift)}
        log_metadata(metadata={"drift": {k: v for k, v in report.items() if k != "suites"}})
    profile = data_profile(dataset)
    return profile, report  # a literal tuple: ZenML reads the return statement to count outputs
