"""Recovery fine-tuning after pruning/quantization: full or LoRA, masks preserved."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from torch import nn

from modelpress.steps.finetune.lora import attach_lora, mask_lora_deltas, merge_lora, trainable_share
from modelpress.steps.finetune.masks import apply_masks, detect_masks, mask_applier, sparsity
from modelpress.training import EpochReporter, Validation, carve_validation, fit, frame_batches, task_loss, validate

if TYPE_CHECKING:
    from modelpress.steps.finetune.config import FinetuneConfig
    from modelpress.tasks.context import StageContext


def run_finetune(model: nn.Module, config: FinetuneConfig, context: StageContext) -> nn.Module:
    seed = config.seed if config.seed is not None else context.seed
    train, val = carve_validation(context.train, config, seed, "finetune")
    tuned = copy.deepcopy(model).float()
    masks = detect_masks(tuned) if config.preserve_masks else {}
    before = validate(tuned, context.task, val, config.batch_size)
    if config.lora is not None:
        # The task names its head (the last Linear of a classifier; none for a causal LM).
        head = config.train_modules if config.train_modules is not None else context.task.head_modules(tuned)
        trainee = attach_lora(tuned, config.lora, head, context.task.protected_modules(tuned))
        # Base weights are frozen; adapters of pruned weights train through the mask, the
        # fully trained modules (the head) are re-masked after each step.
        mask_lora_deltas(trainee, masks)
        after_step = mask_applier(trainee, _saved_module_masks(trainee, masks)) if masks else None
    else:
        trainee = tuned
        after_step = mask_applier(tuned, masks) if masks else None
    share = trainable_share(trainee)
    reporter = EpochReporter(context.report, "finetune")
    # seed + 1: epoch e shuffles with seed + e, as this stage always has
    result = fit(trainee, task_loss(context.task), frame_batches(context.task, train, config.batch_size, seed + 1),
                 config, seed=seed, desc="finetune", validation=Validation(context.task, val),
                 after_step=after_step, on_epoch=reporter)
    final = merge_lora(trainee) if config.lora is not None else trainee
    if masks:
        # A merged LoRA delta is dense: re-zero the pruned weights so sparsity survives export.
        apply_masks(final, masks)
    final = final.to("cpu").eval()
    if result.is_main:
        after = validate(final, context.task, val, config.batch_size)
        reporter.summary(result)
        context.report.update({
            "method": "lora" if config.lora is not None else "full",
            "trainable_share": round(share, 6),
            "val_accuracy_before": round(before["val_accuracy"], 6),
            "val_accuracy_after": round(after["val_accuracy"], 6),
            "val_loss_before": round(before["val_loss"], 6),
            "val_loss_after": round(after["val_loss"], 6),
            "masked_tensors": len(masks),
            "sparsity": round(sparsity(final, masks), 6),
            "train_rows": len(train), "val_rows": len(val),
        })
    return final


def _saved_module_masks(peft_model: nn.Module, masks: dict) -> dict:
    """Masks keyed by the trainable copies PEFT makes of ``modules_to_save`` (the head)."""
    renamed = {}
    for name, _ in peft_model.named_parameters():
        if ".modules_to_save.default." in name:
            original = name.removeprefix("base_model.model.").replace(".modules_to_save.default", "")
            if original in masks:
                renamed[name] = masks[original]
    return renamed
