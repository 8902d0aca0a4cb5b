"""The ``distill`` stage registration (cheap: the work lives in chain.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.core.registry import register_stage
from modelpress.steps.distill.config import DistillConfig

if TYPE_CHECKING:
    import torch

    from modelpress.tasks.context import StageContext


@register_stage("distill", DistillConfig, kind="module",
                summary="knowledge distillation into a smaller student (temperature KD, hidden/attention "
                        "matching, teacher-assistant chains), under accelerate")
def distill(model: torch.nn.Module, config: DistillConfig, context: StageContext) -> torch.nn.Module:
    from modelpress.steps.distill.chain import run_distill

    return run_distill(model, config, context)
