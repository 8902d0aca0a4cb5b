"""The registry's current champion, measured beside the candidate on the same eval rows.

Gate thresholds relative to the champion (``max_champion_drop``/``max_champion_ratio``) and
the promotion decision need the champion's numbers on *this* run's eval data and machine,
not the numbers recorded when it was promoted (other data, other load on the machine), so
the champion is loaded from the registry (by the build that registered it: its ONNX graph, or
its PyTorch module) and evaluated by the task beside the candidate, exactly like the baseline.
Promotion reuses this measurement; it measures again only if the alias moved to another
version in the meantime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelpress.core.handoffs import ChampionReport
from modelpress.core.registry import BUILDS
from modelpress.tracking.model_registry import alias_version
from modelpress.tracking.uris import point_mlflow_at, tracking_uri_from_stack

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task


def measure_champion(name: str, alias: str, candidate: Any, task: Task,
                     eval_frame: pd.DataFrame) -> ChampionReport:
    """No version without a champion; else its metrics and the candidate's beside them.

    A champion that cannot be loaded or run is reported as ``error`` (the gate then fails
    its champion checks rather than skipping them).
    """

    point_mlflow_at(tracking_uri_from_stack())
    holder = alias_version(name, alias)
    if holder is None:
        return ChampionReport()
    return measure_version(name, str(holder.version), alias, candidate, task, eval_frame)


def measure_version(name: str, version: str, alias: str | None, candidate: Any, task: Task,
                    eval_frame: pd.DataFrame) -> ChampionReport:
    """``version`` of ``name`` evaluated beside ``candidate`` (a graph or a module, as the task's)."""

    try:
        champion = BUILDS.get(task.registered_build).load_registered(f"models:/{name}/{version}")
        evaluation = task.evaluate(champion, candidate, eval_frame)
    except Exception as exc:  # noqa: BLE001 -- any failure to measure must block promotion, with the reason
        return ChampionReport(version=version, alias=alias, error=f"{type(exc).__name__}: {exc}"[:1000])
    return ChampionReport(version=version, alias=alias, metrics=evaluation.baseline, candidate=evaluation.candidate,
                          samples=evaluation.samples)  # per-row values, the champion's as the baseline's
