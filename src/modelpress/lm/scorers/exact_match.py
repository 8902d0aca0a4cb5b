"""``kind: exact-match``: greedy generation, right when it equals the answer.

A record (lm-eval's generation document): ``{"prompt": "...", "answer": "..."}`` (``context`` or
``query`` are read where ``prompt`` is missing; ``answer`` may be a list of accepted answers).
The model continues the prompt greedily for at most ``max_tokens`` tokens, stopping at EOS; the
text is cut at the first ``stop`` string (a newline by default, lm-eval's ``until``) and
compared with the answer after stripping surrounding whitespace (and case, with ``ignore_case``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_lm_task_kind
from modelpress.lm.scorers import TaskFile, field
from modelpress.lm.scoring import generate_until

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Question:
    prompt: str
    answers: tuple[str, ...]


@register_lm_task_kind("exact-match")
class ExactMatch(TaskFile):
    kind: Literal["exact-match"] = "exact-match"
    max_tokens: int = Field(32, ge=1, le=1024, description="generated tokens at most")
    stop: list[str] = Field(default_factory=lambda: ["\n"], max_length=8,
                            description="the generation is cut at the first of these")
    ignore_case: bool = False

    measures: ClassVar[tuple[str, ...]] = ("exact_match",)

    def parse(self, record: Mapping[str, Any], where: str) -> Question:
        prompt = field(record, ("prompt", "context", "query"), str, where)
        answer = field(record, ("answer",), (str, list), where)
        answers = (answer,) if isinstance(answer, str) else tuple(answer)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise ModelpressError(f"{where}: 'answer' must be a text or a list of texts")
        return Question(prompt, answers)

    def score(self, model: nn.Module, tokenizer: Any, items: Sequence[Any],
              max_tokens: int) -> dict[str, list[float]]:
        right = []
        for item in items:
            text = generate_until(model, tokenizer, item.prompt, self.max_tokens, self.stop)
            right.append(float(any(self._same(text, a) for a in item.answers)))
        return {"exact_match": right}

    def _same(self, generated: str, answer: str) -> bool:
        a, b = generated.strip(), answer.strip()
        return a.lower() == b.lower() if self.ignore_case else a == b
