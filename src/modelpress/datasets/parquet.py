"""``source: parquet``: a user's Parquet file (the columns are described in ``table.py``); a
Hugging Face ``datasets`` Image column (``{bytes, path}`` records) is read as image files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import register_dataset
from modelpress.datasets.table import TableData

if TYPE_CHECKING:
    import pandas as pd


@register_dataset("parquet")
class ParquetData(TableData):
    source: Literal["parquet"]

    summary = "a Parquet file: a text column, feature columns or an image column, and a label column"

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        try:
            return pd.read_parquet(self.path, columns=columns)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises several types for a bad file
            raise self.unreadable(exc) from None

    def columns(self) -> list[str]:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(self.path).names)
        except Exception as exc:  # noqa: BLE001 -- see read
            raise ModelpressError(f"{self.path}: cannot read as parquet: {exc}") from None
