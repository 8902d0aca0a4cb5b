"""The ``distill`` stage end to end on tiny models, and its bad-input errors."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import get_stage
from modelpress.sources.zoo.nets import SmallCNN
from modelpress.steps.distill import DistillConfig
from modelpress.tasks.context import StageContext
from modelpress.tasks.evaluation import predict, quality, torch_runner


def _eval_accuracy(model, task, frame) -> float:
    logits, _, labels = predict(torch_runner(model, task), task, frame[frame["split"] == "eval"])
    return quality(logits, labels)["accuracy"]


def test_half_width_cnn_student_learns_from_its_teacher(digits_frame, image_task, digits_teacher):
    context = StageContext(image_task, digits_frame)
    config = DistillConfig(student={"width": 0.5}, temperature=4.0, alpha=0.7, epochs=3, lr=3e-3,
                           hidden={"weight": 0.5}, attention=1.0)
    student = get_stage("distill").apply(digits_teacher, config, context)
    assert isinstance(student, SmallCNN) and student.conv1.out_channels == 8
    teacher_accuracy = _eval_accuracy(digits_teacher, image_task, digits_frame)
    assert _eval_accuracy(student, image_task, digits_frame) > max(0.75, teacher_accuracy - 0.1)
    report = context.report
    assert report["link1.name"] == "teacher->student"
    assert report["param_ratio"] < 0.3
    assert {"link1.epoch1.train_loss", "link1.epoch1.val_accuracy", "link1.best_epoch"} <= set(report)
    assert digits_teacher.conv1.out_channels == 16  # the incoming model is untouched


def test_teacher_assistant_chain_reports_every_link(digits_frame, image_task, digits_teacher):
    context = StageContext(image_task, digits_frame)
    config = DistillConfig(student={"width": 0.25}, assistants=[{"width": 0.5}], epochs=1, lr=3e-3)
    student = get_stage("distill").apply(digits_teacher, config, context)
    assert student.conv1.out_channels == 4
    report = context.report
    assert report["links"] == 2
    assert report["link1.name"] == "teacher->assistant1" and report["link2.name"] == "assistant1->student"
    assert report["link2.teacher_params"] == report["link1.student_params"] > report["link2.student_params"]
    assert 0 <= report["link2.best_val_accuracy"] <= 1


def test_three_of_four_layer_bert_student_with_hidden_matching(text_frame, text_task, make_tiny_bert):
    teacher = make_tiny_bert(layers=4)
    context = StageContext(text_task, text_frame)
    config = DistillConfig(student={"layers": 2}, epochs=1, batch_size=16, lr=1e-3,
                           hidden={"weight": 1.0, "loss": "cosine"})
    student = get_stage("distill").apply(teacher, config, context)
    assert len(student.encoder.encoder.layer) == 2
    assert context.report["student_params"] < context.report["teacher_params"]
    assert context.report["link1.epochs_run"] == 1


# --- bad input: each a clear error before any training -------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("temperature", 0, "temperature must be > 0"),
    ("temperature", -2.0, "temperature must be > 0"),
    ("alpha", 1.5, r"alpha must lie in \[0, 1\]"),
    ("alpha", -0.1, r"alpha must lie in \[0, 1\]"),
])
def test_bad_temperature_or_alpha_is_rejected_by_the_config(field, value, message):
    with pytest.raises(ValidationError, match=message) as caught:
        get_stage("distill").config.model_validate({"student": {"layers": 3}, field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_student_needs_exactly_one_kind():
    with pytest.raises(ValidationError, match="not both"):
        DistillConfig.model_validate({"student": {"layers": 3, "path": __file__}})
    with pytest.raises(ValidationError, match="give layers and/or width"):
        DistillConfig.model_validate({"student": {}})


def test_empty_training_split_is_an_error(digits_frame, image_task, digits_teacher):
    frame = digits_frame.assign(split="eval")
    context = StageContext(image_task, frame)
    with pytest.raises(ModelpressError, match="training split is empty"):
        get_stage("distill").apply(digits_teacher, DistillConfig(student={"width": 0.5}), context)
    assert not context.report


def test_output_size_mismatch_is_an_error(tmp_path, digits_frame, image_task, digits_teacher):
    path = tmp_path / "five_classes.pt"
    torch.save(SmallCNN((1, 8, 8), 5), path)
    context = StageContext(image_task, digits_frame)
    with pytest.raises(ModelpressError, match="student outputs 5 logits and the teacher 10"):
        get_stage("distill").apply(digits_teacher, DistillConfig(student={"path": str(path)}), context)
    assert not any("epoch" in key for key in context.report)


def test_hidden_width_mismatch_without_projection_is_an_error(digits_frame, image_task, digits_teacher):
    context = StageContext(image_task, digits_frame)
    config = DistillConfig(student={"width": 0.5}, hidden={"weight": 1.0, "projection": False})
    with pytest.raises(ModelpressError, match="student width 8 ≠ teacher width 16 and hidden.projection is false"):
        get_stage("distill").apply(digits_teacher, config, context)
    assert not any("epoch" in key for key in context.report)


def test_given_student_with_hidden_matching_needs_pairs(tmp_path, digits_frame, image_task, digits_teacher):
    path = tmp_path / "student.pt"
    torch.save(SmallCNN((1, 8, 8), 10, width=4), path)
    context = StageContext(image_task, digits_frame)
    with pytest.raises(ModelpressError, match="needs .* pairs"):
        get_stage("distill").apply(digits_teacher, DistillConfig(student={"path": str(path)},
                                                                 hidden={"weight": 1.0}), context)
