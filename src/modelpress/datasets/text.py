"""``source: text``: a corpus of documents without labels (a causal LM's), read by
``modelpress.lm.corpus``: one document a line of a text file, or ``field`` of each record of a
``.jsonl`` file (of each row of a ``.csv``/``.parquet`` file)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.files import resolve_path, sha256_file
from modelpress.core.registry import register_dataset
from modelpress.datasets.base import DataSchema, Dataset
from modelpress.lm.corpus import READERS, first_document, read_documents

if TYPE_CHECKING:
    import pandas as pd


@register_dataset("text")
class TextData(Dataset):
    """Documents without labels: one a line, or a JSONL field / CSV or Parquet column."""

    source: Literal["text"]
    # before path: path's validator reads the first document through this field
    field: str = Field("text", description="the JSONL field (CSV/Parquet column) holding each document")
    path: Path

    summary = "a corpus of documents without labels (a causal LM's): a text, JSONL, CSV or Parquet file"

    def ignored_fields(self) -> dict[str, str]:
        if self.path.suffix.lower() in READERS:
            return {}
        return {"field": f"{self.path.name} is read one document a line; field names a .jsonl record's "
                         "field or a .csv/.parquet column"}

    @field_validator("path")
    @classmethod
    def _has_documents(cls, value: Path, info: ValidationInfo) -> Path:
        path = resolve_path(value, info)
        try:
            first_document(path, info.data.get("field", "text"))  # reads up to the first document only
        except ModelpressError as exc:
            raise ValueError(str(exc)) from None
        return path

    def describe(self) -> DataSchema:
        return DataSchema("text", None, None, str(self.path), labelled=False)

    def fingerprint(self) -> str:
        return f"sha256:{sha256_file(self.path)}"

    def load(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"text": read_documents(self.path, self.field)})

    @classmethod
    def repoint(cls, written: Mapping[str, Any], fresh: Path, profile: Mapping[str, Any]) -> dict[str, Any]:
        """A fresh corpus, read the same way (``field`` for a JSONL/CSV/Parquet file)."""
        return {**written, "path": str(fresh)}
