"""Fine-tuning room: ``finetune`` stage (recovery fine-tuning, full or LoRA, under accelerate)."""

from .config import FinetuneConfig, LoraSettings, TrainSettings
from .stage import finetune

__all__ = ["FinetuneConfig", "LoraSettings", "TrainSettings", "finetune"]
