"""``kind: multiple-choice``: each choice scored by the log-likelihood of its tokens given the context.

A record (lm-eval's multiple-choice document): ``{"context": "...", "choices": ["...", ...],
"gold": 0}`` (``query`` is read where ``context`` is missing; ``gold`` is the right choice's index
or its text). The continuation scored is ``delimiter + choice`` (lm-eval's ``target_delimiter``).

* ``acc``: the choice with the highest summed log-likelihood is the gold one (lm-eval's ``acc``);
* ``acc_norm``: the same with each score divided by its choice's length in characters
  (lm-eval's ``acc_norm``), which does not favour short choices.

Ties go to the first choice, as ``numpy.argmax`` gives them in lm-eval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_lm_task_kind
from modelpress.lm.scorers import TaskFile, field
from modelpress.lm.scoring import loglikelihoods

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Choices:
    context: str
    choices: tuple[str, ...]
    gold: int


@register_lm_task_kind("multiple-choice")
class MultipleChoice(TaskFile):
    kind: Literal["multiple-choice"] = "multiple-choice"
    delimiter: str = Field(" ", max_length=8, description="text between the context and each choice")
    batch_size: int = Field(8, ge=1, description="(context, choice) pairs per forward")

    measures: ClassVar[tuple[str, ...]] = ("acc", "acc_norm")

    def parse(self, record: Mapping[str, Any], where: str) -> Choices:
        context = field(record, ("context", "query"), str, where)
        choices = field(record, ("choices",), list, where)
        if len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise ModelpressError(f"{where}: 'choices' must be two or more texts")
        gold = field(record, ("gold",), (int, str), where)
        if isinstance(gold, str):
            if gold not in choices:
                raise ModelpressError(f"{where}: 'gold' {gold!r} is not one of the choices")
            gold = choices.index(gold)
        if not 0 <= gold < len(choices):
            raise ModelpressError(f"{where}: 'gold' {gold} is no choice's index (0..{len(choices) - 1})")
        return Choices(context, tuple(choices), gold)

    def score(self, model: nn.Module, tokenizer: Any, items: Sequence[Any],
              max_tokens: int) -> dict[str, list[float]]:
        pairs = [(item.context, self.delimiter + choice) for item in items for choice in item.choices]
        scores = iter(loglikelihoods(model, tokenizer, pairs, max_tokens, self.batch_size))
        acc, acc_norm = [], []
        for item in items:
            lls = [next(scores) for _ in item.choices]
            normed = [ll / max(len(choice), 1) for ll, choice in zip(lls, item.choices)]
            acc.append(float(_first_best(lls) == item.gold))
            acc_norm.append(float(_first_best(normed) == item.gold))
        return {"acc": acc, "acc_norm": acc_norm}


def _first_best(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))
