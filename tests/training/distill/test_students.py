"""Students derived from a teacher: which layers/units they keep and that they start from
the teacher's weights."""

from __future__ import annotations

import pytest
import torch

from modelpress.core.errors import ModelpressError
from modelpress.sources.zoo.nets import SmallCNN
from modelpress.steps.distill import StudentSpec
from modelpress.steps.distill.students import build_student, kept_layers


def test_kept_layers_are_evenly_spaced_and_keep_the_last():
    assert kept_layers(6, 3) == [1, 3, 5]
    assert kept_layers(6, 6) == list(range(6))
    assert kept_layers(4, 1) == [3]


def test_layer_dropped_bert_keeps_the_teacher_weights(make_tiny_bert):
    teacher = make_tiny_bert(layers=6)
    student = build_student(StudentSpec(layers=3), teacher, teacher)
    encoder = student.model.encoder
    assert len(encoder.encoder.layer) == 3 and encoder.config.num_hidden_layers == 3
    assert len(teacher.encoder.encoder.layer) == 6  # the teacher is untouched
    for i, k in enumerate([1, 3, 5]):
        ours = encoder.encoder.layer[i].attention.self.query.weight
        assert torch.equal(ours, teacher.encoder.encoder.layer[k].attention.self.query.weight)
    assert student.pairs[0] == ("encoder.encoder.layer.0", "encoder.encoder.layer.1")
    ids = torch.randint(0, 100, (2, 7))
    logits, _ = student.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert logits.shape == (2, 2)


def test_full_width_cnn_student_reproduces_the_teacher():
    torch.manual_seed(0)
    teacher = SmallCNN((1, 8, 8), 10).eval()
    same = build_student(StudentSpec(width=1.0), teacher, teacher).model.eval()
    pixels = torch.randn(3, 1, 8, 8)
    assert torch.allclose(same(pixels)[0], teacher(pixels)[0], atol=1e-6)


def test_half_width_cnn_student_keeps_the_largest_filters():
    torch.manual_seed(0)
    teacher = SmallCNN((1, 8, 8), 10)
    student = build_student(StudentSpec(width=0.5), teacher, teacher).model
    assert student.conv1.out_channels == 8 and student.fc1.out_features == 32
    norms = teacher.conv1.weight.abs().sum((1, 2, 3))
    kept = student.conv1.weight.abs().sum((1, 2, 3))
    assert torch.allclose(kept.sort().values, norms.topk(8).values.sort().values)
    assert sum(p.numel() for p in student.parameters()) < 0.3 * sum(p.numel() for p in teacher.parameters())


def test_random_init_discards_the_teacher_weights():
    torch.manual_seed(0)
    teacher = SmallCNN((1, 8, 8), 10)
    student = build_student(StudentSpec(width=1.0, init="random"), teacher, teacher).model
    assert not torch.allclose(student.conv1.weight, teacher.conv1.weight)


def test_width_on_a_transformer_is_a_clear_error(make_tiny_bert):
    teacher = make_tiny_bert(layers=2)
    with pytest.raises(ModelpressError, match="width reduction supports SmallCNN"):
        build_student(StudentSpec(width=0.5), teacher, teacher)


def test_too_many_layers_is_a_clear_error(make_tiny_bert):
    teacher = make_tiny_bert(layers=2)
    with pytest.raises(ModelpressError, match="3 > the teacher's 2 layers"):
        build_student(StudentSpec(layers=3), teacher, teacher)
