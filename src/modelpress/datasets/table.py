"""What the table sources (``csv.py``, ``parquet.py``) share: a user's file with a text column,
feature columns or an image column (``modelpress.datasets.images``: bytes, or paths relative to the
file's folder), and a label column (optional for tasks that take no labels: a causal LM reads
the text column alone). A subclass only says how to read its format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.files import resolve_path, sha256_file
from modelpress.datasets import images
from modelpress.datasets.base import DataSchema, Dataset
from modelpress.datasets.columns import Columns
from modelpress.datasets.splits import sorted_labels

if TYPE_CHECKING:
    import pandas as pd

#: the file suffixes that name a Parquet file (anything else is read as CSV)
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_source(path: Path) -> str:
    """The table source that reads ``path``, by its suffix (for ``init`` and ``retrain``)."""
    return "parquet" if path.suffix in PARQUET_SUFFIXES else "csv"


class TableData(Columns, Dataset):
    """A CSV or Parquet file; subclasses read their format (:meth:`read`, :meth:`columns`)."""

    path: Path

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    def ignored_fields(self) -> dict[str, str]:
        ignored = {}
        if self.text is not None:
            ignored["image_shape"] = "it reshapes feature columns into images; this data is text"
        elif self.image is not None:
            ignored["image_shape"] = ("it reshapes feature columns into images; this data is image files "
                                      "(the model's image processor or data.transform sizes them)")
        if self.image is None:
            ignored["transform"] = "it preprocesses image files; this data has no image column"
        if self.label is None:
            ignored["labels"] = "it declares the classes of the label column, and no label is given"
        return ignored

    # --- the format: what a subclass says ------------------------------------------------------

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The file's rows (only ``columns`` when given); one line naming the file when unreadable."""
        raise NotImplementedError

    def columns(self) -> list[str]:
        """The file's column names, without reading its rows."""
        raise NotImplementedError

    def unreadable(self, exc: BaseException) -> ModelpressError:
        return ModelpressError(f"{self.path}: cannot read as {self.source}: {str(exc).splitlines()[0]}")

    # --- the data source -----------------------------------------------------------------------

    def describe(self) -> DataSchema:
        return self.data_schema(str(self.path))

    def problems(self) -> list[str]:
        """An image column against the files it names (every row holds bytes or an existing file)."""
        if self.image is None:
            return []
        try:
            columns = self.columns()
            if self.image not in columns:
                return [f"data.image: {self.path} has no column {self.image!r}; columns: {', '.join(columns)}"]
            return images.path_problems(self.read([self.image])[self.image], self.path)
        except ModelpressError as exc:
            return [str(exc)]

    def fingerprint(self) -> str:
        if self.image is not None:  # a changed image file must not reuse a cached, stale dataset
            return images.column_fingerprint(self.path, self.read([self.image]).iloc[:, 0])
        return f"sha256:{sha256_file(self.path)}"

    def label_values(self) -> tuple[Any, ...] | None:
        if self.label is None:
            return None
        try:
            column = self.read(columns=[self.label])[self.label]
        except (ModelpressError, KeyError):
            return None
        return sorted_labels(column.dropna().unique().tolist())

    def feature_names(self) -> tuple[str, ...] | None:
        return tuple(self.feature_columns(self.columns())) if self.features else None

    def load(self) -> pd.DataFrame:
        return self.shaped(self.read(), self.path)

    @classmethod
    def repoint(cls, written: Mapping[str, Any], fresh: Path, profile: Mapping[str, Any]) -> dict[str, Any]:
        """The same columns in a fresh file (read as CSV or Parquet by its suffix)."""
        return {**written, "source": table_source(fresh), "path": str(fresh)}
