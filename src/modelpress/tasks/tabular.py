"""Tabular classification: a float vector from named feature columns (``features: "*"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from modelpress.core.registry import register_task
from modelpress.tasks.base import Batch, DataKind, TaskConfig
from modelpress.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    import pandas as pd


class TabularClassificationConfig(TaskConfig):
    name: Literal["tabular-classification"] = "tabular-classification"


@register_task("tabular-classification")
class TabularClassification(ClassificationTask):
    """The model takes ``features`` [batch, n] float32 in the data's column order.

    Scaling is the model's business: a user's tabular model normally carries its own scaler
    (buffers inside the module), so the columns are fed as they are in the file.
    """

    name = "tabular-classification"
    Config = TabularClassificationConfig
    summary = "class of a row of numeric feature columns (a float vector, column order kept)"
    data_kind: ClassVar[DataKind] = "features"
    init_for: ClassVar[DataKind | None] = "features"
    input_names = ("features",)

    def encode(self, frame: pd.DataFrame) -> Batch:
        columns = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
        columns.sort(key=lambda c: int(c[1:]))
        # copy=True: pandas 3 hands out read-only views, which torch.from_numpy warns about
        return {"features": frame[columns].to_numpy(dtype="float32", copy=True)}
