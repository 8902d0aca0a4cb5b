"""Tasks: how a kind of model takes its inputs, what its outputs mean and what it measures.

Each task is one module here that registers a :class:`Task` subclass with
:func:`modelpress.core.registry.register_task`; see ``base.py`` for what a task declares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelpress.core.metric import Metric
from modelpress.core.registry import TASKS
from modelpress.tasks.base import Batch, Task, TaskConfig, TaskSpec, get_task, split_outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


def tasks() -> Mapping[str, type[Task]]:
    """Every registered task by name (the built-in modules are imported on first use)."""

    return TASKS.all()


__all__ = ["Batch", "Metric", "Task", "TaskConfig", "TaskSpec", "get_task", "split_outputs", "tasks"]
