"""The ``finetune`` stage registration (cheap: the work lives in recovery.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.core.registry import register_stage
from modelpress.steps.finetune.config import FinetuneConfig

if TYPE_CHECKING:
    import torch

    from modelpress.tasks.context import StageContext


@register_stage("finetune", FinetuneConfig, kind="module",
                summary="recovery fine-tuning, full or LoRA (PEFT, merged back), keeps pruning masks; "
                        "accelerate (multi-GPU/process when launched so)")
def finetune(model: torch.nn.Module, config: FinetuneConfig, context: StageContext) -> torch.nn.Module:
    from modelpress.steps.finetune.recovery import run_finetune

    return run_finetune(model, config, context)
