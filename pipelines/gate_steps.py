"""ZenML steps for the champion comparison, the gate report and drift checks.

Kept apart from ``steps.py`` so the compression steps stay thin; these are wired into the
same pipeline by ``compress.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from modelpress.core.handoffs import ChampionReport, Evaluation, PeerPoint, Ref, Verdict
from modelpress.datasets.validation import check_against_profile
from modelpress.gate.champion import measure_champion
from modelpress.gate.report import render_gate
from modelpress.pipelines.steps import data_config, eval_rows
from modelpress.settings.blocks import Drift, ModelRegistrySettings
from modelpress.tasks import TaskSpec, get_task


@step(enable_cache=False)  # the champion alias can move between runs: never reuse a comparison
def evaluate_champion(candidate: Any, dataset: pd.DataFrame, task: TaskSpec,
                      registry: ModelRegistrySettings) -> Annotated[ChampionReport, "champion"]:
    """The current champion's metrics beside the candidate's, on the same eval rows."""

    result = measure_champion(registry.name, registry.promote_to or "champion", candidate, task.build(),
                              eval_rows(dataset))
    log_metadata(metadata={"champion": result.model_dump(mode="json", exclude={"candidate"})})
    return result


@step
def gate_report(evaluation: Evaluation, verdict: Verdict, champion: ChampionReport, task: TaskSpec,
                peers: list[PeerPoint], name: str,
                notes: list[str] | None = None) -> Annotated[HTMLString, "gate_report"]:
    """The gate report as a dashboard visualization: table, checks, examples, quality-size-latency plot."""

    page, _ = render_gate(get_task(task.name), evaluation, verdict, champion, peers, name, notes or [])
    return HTMLString(page)


@step
def profile_data(dataset: pd.DataFrame, data: Ref, reference: dict[str, Any] | None, drift: Drift) -> tuple[
    Annotated[dict[str, Any], "data_profile"], Annotated[dict[str, Any], "drift_report"]
]:
    """Profile the data as its source does (recorded with the model for later drift checks) and,
    when retraining against a champion, validate it against the champion's profile; raises on drift."""

    report: dict[str, Any] = {"checked": False}
    if reference:
        report = {"checked": True, **check_against_profile(dataset, reference, drift.model_dump())}
        log_metadata(metadata={"drift": {k: v for k, v in report.items() if k != "suites"}})
    profile = data_config(data).profile(dataset)
    return profile, report  # a literal tuple: ZenML reads the return statement to count outputs
