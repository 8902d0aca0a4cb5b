"""The ``distill`` stage registration (cheap: the work lives in chain.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.registry import register_stage

from .config import DistillConfig

if TYPE_CHECKING:
    import torch

    from modelpress.context import StageContext


@register_stage("distill", DistillConfig, kind="module",
                summary="knowledge distillation into a smaller student (temperature KD, hidden/attention "
                        "matching, teacher-assistant chains), under accelerate")
def distill(model: torch.nn.Module, config: DistillConfig, context: StageContext) -> torch.nn.Module:
    from .chain import run_distill

    return run_distill(model, config, context)
