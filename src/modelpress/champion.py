"""The registry's current champion, measured beside the candidate on the same eval rows.

Gate thresholds relative to the champion (``max_champion_drop``/``max_champion_ratio``) and
the promotion decision need the champion's numbers on *this* run's eval data and machine,
not the numbers recorded when it was promoted (other data, other load on the machine), so
the champion's ONNX model is pulled from the registry and timed interleaved with the
candidate, exactly like the baseline.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx
    import pandas as pd

    from .tasks import Task


def tracking_uri_from_stack() -> str | None:
    """The MLflow tracking URI: the environment's, else the active ZenML stack tracker's."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    try:
        from zenml.client import Client

        tracker = Client().active_stack.experiment_tracker
        return tracker.get_tracking_uri() if tracker is not None else None  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 -- no ZenML stack (plain library use): MLflow's own default applies
        return None


def measure_champion(name: str, alias: str, candidate: onnx.ModelProto, task: Task,
                     eval_frame: pd.DataFrame, with_memory: bool = True) -> dict[str, Any]:
    """``{}`` without a champion; else its version, its metrics and the candidate's beside it.

    A champion that cannot be loaded or run is reported as ``error`` (the gate then fails
    its champion checks rather than skipping them).
    """
    import mlflow

    from modelpress.deploy.registry import alias_version

    uri = tracking_uri_from_stack()
    if uri:
        mlflow.set_tracking_uri(uri)
    holder = alias_version(name, alias)
    if holder is None:
        return {}
    try:
        champion = mlflow.onnx.load_model(f"models:/{name}/{holder.version}")
        report = _compare(champion, candidate, task, eval_frame, with_memory)
    except Exception as exc:  # noqa: BLE001 -- any failure to measure must block promotion, with the reason
        return {"version": holder.version, "error": f"{type(exc).__name__}: {exc}"[:1000]}
    return {"version": holder.version, "alias": alias, "metrics": report["baseline"],
            "candidate": report["candidate"]}


def _compare(champion: onnx.ModelProto, candidate: onnx.ModelProto, task: Task,
             eval_frame: pd.DataFrame, with_memory: bool) -> dict[str, dict[str, float]]:
    from .evaluate import compare_onnx
    from .memory import add_peak_memory

    report = compare_onnx(champion, candidate, task, eval_frame)
    if with_memory:
        report = add_peak_memory(report, {"baseline": champion, "candidate": candidate},
                                 task.timing_batch(eval_frame, 32))
    return report
