"""Configs of the fine-tuning room (cheap to import: pydantic only).

:class:`TrainSettings` is the training budget shared by ``finetune`` and ``distill``: both
run the same accelerate loop (``loop.py``), so the same YAML keys mean the same thing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelpress.registry import StageConfig


class TrainSettings(StageConfig):
    epochs: int = Field(3, ge=1)
    lr: float = Field(5e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step")
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup: float = Field(0.06, ge=0, lt=1, description="share of optimiser steps spent warming up")
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    # Early stopping watches a validation slice carved from the train split: the eval split
    # belongs to the gate and must never steer training.
    val_fraction: float = Field(0.1, gt=0, le=0.5)
    monitor: Literal["accuracy", "loss"] = "accuracy"
    patience: int = Field(2, ge=0, description="epochs without improvement before stopping; 0 = never")
    max_train_rows: int | None = Field(None, ge=2, description="cap the train split (budget)")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on a CUDA GPU that has it
    checkpoint_dir: str | None = None  # None: a temporary folder, removed afterwards
    seed: int | None = None  # None: the pipeline's seed


class LoraSettings(StageConfig):
    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    # Module names to adapt; None = every Linear/Conv2d except ``train_modules``.
    target_modules: list[str] | None = None


class FinetuneConfig(TrainSettings):
    lora: LoraSettings | None = None  # given: LoRA (PEFT), merged back before export
    # Modules trained in full even under LoRA (the task head); None = the last Linear layer.
    train_modules: list[str] | None = None
    preserve_masks: bool = True  # weights exactly zero at the start (pruned) stay zero
