"""Greedy continuations of a few prompts, baseline and candidate side by side.

The rows feed an MLflow table (``columns``) and the HTML report (``html_table``): a reader sees
at a glance whether a compressed model still says what its baseline said. Prompts go through the
tokenizer's chat template when it has one (an instruct model answers, rather than continues).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from modelpress.lm.metrics import greedy_decode

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_PROMPTS = (
    "The movie was",
    "Write one sentence about the sea.",
    "What is the capital of France?",
)


class ContinuationRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    baseline: str
    candidate: str
    same: bool  # identical continuations (token for token)


def prompt_ids(tokenizer: Any, prompt: str, chat: bool = True) -> torch.Tensor:
    """[1, length] ids of ``prompt``, through the chat template when asked and available."""
    import torch

    if chat and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, tokenize=True)
    else:
        ids = tokenizer(prompt)["input_ids"]
    return torch.tensor([list(ids)], dtype=torch.long)


def continue_prompt(model: nn.Module, tokenizer: Any, prompt: str, new_tokens: int = 24,
                    chat: bool = True) -> tuple[list[int], str]:
    ids = prompt_ids(tokenizer, prompt, chat)
    eos = getattr(model.generation_config, "eos_token_id", None) if hasattr(model, "generation_config") else None
    eos = eos[0] if isinstance(eos, list) else (eos if eos is not None else tokenizer.eos_token_id)
    out = greedy_decode(model, ids, new_tokens, eos)[0, ids.shape[1]:].tolist()
    return out, tokenizer.decode(out, skip_special_tokens=True).strip()


def side_by_side(baseline: nn.Module, candidate: nn.Module, tokenizer: Any,
                 prompts: Sequence[str] = DEFAULT_PROMPTS, new_tokens: int = 24,
                 chat: bool = True) -> list[ContinuationRow]:
    rows = []
    for prompt in prompts:
        base_ids, base_text = continue_prompt(baseline, tokenizer, prompt, new_tokens, chat)
        cand_ids, cand_text = continue_prompt(candidate, tokenizer, prompt, new_tokens, chat)
        rows.append(ContinuationRow(prompt=prompt, baseline=base_text, candidate=cand_text,
                                    same=base_ids == cand_ids))
    return rows


def columns(rows: Sequence[ContinuationRow]) -> dict[str, list[Any]]:
    """Column lists, as ``mlflow.log_table(data=..., artifact_file="continuations.json")`` takes them."""
    names = list(ContinuationRow.model_fields)
    return {name: [getattr(row, name) for row in rows] for name in names}


def html_table(rows: Sequence[ContinuationRow], title: str = "Continuations (greedy)") -> str:
    """An HTML fragment: one row per prompt, baseline and candidate continuations side by side."""
    cells = "".join(
        f"<tr><td>{html.escape(r.prompt)}</td><td>{html.escape(r.baseline)}</td>"
        f"<td>{html.escape(r.candidate)}</td><td>{'yes' if r.same else 'no'}</td></tr>"
        for r in rows)
    return (f"<h2>{html.escape(title)}</h2><table class=\"continuations\"><thead><tr><th>prompt</th>"
            f"<th>baseline</th><th>candidate</th><th>same</th></tr></thead><tbody>{cells}</tbody></table>")
