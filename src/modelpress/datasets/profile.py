"""The profile of a dataset: a few numbers per column, recorded with every registered version
(``data/profile.json``), that retraining checks fresh data against (``modelpress.datasets.validation``'s
drift suite): the columns, the label shares, each feature's range and the distribution of a
per-row statistic (the mean of a row's features, a text's length, an image's brightness).
A corpus (no labels) has empty label shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelpress.datasets.pixels import mean_intensity

if TYPE_CHECKING:
    import pandas as pd


def data_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Schema, ranges, label shares and the row-statistic distribution of ``frame``."""
    import pandas as pd

    data = frame.drop(columns=[c for c in ("split",) if c in frame.columns])
    features = feature_columns(data)
    stat = row_stat(data, features)
    shares = data["label"].value_counts(normalize=True).sort_index() if "label" in data else pd.Series(dtype=float)
    return {
        "columns": list(data.columns), "rows": len(data), "kind": _input_kind(data),
        "labels": [_plain(v) for v in shares.index], "label_shares": [float(s) for s in shares.to_numpy()],
        "row_stat": {"mean": float(stat.mean()), "std": float(stat.std() or 1.0)},
        "ranges": {c: [float(data[c].min()), float(data[c].max())] for c in features},
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The loaded frame's feature columns (``f0..fN``)."""
    return [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]


def _input_kind(frame: pd.DataFrame) -> str:
    return "text" if "text" in frame else "image" if "image" in frame else "features"


def row_stat(frame: pd.DataFrame, features: list[str]) -> pd.Series:
    """One number per row whose mean drift shows: a text's length, an image's mean brightness
    (0..1), else the mean of the row's features."""
    import pandas as pd

    if "text" in frame:
        return frame["text"].fillna("").astype(str).str.len().astype("float64")
    if "image" in frame:
        return pd.Series(mean_intensity(frame["image"]), index=frame.index, dtype="float64")
    return frame[features].mean(axis=1, skipna=True).astype("float64")
