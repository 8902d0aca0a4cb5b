"""Comparisons every build's check reports: the build's outputs against the candidate's own.

All functions take token ids ``[batch, seq]`` (int64) and return plain floats, so a check's
result is a flat ``dict[str, float]`` that MLflow logs as metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import torch
    from torch import nn

GREEDY_TOKENS = 16


def model_logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """fp32 logits ``[batch, seq, vocab]`` of a Hugging Face causal LM."""
    import torch

    with torch.inference_mode():
        return model(input_ids=input_ids).logits.float()


def perplexity(logits: torch.Tensor, input_ids: torch.Tensor) -> float:
    """Token-weighted perplexity of next-token predictions."""
    import torch

    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    nll = torch.nn.functional.cross_entropy(flat, input_ids[:, 1:].reshape(-1), reduction="mean")
    return float(math.exp(float(nll)))


def compare_logits(reference: torch.Tensor, built: torch.Tensor, input_ids: torch.Tensor) -> dict[str, float]:
    """Max |Δ logit|, cosine, top-1 agreement and both perplexities on the same tokens."""
    import torch

    if reference.shape != built.shape:
        raise ModelpressError(f"the build's logits have shape {tuple(built.shape)}, the candidate's "
                              f"{tuple(reference.shape)}")
    cosine = torch.nn.functional.cosine_similarity(reference.flatten(0, 1), built.flatten(0, 1), dim=-1)
    ppl_ref, ppl_built = perplexity(reference, input_ids), perplexity(built, input_ids)
    return {"max_abs_logit_diff": float((reference - built).abs().max()),
            "logit_cosine_min": float(cosine.min()),
            "top1_agreement": float((reference.argmax(-1) == built.argmax(-1)).float().mean()),
            "perplexity_candidate": ppl_ref, "perplexity_build": ppl_built,
            "perplexity_ratio": ppl_built / ppl_ref}


def greedy_tokens(next_logits: Callable[[list[int]], torch.Tensor], prompt: list[int],
                  n: int = GREEDY_TOKENS) -> list[int]:
    """Greedy continuation: ``next_logits(tokens)`` returns the logits for the next position."""
    tokens = list(prompt)
    for _ in range(n):
        tokens.append(int(next_logits(tokens).argmax()))
    return tokens[len(prompt):]


def candidate_greedy(model: nn.Module, prompt: list[int], n: int = GREEDY_TOKENS) -> list[int]:
    import torch

    return greedy_tokens(lambda t: model_logits(model, torch.tensor([t]))[0, -1], prompt, n)


def require_close(metrics: dict[str, float], build: str, max_ppl_ratio: float) -> None:
    """A build whose perplexity drifted from the candidate's beyond the format's known loss fails."""
    ratio = metrics["perplexity_ratio"]
    if not math.isfinite(ratio) or abs(ratio - 1.0) > max_ppl_ratio - 1.0:
        raise ModelpressError(f"{build}: the built model's perplexity {metrics['perplexity_build']:.4f} "
                              f"differs from the candidate's {metrics['perplexity_candidate']:.4f} "
                              f"(ratio {ratio:.4f}, allowed ±{max_ppl_ratio - 1:.3f})")
