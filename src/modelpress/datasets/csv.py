"""``source: csv``: a user's CSV file (the columns are described in ``table.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from modelpress.core.registry import register_dataset
from modelpress.datasets.table import TableData

if TYPE_CHECKING:
    import pandas as pd


@register_dataset("csv")
class CsvData(TableData):
    source: Literal["csv"]

    summary = "a CSV file: a text column, feature columns or an image column, and a label column"

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        try:
            return pd.read_csv(self.path, usecols=columns)
        except Exception as exc:  # noqa: BLE001 -- pandas raises many types for unreadable files
            raise self.unreadable(exc) from None

    def columns(self) -> list[str]:
        import pandas as pd

        try:
            return list(pd.read_csv(self.path, nrows=0).columns)
        except Exception as exc:  # noqa: BLE001 -- see read
            raise self.unreadable(exc) from None
