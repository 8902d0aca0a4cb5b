"""Perplexity, KL and agreement against a hand computation; size, speed and memory helpers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from modelpress.lm.metrics import (
    PeakMemory,
    compare,
    compare_many,
    greedy_decode,
    latency_ms,
    next_token_loss,
    perplexity,
    rss_peak_mb,
    size_mb,
    tokens_per_s,
)


class Bigram(nn.Module):
    """Logits of the next token = a row of a table chosen by the current token."""

    def __init__(self, table: list[list[float]]):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table))

    def forward(self, input_ids, use_cache=False):
        return (self.table[input_ids],)  # a tuple, as some models return


A = [[1.0, 0.0, -1.0, 2.0], [0.5, 0.5, 0.0, -2.0], [0.0, 3.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 1.0]]
B = [[1.0, 0.5, -1.0, 1.0], [0.0, 0.5, 0.5, -1.0], [0.0, 2.0, 2.0, 0.0], [-1.0, 0.0, 1.0, 1.0]]
SEQUENCES = [[0, 3, 1, 2, 2], [2, 1, 0, 3, 3], [1, 1, 3, 0, 2]]


def softmax(row):
    z = sum(math.exp(v) for v in row)
    return [math.exp(v) / z for v in row]


def by_hand():
    nll_a = nll_b = kl = agree = n = 0.0
    for seq in SEQUENCES:
        for t in range(len(seq) - 1):
            p, q = softmax(A[seq[t]]), softmax(B[seq[t]])
            nll_a -= math.log(p[seq[t + 1]])
            nll_b -= math.log(q[seq[t + 1]])
            kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
            agree += p.index(max(p)) == q.index(max(q))
            n += 1
    return math.exp(nll_a / n), math.exp(nll_b / n), kl / n, agree / n, int(n)


@pytest.mark.parametrize("batch_size, chunk", [(1, 1), (2, 3), (3, 512)])
def test_perplexity_kl_and_agreement_match_a_hand_computation(batch_size, chunk):
    ppl_a, ppl_b, kl, agree, n = by_hand()
    result = compare(Bigram(A), Bigram(B), torch.tensor(SEQUENCES), batch_size, chunk)
    assert result.tokens == n
    assert result.baseline_perplexity == pytest.approx(ppl_a, rel=1e-6)
    assert result.perplexity == pytest.approx(ppl_b, rel=1e-6)
    assert result.kl == pytest.approx(kl, rel=1e-6) and result.kl > 0
    assert result.agreement == pytest.approx(agree)
    assert perplexity(Bigram(B), torch.tensor(SEQUENCES), batch_size, chunk) == pytest.approx(ppl_b, rel=1e-6)
    assert result.model_dump()["perplexity_ratio"] == pytest.approx(ppl_b / ppl_a, rel=1e-6)


def test_a_model_against_itself_has_zero_kl_and_full_agreement(llama, sequences):
    both = compare_many(llama, {"same": llama, "other": Bigram(torch.randn(128, 128).tolist())}, sequences)
    assert both["same"].kl == pytest.approx(0.0, abs=1e-6) and both["same"].agreement == 1.0
    assert both["same"].perplexity == pytest.approx(both["same"].baseline_perplexity)
    assert both["other"].kl > 0.1 and both["other"].agreement < 0.5


def test_next_token_loss_is_the_models_own_lm_loss(llama, sequences):
    with torch.no_grad():
        out = llama(input_ids=sequences, labels=sequences)
    assert float(next_token_loss(out.logits, sequences)) == pytest.approx(float(out.loss), rel=1e-5)
    assert math.exp(float(out.loss)) == pytest.approx(perplexity(llama, sequences, batch_size=3), rel=1e-4)


def test_greedy_decode_with_the_cache_equals_recomputing_every_step(llama, sequences):
    prompt = sequences[:2, :6]
    cached = greedy_decode(llama, prompt, 8)
    ids = prompt
    with torch.no_grad():
        for _ in range(8):
            ids = torch.cat([ids, llama(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(cached, ids)


def test_size_counts_tied_tensors_once_and_packed_weights_at_their_packed_size():
    tied = nn.Sequential(nn.Embedding(100, 10), nn.Linear(10, 100, bias=False))
    tied[1].weight = tied[0].weight
    assert size_mb(tied) == pytest.approx(100 * 10 * 4 / 1e6)
    packed = nn.Module()
    packed.register_buffer("qweight", torch.zeros(64, 32, dtype=torch.uint8))  # 64 x 64 int4
    packed.register_buffer("scales", torch.ones(64, 1))
    assert size_mb(packed) == pytest.approx((64 * 32 + 64 * 4) / 1e6)


def test_speed_helpers_time_real_forwards(llama, sequences):
    """What is timed, not how fast (speed belongs in benchmarks/): latency_ms runs warmup +
    repeats full prefills without the cache; tokens_per_s one prefill, then one single-token
    forward per new token on the cache, and counts every row's tokens."""
    calls: list[tuple[tuple[int, ...], bool]] = []

    def record(module, args, kwargs):
        calls.append((tuple(kwargs["input_ids"].shape), kwargs.get("past_key_values") is not None))

    hook = llama.register_forward_pre_hook(record, with_kwargs=True)
    try:
        latency = latency_ms(llama, sequences[:2], repeats=2, warmup=1)
        assert calls == [(tuple(sequences[:2].shape), False)] * 3 and math.isfinite(latency) and latency > 0
        calls.clear()
        speed = tokens_per_s(llama, sequences[:2, :4], new_tokens=4)
        assert calls == [((2, 4), False)] + [((2, 1), True)] * 4 and math.isfinite(speed) and speed > 0
    finally:
        hook.remove()


def test_peak_memory_sees_an_allocation_inside_the_block():
    with PeakMemory() as peak:
        start = rss_peak_mb()
        block = torch.ones(50_000_000)  # 200 MB, touched
        del block
    if not peak.reset:
        pytest.skip("this kernel does not allow resetting VmHWM")
    assert peak.mb >= start + 150
