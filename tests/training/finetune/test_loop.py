"""The shared loop: early stopping on the validation slice, best checkpoint restored,
gradient accumulation equivalent to a larger batch, bad input caught before training."""

from __future__ import annotations

import copy

import pytest
import torch

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import get_stage
from modelpress.steps.finetune import FinetuneConfig
from modelpress.tasks.context import StageContext
from modelpress.training import Validation, carve_validation, fit, frame_batches, task_loss, validate


def test_validation_slice_comes_from_train_only(digits_frame):
    train, val = carve_validation(digits_frame[digits_frame["split"] == "train"], FinetuneConfig(val_fraction=0.2),
                                  0, "finetune")
    assert set(train.index).isdisjoint(val.index)
    assert (digits_frame.loc[val.index, "split"] == "train").all()
    assert len(val) == 120


def test_early_stopping_restores_the_best_epoch(digits_frame, image_task, digits_teacher):
    model = copy.deepcopy(digits_teacher)
    train, val = carve_validation(digits_frame[digits_frame["split"] == "train"], FinetuneConfig(), 0, "t")
    # After epoch 1's checkpoint, flip the head: later epochs (tiny lr) cannot recover, so
    # epoch 1 stays the best, patience runs out, and the restored model must be epoch 1's.
    def sabotage(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 1:
            with torch.no_grad():
                model.fc2.weight.neg_()

    config = FinetuneConfig(epochs=6, lr=1e-6, patience=2, warmup=0, schedule="constant")
    result = fit(model, task_loss(image_task), frame_batches(image_task, train.iloc[:128], config.batch_size, 1),
                 config, seed=0, desc="t", validation=Validation(image_task, val), on_epoch=sabotage)
    assert result.stopped_early and len(result.history) == 3
    assert result.best_epoch == 1
    assert validate(model, image_task, val, 64)["val_accuracy"] == pytest.approx(result.best["val_accuracy"])


def test_gradient_accumulation_matches_one_large_batch(digits_frame, image_task, digits_teacher):
    train = digits_frame[digits_frame["split"] == "train"].iloc[:32]
    val = digits_frame[digits_frame["split"] == "train"].iloc[32:64]
    models = []
    for batch_size, accum in ((32, 1), (16, 2), (8, 4)):
        model = copy.deepcopy(digits_teacher)
        config = FinetuneConfig(epochs=1, lr=1e-2, batch_size=batch_size, grad_accum=accum, warmup=0)
        fit(model, task_loss(image_task), frame_batches(image_task, train, batch_size, 1), config, seed=0, desc="t",
            validation=Validation(image_task, val))
        models.append(model)
    reference = dict(models[0].named_parameters())
    assert (reference["fc2.weight"] != digits_teacher.fc2.weight).any()
    for other in models[1:]:
        for name, param in other.named_parameters():
            assert torch.allclose(param, reference[name], atol=1e-6), name


def test_empty_training_split_is_an_error(digits_frame, image_task, digits_teacher):
    context = StageContext(image_task, digits_frame.assign(split="eval"))
    with pytest.raises(ModelpressError, match="finetune: the training split is empty"):
        get_stage("finetune").apply(digits_teacher, FinetuneConfig(), context)
    assert not context.report

