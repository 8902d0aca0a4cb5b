"""Where the inputs and the label are in a user's table: the columns a CSV or Parquet file
(``table.py``) or a DataFrame handed to a public ZenML step (``modelpress.zenml``) names.

A table holds a text column, feature columns or an image column (bytes, or paths relative to
the table's folder), and a label column (optional for tasks that take no labels: a causal LM
reads the text column alone). :meth:`Columns.shaped` turns it into the frame every task reads:
``text``, ``f0…fN`` or ``image``/``image_file``, and ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import StrictConfig
from modelpress.datasets import images
from modelpress.datasets.base import DataSchema
from modelpress.datasets.pixels import ImageTransform

if TYPE_CHECKING:
    import pandas as pd


class Columns(StrictConfig):
    """The columns that hold the inputs (exactly one of text, features, image) and the label."""

    label: str | None = None
    text: str | None = None
    features: list[str] | Literal["*"] | None = Field(
        None, description='feature columns in the model\'s order; "*" = every column except the label')
    image: str | None = Field(None, description="a column of image files: bytes, or paths relative to the file")
    image_shape: tuple[int, int, int] | None = Field(None, description="C, H, W of the features")
    transform: ImageTransform | None = Field(None, description="a plain module's image preprocessing")
    labels: list[str | int] | None = Field(None, min_length=2, description="declared label set")

    @field_validator("features")
    @classmethod
    def _some_features(cls, value: list[str] | str | None) -> list[str] | str | None:
        if isinstance(value, list) and not value:
            raise ValueError('give at least one column, or "*" for every column except the label')
        return value

    @model_validator(mode="after")
    def _one_input_kind(self) -> Columns:
        if sum(field is not None for field in (self.text, self.features, self.image)) != 1:
            raise ValueError("give exactly one of 'text' (a column), 'features' (columns) or 'image' (a column)")
        return self

    def data_schema(self, source: str) -> DataSchema:
        """What the task needs to know about the shaped frame (``source`` names it in messages)."""
        kind = "text" if self.text else "image" if self.image else "features"
        labels = tuple(self.labels) if self.labels else None
        if self.image:  # what the declared transform makes of every file (None: the model's processor)
            shape = self.transform.shape() if self.transform is not None else None
        else:
            shape = self.image_shape
        return DataSchema(kind, labels, shape, source, labelled=self.label is not None)

    def feature_columns(self, columns: list[str]) -> list[str]:
        """The feature columns in the model's order: as listed, or (``"*"``) every column but the label."""
        if self.features == "*":
            return [c for c in columns if c != self.label]
        return list(self.features or [])

    def shaped(self, frame: pd.DataFrame, origin: Path) -> pd.DataFrame:
        """``frame`` as the tasks read it; ``origin`` is the table's file (relative image paths
        are resolved against its folder, and messages name it)."""
        features = self.feature_columns(list(frame.columns)) if self.features else []
        inputs = [self.text] if self.text else [self.image] if self.image else features
        wanted = ([self.label] if self.label else []) + inputs
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise ModelpressError(f"{origin}: missing column(s) {missing}; has {list(frame.columns)}")
        if self.text:
            return self._labelled(frame, frame[[self.text]].set_axis(["text"], axis=1))
        if self.image:
            return self._labelled(frame, images.column_images(frame[self.image], origin))
        try:
            out = frame[features].astype("float32")
        except (TypeError, ValueError) as exc:
            raise ModelpressError(f"{origin}: feature columns must be numeric ({exc})") from None
        out.columns = [f"f{i}" for i in range(len(out.columns))]
        return self._labelled(frame, out)

    def _labelled(self, frame: pd.DataFrame, inputs: pd.DataFrame) -> pd.DataFrame:
        return inputs.assign(label=frame[self.label].to_numpy()) if self.label else inputs
