"""What every model source declares and does: where the model comes from and how it loads.

A source is one module under ``modelpress.sources`` with a pydantic config (``source:`` is its
registered name) whose methods are the source's functions: ``load`` gives the baseline model,
``facts`` what the plan needs before loading it (labels, tokenizer, the task it was built for),
``problems`` what is wrong with it, found at ``modelpress validate`` before any compute.
Relative paths in a recipe are relative to the recipe's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from modelpress.core.facts import SourceFacts
from modelpress.core.registry import StrictConfig

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task

#: What ``load`` returns: an eager nn.Module stages may rewrite, a TorchScript module (weights
#: can change, structure cannot), or an ONNX graph (only graph stages apply).
Artifact = Literal["module", "scripted", "graph"]


class Source(StrictConfig):
    source: str
    #: a task name, or ``{name: ..., options}``; None: the task the model says it was built for.
    #: The options are values as written (Any, not JsonValue): the task's own config checks them
    #: (recipe.resolve_task), so `max_length: .inf` is named as that field, not as a union error.
    task: str | dict[str, Any] | None = None

    artifact: ClassVar[Artifact] = "module"
    summary: ClassVar[str] = ""
    #: the order ``modelpress init`` asks the sources whether they recognise a path
    init_order: ClassVar[int] = 100

    def facts(self) -> SourceFacts:
        return SourceFacts()

    def problems(self, task: type[Task] | None) -> list[str]:
        """What is wrong with this model for ``task``, one message per problem (field path first)."""
        return []

    def fingerprint(self) -> str:
        """Keys load_model's cache: a changed file or a moved alias must not reuse a stale model."""
        raise NotImplementedError

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        """The baseline: an nn.Module (``module``/``scripted``) or an onnx.ModelProto (``graph``)."""
        raise NotImplementedError

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """For ``modelpress init``: whether ``path`` looks like this source's kind of model."""
        return False

    @classmethod
    def starter(cls, path: Path, model_class: str | None = None) -> dict[str, Any]:
        """For ``modelpress init``: the ``model:`` block for ``path`` (``--class``, where the kind
        needs one)."""
        return {"source": cls.model_fields["source"].default, "path": str(path)}
