"""Baseline vs candidate on the same eval sequences, kept per sequence for paired statistics.

``metrics.compare`` sums over every token; here the same sums are kept for each packed sequence
(NLL of both models, KL, top-1 agreements, predicted tokens), so the gate can resample
sequences: perplexity is ``Samples(statistic="exp_ratio")`` of the NLL sums weighted by tokens,
KL and agreement are per-sequence means (``mean``: every sequence predicts as many tokens). The
totals equal ``compare``'s (:class:`~modelpress.lm.metrics.LMQuality`), from one forward each.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from modelpress.core.handoffs import Samples
from modelpress.lm.metrics import LMQuality, _accumulate, _forward_logits, _Sums, sequence_batches

if TYPE_CHECKING:
    from torch import nn


class SequenceQuality(BaseModel):
    """Per-sequence sums (index i: eval sequence i) and the totals they add up to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens: list[int]
    baseline_nll: list[float]
    nll: list[float]
    kl: list[float]
    agreements: list[int]

    def quality(self) -> LMQuality:
        tokens = sum(self.tokens)
        return LMQuality(tokens=tokens, baseline_perplexity=math.exp(sum(self.baseline_nll) / tokens),
                         perplexity=math.exp(sum(self.nll) / tokens), kl=sum(self.kl) / tokens,
                         agreement=sum(self.agreements) / tokens)

    def samples(self) -> dict[str, Samples]:
        """``perplexity``, ``kl`` and ``agreement`` as paired per-sequence samples (the baseline's KL
        to itself is 0 and its agreement 1 on every sequence)."""
        weights = [float(t) for t in self.tokens]
        ones, zeros = [1.0] * len(weights), [0.0] * len(weights)
        return {
            "perplexity": Samples(statistic="exp_ratio", baseline=self.baseline_nll, candidate=self.nll,
                                  weights=weights),
            "kl": Samples(statistic="mean", baseline=zeros, candidate=[k / t for k, t in zip(self.kl, weights)]),
            "agreement": Samples(statistic="mean", baseline=ones,
                                 candidate=[a / t for a, t in zip(self.agreements, weights)]),
        }


def compare_sequences(baseline: nn.Module, candidate: nn.Module, sequences: Any, batch_size: int = 2,
                      chunk_tokens: int = 512) -> SequenceQuality:
    """``compare``'s sums, one set per sequence of ``sequences`` ([n, length] token ids)."""
    import torch

    base: list[_Sums] = []
    cand: list[_Sums] = []
    tokens: list[int] = []
    modes = [baseline.training, candidate.training]
    baseline.eval()
    candidate.eval()
    try:
        with torch.inference_mode():
            for ids in sequence_batches(sequences, batch_size):
                ref = _forward_logits(baseline, ids)
                out = _forward_logits(candidate, ids).to(ref.device)
                per = ids.shape[1] - 1  # predicted tokens per sequence
                for row in range(len(ids)):
                    rows = slice(row * per, (row + 1) * per)
                    b, c = _Sums(), _Sums()
                    _accumulate(ref[rows], {"c": out[rows]}, ids[row, 1:].to(ref.device), chunk_tokens, b, {"c": c})
                    base.append(b)
                    cand.append(c)
                    tokens.append(per)
    finally:
        baseline.train(modes[0])
        candidate.train(modes[1])
    return SequenceQuality(tokens=tokens, baseline_nll=[b.nll for b in base], nll=[c.nll for c in cand],
                           kl=[c.kl for c in cand], agreements=[c.agree for c in cand])
