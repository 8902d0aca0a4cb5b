"""Fine-tuning a pruned model keeps its pruned weights exactly zero (full and LoRA)."""

from __future__ import annotations

import pytest

from modelpress.core.registry import get_stage
from modelpress.steps.finetune import FinetuneConfig
from modelpress.steps.finetune.masks import detect_masks
from modelpress.tasks.context import StageContext


@pytest.fixture(scope="module")
def pruned(digits_frame, image_task, digits_teacher):
    prune = get_stage("prune")
    return prune.apply(digits_teacher, prune.config(sparsity=0.8), StageContext(image_task, digits_frame))


@pytest.mark.parametrize("lora", [None, {"r": 4}], ids=["full", "lora"])
def test_pruned_weights_stay_zero(pruned, digits_frame, image_task, lora):
    masks = detect_masks(pruned)
    assert set(masks) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    context = StageContext(image_task, digits_frame)
    config = FinetuneConfig(epochs=2, lr=3e-3, lora=lora, max_train_rows=400)
    tuned = get_stage("finetune").apply(pruned, config, context)
    params = dict(tuned.named_parameters())
    for name, keep in masks.items():
        assert (params[name][~keep] == 0).all(), name
        assert not (params[name][keep] == 0).all()
    # The surviving weights did train.
    assert any((params[n] != dict(pruned.named_parameters())[n]).any() for n in masks)
    report = context.report
    assert report["sparsity"] == pytest.approx(pruned_sparsity(pruned, masks), abs=1e-6)
    assert report["method"] == ("lora" if lora else "full")
    assert {"epoch1.val_accuracy", "epoch2.train_loss", "best_epoch", "val_accuracy_after"} <= set(report)


def pruned_sparsity(model, masks) -> float:
    params = dict(model.named_parameters())
    return sum(int((params[n] == 0).sum()) for n in masks) / sum(params[n].numel() for n in masks)


def test_masked_lora_trains_the_function_it_ships(pruned, digits_frame, image_task):
    import copy

    import torch

    from modelpress.steps.finetune import LoraSettings
    from modelpress.steps.finetune.lora import attach_lora, mask_lora_deltas, merge_lora
    from modelpress.steps.finetune.masks import apply_masks

    masks = detect_masks(pruned)
    peft_model = attach_lora(copy.deepcopy(pruned), LoraSettings(r=4), ["fc2"])
    assert mask_lora_deltas(peft_model, masks) == 3  # conv1, conv2, fc1 (fc2 is trained in full)
    batch, labels = next(image_task.batches(digits_frame, 64))
    pixels = torch.from_numpy(batch["pixel_values"])
    optimizer = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=5e-2)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(peft_model(pixels=pixels)[0], torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        unmerged = peft_model(pixels=pixels)[0]
        fc2_masked = peft_model.base_model.model.fc2.modules_to_save["default"].weight * masks["fc2.weight"]
        peft_model.base_model.model.fc2.modules_to_save["default"].weight.copy_(fc2_masked)
        unmerged_masked_head = peft_model(pixels=pixels)[0]
    merged = merge_lora(peft_model)
    apply_masks(merged, masks)
    with torch.no_grad():
        shipped = merged(pixels=pixels)[0]
    assert (unmerged - pruned(pixels=pixels)[0]).abs().max() > 1e-3
    assert torch.allclose(shipped, unmerged_masked_head, atol=1e-5)
    for name, keep in masks.items():
        assert (dict(merged.named_parameters())[name][~keep] == 0).all()
