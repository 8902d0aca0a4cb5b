"""Fine-tuning room: ``finetune`` stage (recovery fine-tuning, full or LoRA, under accelerate)."""

from modelpress.steps.finetune.config import FinetuneConfig, LoraSettings, TrainSettings
from modelpress.steps.finetune.stage import finetune

__all__ = ["FinetuneConfig", "LoraSettings", "TrainSettings", "finetune"]
