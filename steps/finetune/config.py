"""Configs of the fine-tuning room (cheap to import: pydantic only).

The training budget (:class:`~modelpress.settings.training.TrainSettings`) is shared by ``finetune``
and ``distill``: both run the one training loop (``modelpress.training.fit``), so the same YAML
keys mean the same thing.
"""

from __future__ import annotations

from pydantic import Field

from modelpress.core.registry import StageConfig
from modelpress.settings.training import TrainSettings

__all__ = ["FinetuneConfig", "LoraSettings", "TrainSettings"]


class LoraSettings(StageConfig):
    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    # Module names to adapt; None = every Linear/Conv2d except ``train_modules``.
    target_modules: list[str] | None = None


class FinetuneConfig(TrainSettings, StageConfig):
    lora: LoraSettings | None = None  # given: LoRA (PEFT), merged back before export
    # Modules trained in full even under LoRA (the task head); None = the last Linear layer.
    train_modules: list[str] | None = None
    preserve_masks: bool = True  # weights exactly zero at the start (pruned) stay zero

    def ignored_fields(self) -> dict[str, str]:
        if self.lora is not None:
            return {}
        return {"train_modules": "without lora every weight trains; train_modules names what LoRA trains in full"}

    def required_modules(self) -> dict[str, str]:
        return {"peft": "finetune"} if self.lora is not None else {}

    def needs_eager(self) -> str | None:
        return "LoRA wraps Linear modules in adapters" if self.lora is not None else None
