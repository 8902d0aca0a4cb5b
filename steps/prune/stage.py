"""The ``prune`` stage: score → plan → cut (or mask) → recover, for each round of the schedule.

The input model is never modified (the stage works on a deep copy) and every plan is checked
in full before weights change, so a bad configuration fails fast with the user's model intact.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_stage
from modelpress.steps.prune.config import PruneConfig
from modelpress.steps.prune.measure import footprint, latency_report
from modelpress.steps.prune.rounds import make_round

if TYPE_CHECKING:
    import torch
    from torch import nn

    from modelpress.tasks.context import StageContext


@register_stage(
    "prune",
    PruneConfig,
    kind="module",
    summary="unstructured / structured (channels, FFN units, heads) / 2:4 pruning, "
    "scored by l1, l2, taylor or wanda, scheduled, with recovery fine-tune",
)
def prune(model: nn.Module, config: PruneConfig, context: StageContext) -> nn.Module:
    pruned = copy.deepcopy(model).eval()
    example = example_inputs(context)
    one_round = make_round(pruned, config, context, example)
    one_round.check(config.sparsity)  # the final plan must be valid before anything is cut
    for step, target in enumerate(config.schedule.targets(config.sparsity)):
        one_round.run(target)
        if config.recovery is not None and config.recovery.epochs > 0:
            recover(pruned, context, config, one_round.masks(), step)
    context.report.update(
        {
            "method": config.method,
            "score": config.score,
            "scope": config.scope,
            "steps": config.schedule.steps,
            **one_round.report(),
        }
    )
    context.report.update(footprint(model, "before"))
    context.report.update(footprint(pruned, "after"))
    if config.report_latency:
        context.report.update(latency_report(model, pruned, context))
    return pruned


def example_inputs(context: StageContext, rows: int = 2) -> dict[str, torch.Tensor]:
    import torch

    for split in ("calibration", "train", "eval"):
        frame = context.split(split)
        if len(frame):
            return {k: torch.from_numpy(v) for k, v in context.task.example(frame, rows).items()}
    raise ModelpressError("prune: the data has no rows to trace the model with")


def recover(
    model: nn.Module,
    context: StageContext,
    config: PruneConfig,
    masks: list[tuple[torch.nn.Parameter, torch.Tensor]],
    step: int,
) -> None:
    """Short supervised fine-tune; masked weights are re-zeroed after every optimiser step."""
    from modelpress.training import keep_masks
    from modelpress.training import recover as fine_tune

    assert config.recovery is not None
    fine_tune(model, context.task, context.train, config.recovery, seed=context.seed + step,
              desc=f"prune recovery {step + 1}/{config.schedule.steps}",
              after_step=keep_masks(masks) if masks else None)
