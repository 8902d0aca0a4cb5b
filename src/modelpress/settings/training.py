"""Training budgets (pydantic only, cheap to import: stage configs use them at recipe load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelpress.core.registry import StrictConfig


class TrainSettings(StrictConfig):
    """The training budget shared by ``finetune`` and ``distill`` (same YAML keys, same meaning)."""

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
    monitor: Literal["accuracy", "loss"] | None = Field(
        None, description="what early stopping watches on the validation slice; None: the task's "
        "choice (accuracy for classifiers, the loss for a causal LM)")
    patience: int = Field(2, ge=0, description="epochs without improvement before stopping; 0 = never")
    max_train_rows: int | None = Field(None, ge=2, description="cap the train split (budget)")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on a CUDA GPU that has it
    checkpoint_dir: str | None = None  # None: a temporary folder, removed afterwards
    seed: int | None = None  # None: the pipeline's seed


class Recovery(StrictConfig):
    """A short supervised fine-tune after a stage changed the model (pruning rounds, low-rank
    factoring): plain AdamW at a constant rate on the train split, no validation slice;
    pruned weights stay pruned."""

    epochs: int = Field(1, ge=0, le=100)
    lr: float = Field(1e-3, gt=0.0, lt=1.0)
    batch_size: int = Field(64, ge=1)
    max_rows: int | None = Field(None, ge=1, description="use at most this many training rows")

    def settings(self) -> TrainSettings:
        return plain_settings(self.epochs, self.lr, self.batch_size)


def plain_settings(epochs: int, lr: float, batch_size: int) -> TrainSettings:
    """Plain training: constant lr, no warm-up, no clipping, fp32, keep the last epoch."""
    return TrainSettings(epochs=epochs, lr=lr, batch_size=batch_size, schedule="constant", warmup=0,
                         max_grad_norm=None, patience=0, mixed_precision="no")
