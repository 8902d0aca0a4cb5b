"""A causal LM scored on task items: log-likelihood of a continuation, and greedy generation.

The semantics are lm-evaluation-harness's (``HFLM.loglikelihood`` / ``generate_until``), so a
task file scored here and there gives the same accuracy:

* the context and the continuation are tokenized together and the continuation's tokens are the
  whole's beyond the context's (BPE merges across the boundary stay as the model sees them);
  trailing spaces of the context move to the continuation; an empty context is the EOS token;
* the score is Σ log p(continuation token | everything before it);
* generation is greedy, and the text is cut at the first stop string.

No special tokens are added (lm-eval's default for causal LMs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelpress.lm.metrics import greedy_decode, logits_of

if TYPE_CHECKING:
    import torch
    from torch import nn


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval splits them."""
    spaces = len(context) - len(context.rstrip(" "))
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    if not context:
        return [tokenizer.eos_token_id], _ids(tokenizer, continuation)
    whole, head = _ids(tokenizer, context + continuation), _ids(tokenizer, context)
    return whole[:len(head)], whole[len(head):]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def loglikelihoods(model: nn.Module, tokenizer: Any, pairs: Sequence[tuple[str, str]],
                   max_tokens: int, batch_size: int = 8) -> list[float]:
    """Σ log p(continuation | context) for each (context, continuation), left-truncated to the
    last ``max_tokens`` tokens (the continuation is always kept whole)."""
    import torch

    encoded = [encode_pair(tokenizer, c, t) for c, t in pairs]
    scores: list[float] = []
    device = next(iter(model.parameters())).device
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            scores += _batch_scores(model, chunk, max_tokens, tokenizer.pad_token_id or 0, device)
    return scores


def _batch_scores(model: nn.Module, chunk: list[tuple[list[int], list[int]]], max_tokens: int, pad: int,
                  device: torch.device) -> list[float]:
    """One right-padded forward: the model's input is ``(context + continuation)[:-1]``."""
    import torch

    rows = [(ctx + cont)[-(max_tokens + 1):][:-1] for ctx, cont in chunk]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    logits = logits_of(model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False))
    log_p = torch.log_softmax(logits.float(), -1)
    scores = []
    for i, (row, (_, cont)) in enumerate(zip(rows, chunk)):
        # the last len(cont) positions of the row predict the continuation's tokens
        positions = torch.arange(len(row) - len(cont), len(row), device=log_p.device)
        target = torch.tensor(cont, device=log_p.device)
        scores.append(float(log_p[i, positions, target].double().sum()))
    return scores


def generate_until(model: nn.Module, tokenizer: Any, prompt: str, max_tokens: int,
                   stop: Sequence[str]) -> str:
    """Greedy continuation of ``prompt``: at most ``max_tokens`` tokens, stopping at EOS, cut at
    the first of ``stop``."""
    import torch

    ids = torch.tensor([_ids(tokenizer, prompt) or [tokenizer.eos_token_id]])
    out = greedy_decode(model, ids, max_tokens, tokenizer.eos_token_id)[0, ids.shape[1]:].tolist()
    text = str(tokenizer.decode(out, skip_special_tokens=True))
    for marker in stop:
        if marker and marker in text:
            text = text[:text.index(marker)]
    return text
