"""Per-sequence sums behind perplexity, KL and agreement: they add up to ``compare``'s totals, and
the paired samples recompute each metric."""

from __future__ import annotations

import math

import pytest

from modelpress.lm.metrics import compare
from modelpress.lm.per_sequence import compare_sequences

from .conftest import tiny_llama


def test_per_sequence_sums_add_up_to_compare(llama, sequences):
    other = tiny_llama(seed=1)
    per = compare_sequences(llama, other, sequences, batch_size=3)
    assert per.tokens == [31] * 8  # one row per sequence, 31 predicted tokens each
    assert per.quality().model_dump() == pytest.approx(compare(llama, other, sequences, batch_size=3).model_dump(),
                                                       rel=1e-6)
    samples = per.samples()
    ppl = samples["perplexity"]
    assert ppl.statistic == "exp_ratio" and ppl.weights == [31.0] * 8
    assert math.exp(sum(ppl.candidate) / sum(ppl.weights)) == pytest.approx(per.quality().perplexity, rel=1e-9)
    assert math.exp(sum(ppl.baseline) / sum(ppl.weights)) == pytest.approx(per.quality().baseline_perplexity,
                                                                           rel=1e-9)
    agreement = samples["agreement"]
    assert agreement.baseline == [1.0] * 8
    assert sum(agreement.candidate) / 8 == pytest.approx(per.quality().agreement)
    assert sum(samples["kl"].candidate) / 8 == pytest.approx(per.quality().kl)
    assert len(set(ppl.candidate)) == 8  # the sequences differ: per-sequence, not one total split evenly


def test_a_model_against_itself_gives_identical_pairs(llama, sequences):
    samples = compare_sequences(llama, llama, sequences).samples()
    assert samples["perplexity"].baseline == samples["perplexity"].candidate
    assert samples["agreement"].candidate == [1.0] * 8
    assert max(samples["kl"].candidate) < 1e-6
