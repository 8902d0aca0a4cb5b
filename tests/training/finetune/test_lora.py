"""LoRA adapters (PEFT) merge back into a plain module whose outputs match the unmerged one."""

from __future__ import annotations

import copy

import pytest
import torch

from modelpress.core.errors import ModelpressError
from modelpress.sources.zoo.nets import SmallCNN, TextClassifier
from modelpress.steps.finetune import FinetuneConfig, LoraSettings
from modelpress.steps.finetune.lora import attach_lora, default_train_modules, merge_lora
from modelpress.tasks import Task, split_outputs
from modelpress.training import Validation, carve_validation, fit, frame_batches, task_loss


def _train_a_little(model: torch.nn.Module, task: Task, inputs: dict[str, torch.Tensor],
                    labels: torch.Tensor) -> None:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(split_outputs(task.call(model, inputs))[0], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def test_cnn_lora_merges_into_a_plain_model_with_the_same_outputs(digits_frame, image_task, digits_teacher):
    base = copy.deepcopy(digits_teacher)
    assert default_train_modules(base) == ["fc2"]
    peft_model = attach_lora(base, LoraSettings(r=4), default_train_modules(base))
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n and "conv1" in n for n in trainable)  # conv layers get adapters too
    assert not any(n.endswith("conv1.base_layer.weight") for n in trainable)  # base stays frozen
    train, val = carve_validation(digits_frame[digits_frame["split"] == "train"],
                                  FinetuneConfig(), 0, "finetune")
    config = FinetuneConfig(epochs=1, lr=1e-2)
    fit(peft_model, task_loss(image_task), frame_batches(image_task, train.iloc[:256], config.batch_size, 1), config,
        seed=0, desc="lora", validation=Validation(image_task, val))
    pixels = torch.from_numpy(image_task.encode(val)["pixel_values"])
    with torch.no_grad():
        unmerged = peft_model(pixels=pixels)[0]
        original = digits_teacher(pixels=pixels)[0]
    merged = merge_lora(peft_model)
    assert type(merged) is SmallCNN and not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        after = merged(pixels=pixels)[0]
    assert (unmerged - original).abs().max() > 1e-3  # the adapters did change the model
    assert torch.allclose(after, unmerged, atol=1e-5)


def test_bert_lora_merge_matches_and_exports(text_frame, text_task, make_tiny_bert):
    from modelpress.deploy.onnx_export import check_parity, export_onnx

    model = make_tiny_bert(layers=2)
    peft_model = attach_lora(model, LoraSettings(r=4, alpha=8), ["head"])
    batch, labels = next(text_task.batches(text_frame, 16))
    inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
    _train_a_little(peft_model, text_task, inputs, torch.from_numpy(labels))
    with torch.no_grad():
        unmerged = text_task.call(peft_model, inputs)[0]
    merged = merge_lora(peft_model)
    assert type(merged) is TextClassifier
    with torch.no_grad():
        assert torch.allclose(text_task.call(merged, inputs)[0], unmerged, atol=1e-5)
    evaluation = text_frame[text_frame["split"] == "eval"]
    parity = check_parity(merged, export_onnx(merged, text_task, evaluation), text_task, evaluation)
    assert parity.agreement == 1.0


def test_unknown_lora_target_is_a_clear_error(digits_teacher):
    with pytest.raises(ModelpressError, match="lora.target_modules: no module named conv9"):
        attach_lora(copy.deepcopy(digits_teacher), LoraSettings(target_modules=["conv9"]), ["fc2"])
