"""What every data source declares and does: the recipe's ``data:`` block, one module per kind.

A data source is one module under ``modelpress.datasets`` with a pydantic config (``source:`` is
the name it is registered under with :func:`modelpress.core.registry.register_dataset`; unknown keys
are errors) whose methods are everything the rest of modelpress asks of data:

* ``describe``: what the task and the plan need to know before loading (:class:`DataSchema`);
* ``problems``: what is wrong with the data that its fields alone cannot say (at validate);
* ``fingerprint``: keys the pipeline's cache, so changed data is never served stale;
* ``load``: the raw frame (inputs and labels, not yet split);
* ``profile``: the numbers recorded with a registered version, that fresh data is checked against;
* ``repoint``: the data block a version was trained on, aimed at fresh data, for ``retrain``.

Splitting (and encoding labels) is the same for every source and lives in ``modelpress.datasets.splits``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import Field, field_validator, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import DATASETS, StrictConfig
from modelpress.datasets.profile import data_profile

if TYPE_CHECKING:
    import pandas as pd


class SplitSize(StrictConfig):
    """A causal LM's split in what it reads: packed sequences or tokens. Whole documents are taken,
    in the split's seeded order, until their packed tokens reach it (``modelpress.datasets.sizes``)."""

    sequences: int | None = Field(None, ge=1, description="packed sequences of model.task.max_length tokens")
    tokens: int | None = Field(None, ge=1, description="tokens (rounded up to whole sequences)")

    @model_validator(mode="after")
    def _one(self) -> SplitSize:
        if (self.sequences is None) == (self.tokens is None):
            raise ValueError("give exactly one of sequences or tokens")
        return self

    def sequences_for(self, max_length: int) -> int:
        return self.sequences if self.sequences is not None else -(-int(self.tokens or 0) // max_length)

    def __str__(self) -> str:
        return f"{{sequences: {self.sequences}}}" if self.sequences is not None else f"{{tokens: {self.tokens}}}"


class Split(StrictConfig):
    """Fractions (0–1) or row counts for train and eval; calibration rows are drawn from train.
    For a causal LM, eval and calibration may be sizes in sequences or tokens (:class:`SplitSize`)."""

    train: float = Field(0.7, gt=0)
    eval: float | SplitSize = Field(0.3)
    calibration: int | SplitSize = Field(256)

    @field_validator("eval", "calibration", mode="before")
    @classmethod
    def _a_number_or_a_size(cls, value: Any) -> Any:
        # One line on the field itself: the union would name its members (calibration.int: ...).
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number (or {sequences: N} / {tokens: N} for a causal LM)")
        return value

    @model_validator(mode="after")
    def _fractions_fit(self) -> Split:
        if isinstance(self.eval, float) and self.eval <= 0:
            raise ValueError("eval: must be above 0")
        if isinstance(self.calibration, int) and self.calibration < 1:
            raise ValueError("calibration: must be at least 1")
        if isinstance(self.eval, float) and self.train < 1 and self.eval < 1 and self.train + self.eval > 1 + 1e-9:
            raise ValueError(f"train + eval fractions exceed 1 ({self.train} + {self.eval})")
        return self

    @property
    def sized(self) -> bool:
        """Whether eval or calibration is given in sequences or tokens (a causal LM's)."""
        return isinstance(self.eval, SplitSize) or isinstance(self.calibration, SplitSize)


@dataclass(frozen=True)
class DataSchema:
    """What the rest of the pipeline needs to know about the loaded frame."""

    kind: str  # "text", "features" or "image": the inputs, as a task takes them
    labels: tuple[Any, ...] | None
    image_shape: tuple[int, int, int] | None
    source: str  # where the data comes from, for messages: its file, or the shipped set's name
    labelled: bool = True  # False: the data has no label column (a corpus of documents)

    def with_labels(self, labels: Any) -> DataSchema:
        return replace(self, labels=tuple(labels))


class Dataset(StrictConfig):
    """Base of every data source config; the fields here are the ones every source has."""

    source: str
    split: Split = Split()
    seed: int = 0
    limit: int | None = Field(None, ge=10, description="sample at most this many rows (seeded)")

    #: one line for ``modelpress datasets``
    summary: ClassVar[str] = ""

    def describe(self) -> DataSchema:
        raise NotImplementedError

    def problems(self) -> list[str]:
        """What is wrong with the data, found at ``modelpress validate`` before anything is loaded;
        one message per problem, led by its field path (``data.image: ...``)."""
        return []

    def fingerprint(self) -> str:
        """Keys the pipeline's cache: a changed file (or package version) must not reuse stale data."""
        raise NotImplementedError

    def load(self) -> pd.DataFrame:
        """The raw frame: ``text``, feature columns ``f0..fN`` or ``image`` (+ ``image_file``), and
        ``label`` when the data has labels; not yet split or validated."""
        raise NotImplementedError

    def declared_labels(self) -> tuple[Any, ...] | None:
        """The label set: as described, else as read from the data (:meth:`label_values`), so label
        problems are found at validate; None when the data has no labels or cannot say cheaply."""
        schema = self.describe()
        if schema.labels is not None or not schema.labelled:
            return schema.labels
        return self.label_values()

    def label_values(self) -> tuple[Any, ...] | None:
        """The labels the data holds, read cheaply (one column); None when unreadable (loading
        reports that)."""
        return None

    def feature_names(self) -> tuple[str, ...] | None:
        """The feature columns in the model's order, when the data names them (None: ``f0..fN``)."""
        return None

    def profile(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The profile recorded with a registered version (``data/profile.json``): retraining checks
        fresh data against it for drift, and :meth:`repoint` may read it."""
        return data_profile(frame)

    @classmethod
    def repoint(cls, written: Mapping[str, Any], fresh: Path, profile: Mapping[str, Any]) -> dict[str, Any]:
        """The data block a version was trained on (``written``, as recorded with it, not validated:
        its files may be gone) aimed at ``fresh`` data of the same layout, for ``modelpress retrain``."""
        raise ModelpressError(f"--data: data.source {written.get('source')} cannot be pointed at fresh data")


def dataset_kind(name: str) -> type[Dataset]:
    """The registered data source ``name`` (one line listing the known ones when there is none)."""
    try:
        return cast(type[Dataset], DATASETS.get(name))
    except KeyError as exc:
        raise ModelpressError(f"data.source: {exc.args[0]}") from None


def dataset_kinds() -> dict[str, type[Dataset]]:
    """Every registered data source by name (the built-in modules are imported on first use)."""
    return {name: cast(type[Dataset], kind) for name, kind in DATASETS.all().items()}


def dataset_config(name: str, config: Mapping[str, Any]) -> Dataset:
    """A data block that travelled as JSON (a ZenML step's parameter), validated again by its kind."""
    return dataset_kind(name).model_validate(dict(config))
