"""The KD losses against hand-computed values, and the effect of the temperature."""

from __future__ import annotations

import math

import pytest
import torch

from modelpress.core.errors import ModelpressError
from modelpress.tasks.losses import attention_transfer, causal_lm_kd_loss, kd_loss, soft_kl


def _softmax(row: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in row]
    return [e / sum(exps) for e in exps]


def test_kd_loss_equals_a_hand_computed_value():
    student = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    teacher = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    labels = [1, 2]
    temperature, alpha = 2.0, 0.25
    kl = 0.0
    for s_row, t_row in zip(student, teacher):
        p_s, p_t = _softmax(s_row, temperature), _softmax(t_row, temperature)
        kl += sum(t * math.log(t / s) for s, t in zip(p_s, p_t))
    soft = kl / 2 * temperature ** 2
    hard = -sum(math.log(_softmax(row, 1.0)[y]) for row, y in zip(student, labels)) / 2
    expected = alpha * soft + (1 - alpha) * hard

    got = kd_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), temperature, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert soft_kl(torch.tensor(student), torch.tensor(teacher), temperature).item() == pytest.approx(soft, rel=1e-6)


def _soft_gradient(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = student.clone().requires_grad_(True)
    soft_kl(logits, teacher, temperature).backward()
    return logits.grad


def test_temperature_shapes_the_gradient():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 5) * 3, torch.randn(4, 5) * 3
    for temperature in (1.0, 4.0):
        grad = _soft_gradient(student, teacher, temperature)
        # d/ds T²·KL = T·(softmax(s/T) − softmax(t/T)) / N
        gap = torch.softmax(student / temperature, -1) - torch.softmax(teacher / temperature, -1)
        expected = temperature * gap / 4
        assert torch.allclose(grad, expected, atol=1e-6)
    # High T: the soft loss becomes logit matching, grad → ((s − s̄) − (t − t̄)) / (V·N).
    centred = (student - student.mean(-1, keepdim=True)) - (teacher - teacher.mean(-1, keepdim=True))
    gaps = [(_soft_gradient(student, teacher, t) - centred / (5 * 4)).abs().max().item()
            for t in (1.0, 10.0, 100.0, 1000.0)]
    assert gaps[-1] < 1e-3 and gaps[0] > 0.1
    assert gaps == sorted(gaps, reverse=True)  # the gap shrinks ~1/T
    # A higher T moves probability into the teacher's non-argmax classes ("dark knowledge").
    top = teacher.argmax(-1, keepdim=True)
    dark = [1 - torch.softmax(teacher / t, -1).gather(-1, top).mean().item() for t in (1.0, 4.0)]
    assert dark[1] > dark[0]


def test_kd_loss_mismatched_output_sizes_is_an_error():
    with pytest.raises(ModelpressError, match="output sizes must match"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), 2.0, 0.5)


def test_attention_transfer_ignores_channel_count():
    torch.manual_seed(0)
    teacher = torch.randn(2, 8, 4, 4)
    same_focus = teacher.pow(2).mean(1, keepdim=True).sqrt().expand(2, 4, 4, 4)  # 4 channels, same map
    assert attention_transfer(same_focus, teacher).item() < 1e-9
    assert attention_transfer(torch.randn(2, 4, 4, 4), teacher).item() > 1e-3


def test_token_level_kd_on_a_tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    def llama(layers: int, seed: int) -> LlamaForCausalLM:
        torch.manual_seed(seed)
        return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=layers, num_attention_heads=2,
                                            num_key_value_heads=2, max_position_embeddings=32))

    teacher, student = llama(2, 0).eval(), llama(1, 1)
    ids = torch.randint(0, 64, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0  # a padded row: its last positions must not count
    with torch.no_grad():
        teacher_logits = teacher(input_ids=ids, attention_mask=mask).logits
    student_logits = student(input_ids=ids, attention_mask=mask).logits
    loss = causal_lm_kd_loss(student_logits, teacher_logits, ids, mask, 2.0, 1.0)
    # By hand: per-token KL over the kept (position, next token) pairs only.
    keep = mask[:, 1:].bool()
    s = torch.log_softmax(student_logits[:, :-1][keep] / 2.0, -1)
    t = torch.log_softmax(teacher_logits[:, :-1][keep] / 2.0, -1)
    expected = (t.exp() * (t - s)).sum(-1).mean() * 4.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert keep.sum() == 3 * 9 - 3

    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        logits = student(input_ids=ids, attention_mask=mask).logits
        step_loss = causal_lm_kd_loss(logits, teacher_logits, ids, mask, 2.0, 0.5)
        first = step_loss.item() if first is None else first
        optimizer.zero_grad()
        step_loss.backward()
        optimizer.step()
    assert step_loss.item() < 0.7 * first
