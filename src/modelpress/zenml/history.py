"""What the compression did, carried by the model artifacts themselves.

Each technique step adds its stage's facts to its output model's artifact metadata
(``modelpress.stages``), after those its input model carried; so a model handed from step to
step (prune → quantize → register) brings its own history, in order, to whichever step records it,
and a cached step's artifact keeps it.
"""

from __future__ import annotations

from modelpress.core.handoffs import StageReport

KEY = "modelpress.stages"


def carried(input_name: str) -> list[StageReport]:
    """The stage reports the model this step received as ``input_name`` carries ([] for a
    model no technique step made)."""
    from zenml import get_step_context

    artifacts = get_step_context().inputs.get(input_name) or []
    reports = artifacts[0].run_metadata.get(KEY, []) if artifacts else []
    return [StageReport.model_validate(r) for r in reports] if isinstance(reports, list) else []


def attach(output_name: str, reports: list[StageReport]) -> None:
    """Record ``reports`` (the history so far, this step's last) on this step's output model."""
    from zenml import log_metadata

    log_metadata(metadata={KEY: [r.model_dump(mode="json") for r in reports]},
                 artifact_name=output_name, infer_artifact=True)
