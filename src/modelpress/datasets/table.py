"""What the table sources (``csv.py``, ``parquet.py``) share: a user's file with a text column,
feature columns or an image column (``modelpress.datasets.images``: bytes, or paths relative to the
file's folder), and a label column (optional for tasks that take no labels: a causal LM reads
the text column alone). A subclass only says how to read its format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.files import resolve_path, sha256_file
from modelpress.datasets import images
from modelpress.datasets.base import DataSchema, Dataset
from modelpress.datasets.pixels import ImageTransform
from modelpress.datasets.splits import sorted_labels

if TYPE_CHECKING:
    import pandas as pd

#: the file suffixes that name a Parquet file (anything else is read as CSV)
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_source(path: Path) -> str:
    """The table source that reads ``path``, by its suffix (for ``init`` and ``retrain``)."""
    return "parquet" if path.suffix in PARQUET_SUFFIXES else "csv"


class TableData(Dataset):
    """A CSV or Parquet file; subclasses read their format (:meth:`read`, :meth:`columns`)."""

    path: Path
    label: str | None = None
    text: str | None = None
    features: list[str] | Literal["*"] | None = Field(
        None, description='feature columns in the model\'s order; "*" = every column except the label')
    image: str | None = Field(None, description="a column of image files: bytes, or paths relative to the file")
    image_shape: tuple[int, int, int] | None = Field(None, description="C, H, W of the features")
    transform: ImageTransform | None = Field(None, description="a plain module's image preprocessing")
    labels: list[str | int] | None = Field(None, min_length=2, description="declared label set")

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    @field_validator("features")
    @classmethod
    def _some_features(cls, value: list[str] | str | None) -> list[str] | str | None:
        if isinstance(value, list) and not value:
            raise ValueError('give at least one column, or "*" for every column except the label')
        return value

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

    @model_validator(mode="after")
    def _one_input_kind(self) -> TableData:
        if sum(field is not None for field in (self.text, self.features, self.image)) != 1:
            raise ValueError("give exactly one of 'text' (a column), 'features' (columns) or 'image' (a column)")
        return self

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
        kind = "text" if self.text else "image" if self.image else "features"
        labels = tuple(self.labels) if self.labels else None
        if self.image:  # what the declared transform makes of every file (None: the model's processor)
            shape = self.transform.shape() if self.transform is not None else None
        else:
            shape = self.image_shape
        return DataSchema(kind, labels, shape, str(self.path), labelled=self.label is not None)

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
        return tuple(self._features(self.columns())) if self.features else None

    def _features(self, columns: list[str]) -> list[str]:
        """The feature columns in the model's order: as listed, or (``"*"``) every column but the label."""
        if self.features == "*":
            return [c for c in columns if c != self.label]
        return list(self.features or [])

    def load(self) -> pd.DataFrame:
        frame = self.read()
        features = self._features(list(frame.columns)) if self.features else []
        inputs = [self.text] if self.text else [self.image] if self.image else features
        wanted = ([self.label] if self.label else []) + inputs
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise ModelpressError(f"{self.path}: missing column(s) {missing}; has {list(frame.columns)}")
        if self.text:
            return self._labelled(frame, frame[[self.text]].set_axis(["text"], axis=1))
        if self.image:
            return self._labelled(frame, images.column_images(frame[self.image], self.path))
        try:
            out = frame[features].astype("float32")
        except (TypeError, ValueError) as exc:
            raise ModelpressError(f"{self.path}: feature columns must be numeric ({exc})") from None
        out.columns = [f"f{i}" for i in range(len(out.columns))]
        return self._labelled(frame, out)

    def _labelled(self, frame: pd.DataFrame, inputs: pd.DataFrame) -> pd.DataFrame:
        return inputs.assign(label=frame[self.label]) if self.label else inputs

    @classmethod
    def repoint(cls, written: Mapping[str, Any], fresh: Path, profile: Mapping[str, Any]) -> dict[str, Any]:
        """The same columns in a fresh file (read as CSV or Parquet by its suffix)."""
        return {**written, "source": table_source(fresh), "path": str(fresh)}
