"""LLM task accuracy from local files: one module per kind (``model.task.tasks[].kind``).

A causal-LM recipe lists tasks (``tasks: [{name: headline_mc, kind: multiple-choice, path:
data/headline_mc.jsonl}]``); each is a JSONL file in lm-evaluation-harness's document shape,
scored on the baseline and the candidate alike (``modelpress.lm.scoring``). Its results are
metrics named ``tasks.NAME.<measure>`` (``acc``, ``acc_norm``, ``exact_match``): higher is better,
0..1, one 0/1 value per item kept as ``Samples(statistic="mean")`` so the gate can put an
interval on a drop.

lm-eval itself (0.4.13) installs beside our pins (torch 2.13, transformers 4.57) but brings 29
packages (Hugging Face ``datasets``, evaluate, sacrebleu, nltk, ...), moves fsspec and pyarrow,
and reads even a local file through ``datasets``' loader and cache: for two scorers of a few
dozen lines each that is a poor trade, so they are implemented here with its semantics.

A kind is a :class:`TaskFile` subclass registered with
:func:`modelpress.core.registry.register_lm_task_kind`: its fields are the recipe's options, its
``parse`` reads one JSONL record, its ``score`` gives each measure's per-item values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from modelpress.core.errors import ModelpressError
from modelpress.core.metric import Metric
from modelpress.core.registry import LM_TASK_KINDS, StrictConfig

if TYPE_CHECKING:
    from torch import nn

#: what each measure is, as the gate and the summary read it (higher is better, 0..1)
MEASURES = {"acc": "accuracy", "acc_norm": "accuracy (length-normalised)", "exact_match": "exact match"}
METRIC_NAME = re.compile(r"^tasks\.([A-Za-z0-9_-]+)\.([a-z_]+)$")


class TaskFile(StrictConfig):
    """One task file: where its items are, and how many are scored."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64,
                      description="names the metrics: tasks.NAME.acc")
    kind: str
    path: Path | None = Field(None, description="JSONL file, one item per line")
    shipped: str | None = Field(None, description="an example task built from shipped data, instead of path")
    limit: int | None = Field(None, ge=1, description="score the first N items only")

    #: the metric suffixes this kind measures
    measures: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _one_source(self) -> TaskFile:
        if (self.path is None) == (self.shipped is None):
            raise ValueError("give exactly one of path (a JSONL file) or shipped (an example task)")
        if self.path is not None and not self.path.is_file():
            raise ValueError(f"path: {self.path}: no such file")
        return self

    def metric_names(self) -> tuple[str, ...]:
        return tuple(f"tasks.{self.name}.{m}" for m in self.measures)

    def parse(self, record: Mapping[str, Any], where: str) -> Any:
        """One item from one JSONL record; a ModelpressError naming ``where`` when it is not one."""
        raise NotImplementedError

    def score(self, model: nn.Module, tokenizer: Any, items: Sequence[Any], max_tokens: int) -> dict[str, list[float]]:
        """Per measure, one value per item (1.0 right, 0.0 wrong)."""
        raise NotImplementedError


def task_metric(name: str) -> Metric | None:
    """The metric ``tasks.NAME.<measure>`` describes, whatever NAME; None for any other name."""
    match = METRIC_NAME.match(name)
    if match is None or match.group(2) not in MEASURES:
        return None
    return Metric(name, f"{match.group(1)} {MEASURES[match.group(2)]}", True, 0.0, 1.0)


def task_file(entry: Any) -> TaskFile:
    """A ``tasks[]`` entry validated by its kind's config; its first problem as one line naming
    the field (``kind: ...``, ``path: ...``), which pydantic prefixes with the entry's place."""
    if isinstance(entry, TaskFile):
        return entry
    kind = entry.get("kind") if isinstance(entry, Mapping) else None
    known = LM_TASK_KINDS.all()
    if kind not in known:
        raise PydanticCustomError("task_kind", "kind: {kind} is not a task kind; known: {known}",
                                  {"kind": repr(kind), "known": ", ".join(sorted(known))})
    config: type[TaskFile] = known[kind]  # type: ignore[assignment]  # the registry is typed loosely
    try:
        return config.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise PydanticCustomError("task_file", "{where}{message}",
                                  {"where": f"{where}: " if where else "", "message": message}) from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file (blank lines skipped); one line naming the file and line if bad."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ModelpressError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ModelpressError(f"{path}:{number}: a record must be a JSON object")
            records.append(record)
    if not records:
        raise ModelpressError(f"{path}: no items")
    return records


def field(record: Mapping[str, Any], names: Sequence[str], kind: type | tuple[type, ...], where: str) -> Any:
    """The first of ``names`` the record has, of type ``kind``."""
    for name in names:
        if name in record:
            value = record[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ModelpressError(f"{where}: {name!r} must be {_kind_name(kind)}, got {type(value).__name__}")
            return value
    raise ModelpressError(f"{where}: no {' or '.join(repr(n) for n in names)} field")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "text", int: "an integer", list: "a list"}.get(k, k.__name__) for k in kinds)
