"""Fine-tuning a pruned model keeps its pruned weights exactly zero (full and LoRA)."""

from __future__ import annotations

import pytest

from modelpress.context import StageContext
from modelpress.registry import get_stage
from modelpress.steps.finetune import FinetuneConfig
from modelpress.steps.finetune.masks import detect_masks


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
