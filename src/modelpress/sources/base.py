"""What every model source declares and does: where the model comes from and how it loads.

A source is one module under ``modelpress.sources`` with a pydantic config (``source:`` is its
registered name) whose methods are the source's functions: ``load`` gives the baseline model,
``facts`` what the plan needs before loading it (labels, tokenizer, the task it was built for),
``problems`` what is wrong with it, found at ``modelpress validate`` before any compute.
Relative paths in a recipe are relative to the recipe's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ValidationInfo

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import StrictConfig

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task

#: What ``load`` returns: an eager nn.Module stages may rewrite, a TorchScript module (weights
#: can change, structure cannot), or an ONNX graph (only graph stages apply).
Artifact = Literal["module", "scripted", "graph"]


@dataclass(frozen=True)
class SourceFacts:
    """What a source knows about its model without loading its weights."""

    task: str | None = None  # the task the model was built for (None: the recipe must say)
    labels: tuple[str, ...] | None = None  # class names in output order
    num_labels: int | None = None  # outputs per row, when known without running the model
    tokenizer: str | None = None  # a folder, or a package that ships one
    image_processor: str | None = None  # a folder holding the model's preprocessor_config.json
    #: the model's Hugging Face config (config.json as a dict), when known without loading it
    hf_config: Mapping[str, Any] | None = None
    #: what a reader of the report must know about this model (e.g. what the reference is)
    notes: tuple[str, ...] = ()


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


def resolve_path(value: Path | str, info: ValidationInfo) -> Path:
    """``value`` against the recipe's folder (validation context ``base``), which must exist."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base") if info is not None else None
    if not path.is_absolute() and base is not None and (Path(base) / path).exists():
        path = Path(base) / path
    if not path.exists():
        raise ValueError(f"no such file or folder: '{value}'")
    return path.resolve()


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """One digest over a folder's files (names and contents), for folder models."""
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def unreadable(path: Path, kind: str, exc: BaseException) -> ModelpressError:
    """One line naming the file: a truncated or foreign file must not end in a traceback."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelpressError(f"{path}: not a readable {kind} ({detail[:300]})")
