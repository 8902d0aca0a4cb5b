"""The user's artifacts as the public steps take them: a DataFrame with the user's own column
names and the task in recipe syntax, turned into what modelpress's functions read.

``task={"name": "tabular-classification", "label": "diagnosis", "features": "*"}`` is the task's
name, its options (the task's config: ``max_length`` for a text task, ...) and the columns that
hold the inputs and the label (:class:`~modelpress.datasets.columns.Columns`). The rows are split
into train / calibration / eval with a seed (``split``, as a recipe's ``data.split``), or the
user's own ``eval_data`` frame is the eval split. Every step derives the same split from the same
frame, so each step stays usable on its own.

The recipe's pipeline passes its frame already split and encoded, with the resolved
:class:`~modelpress.tasks.TaskSpec` as ``task``: that is the prepared form.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from modelpress.core.errors import ModelpressError
from modelpress.datasets.base import Split
from modelpress.datasets.columns import Columns
from modelpress.datasets.splits import assign_splits, encode_labels, label_key, split_beside_eval
from modelpress.tasks import Task, TaskSpec, get_task
from modelpress.zenml.checked import StepParameterError, validated

if TYPE_CHECKING:
    import pandas as pd

#: a task in recipe syntax (a name with options and columns, or a name), or a resolved TaskSpec
TaskArg = TaskSpec | dict[str, JsonValue] | str


def as_task(task: Any) -> Any:
    """``task`` with a TaskSpec that reached a step as its JSON (a dict with ``options``, which recipe
    syntax never has: a task's options are flat) read back as one."""
    if isinstance(task, dict) and "options" in task:
        return TaskSpec.model_validate(task)
    return task
SplitArg = dict[str, JsonValue] | Split | None

_COLUMN_FIELDS = frozenset(Columns.model_fields)
#: where relative image paths in the user's frame resolve (a frame has no file of its own)
FRAME_ORIGIN = Path("dataframe")


def task_parts(task: TaskArg, where: str) -> tuple[type[Task], dict[str, Any], Columns | None]:
    """The task class, its options and (for recipe syntax) the columns; one line naming the
    step and the field when any is wrong."""
    task = as_task(task)
    if isinstance(task, TaskSpec):
        return get_task(task.name), dict(task.options), None
    raw: dict[str, Any] = {"name": task} if isinstance(task, str) else dict(task)
    name = raw.get("name")
    if not isinstance(name, str):
        raise StepParameterError(f"{where}: task.name: give the task's name (see `modelpress tasks`)")
    try:
        task_class = get_task(name)
    except KeyError as exc:  # the registry's message names the known tasks
        raise StepParameterError(f"{where}: task.name: {exc.args[0]}") from None
    options = {k: v for k, v in raw.items() if k not in _COLUMN_FIELDS}
    validated(task_class.Config, options, f"{where}: task")
    column_fields = {k: v for k, v in raw.items() if k in _COLUMN_FIELDS}
    columns = validated(Columns, column_fields, f"{where}: task") if column_fields else None
    if columns is None:
        raise StepParameterError(f"{where}: task: name the input column(s): one of text, features or image "
                                 "(and label, for a labelled task)")
    if task_class.labelled and columns.label is None:
        raise StepParameterError(f"{where}: task.label: a {name} task needs the label column's name")
    return task_class, {k: v for k, v in options.items() if k != "name"}, columns


def check_task(where: str, parameters: Mapping[str, Any]) -> None:
    if "task" in parameters:
        task_parts(parameters["task"], where)
    if parameters.get("split") is not None:
        validated(Split, parameters["split"], f"{where}: split")


class Prepared:
    """The frame every task reads (inputs, encoded ``label``, ``split``) and the task to read it."""

    def __init__(self, frame: pd.DataFrame, spec: TaskSpec):
        self.frame = frame
        self.spec = spec
        self.task = spec.build()

    def rows(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split]

    @property
    def eval_rows(self) -> pd.DataFrame:
        return self.rows("eval")


def prepare(data: pd.DataFrame, task: TaskArg, where: str, split: SplitArg = None, seed: int = 0,
            eval_data: pd.DataFrame | None = None) -> Prepared:
    """The user's frame (and eval frame) shaped, split and label-encoded for ``task``."""
    task = as_task(task)
    if isinstance(task, TaskSpec):
        return Prepared(data, task)
    task_class, options, columns = task_parts(task, where)
    assert columns is not None
    frame = _shaped(columns, data, where, "data")
    settings = validated(Split, split, f"{where}: split")
    if eval_data is not None:  # the user's own eval rows; calibration is drawn from the rest
        held_out = _shaped(columns, eval_data, where, "eval_data").assign(split="eval")
        frame = _concat(split_beside_eval(frame, settings.calibration, seed), held_out)
    else:
        frame = assign_splits(frame, settings, seed, None)
    labels = tuple(label_key(v) for v in columns.labels) if columns.labels else None
    features = tuple(columns.feature_columns(list(data.columns))) if columns.features else None
    if task_class.labelled:
        frame, names = encode_labels(frame, list(labels) if labels else None)
        labels = tuple(names)
    spec = TaskSpec(task_class.name, options=options, labels=labels, features=features,
                    image_shape=columns.image_shape)
    prepared = Prepared(frame, spec)
    prepared.task.check_data(frame)
    return prepared


def _shaped(columns: Columns, frame: Any, where: str, field: str) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise StepParameterError(f"{where}: {field}: a pandas DataFrame, got {type(frame).__name__}")
    try:
        return columns.shaped(frame, FRAME_ORIGIN)
    except ModelpressError as exc:
        raise StepParameterError(f"{where}: {field}: {str(exc).removeprefix(f'{FRAME_ORIGIN}: ')}") from None


def _concat(*frames: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames, ignore_index=True)
