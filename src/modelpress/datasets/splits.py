"""What every data source's frame goes through: labels as text or class indices, and the split.

Data sources (the shipped sets, users' CSV/Parquet files, text corpora, image folders) are the
registered kinds of ``modelpress.datasets``; each loads one pandas DataFrame with the inputs (a
``text`` column, feature columns ``f0..fN``, or ``image`` (encoded file bytes) with
``image_file``) and a ``label`` column when the data has labels (a corpus for a causal LM has
none: one row per document). Here that frame gets its ``split`` column (train / calibration /
eval), so a single artifact flows through ZenML and great-expectations sees exactly what trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelpress.datasets.sizes import provisional_splits

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.datasets.base import Split


def label_key(value: Any) -> str:
    """A label as text, the same for 1, 1.0 (a CSV int column with gaps) and "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)


def labels_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its labels as text (the task's label names are text, a file's may be numbers)."""
    import pandas as pd

    return frame.assign(label=frame["label"].map(lambda v: v if pd.isna(v) else label_key(v)))


def encode_labels(frame: pd.DataFrame, labels: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with its labels as class indices in ``labels``' order (the model's ``id2label`` or
    the declared set; sorted when None), and that order. Every label must be one of them."""
    names = list(labels) if labels is not None else [label_key(v) for v in
                                                     sorted_labels(frame["label"].unique().tolist())]
    index = {name: i for i, name in enumerate(names)}
    return frame.assign(label=labels_as_text(frame)["label"].map(index).astype("int64")), names


def sorted_labels(values: list[Any]) -> tuple[Any, ...]:
    """Labels in their natural order (numbers numerically), by text when types are mixed."""
    try:
        return tuple(sorted(values))
    except TypeError:
        return tuple(sorted(values, key=str))


def assign_splits(frame: pd.DataFrame, split: Split, seed: int, limit: int | None) -> pd.DataFrame:
    """Shuffle (seeded), cut to ``limit`` rows, and mark train / calibration / eval rows.

    Calibration rows are a subset of the training rows' pool (they are taken out of train
    so that calibration never sees eval data).
    """
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if limit is not None:
        frame = frame.iloc[:limit].copy()
    n = len(frame)
    if split.sized:  # sizes in tokens: the task fits them with its tokenizer (datasets.sizes)
        return provisional_splits(frame, split)
    assert isinstance(split.eval, float) and isinstance(split.calibration, int)
    n_eval = eval_count(split, n)
    n_train = min(_count(split.train, n), n - n_eval)
    n_cal = min(split.calibration, max(n_train // 4, 1))
    labels = ["eval"] * n_eval + ["calibration"] * n_cal + ["train"] * (n_train - n_cal)
    frame = frame.iloc[: len(labels)].copy()
    frame["split"] = labels
    return frame


def eval_count(split: Split, rows: int) -> int:
    """How many of ``rows`` (after ``limit``) :func:`assign_splits` marks as eval (a split in rows
    or a fraction: one in sequences or tokens is counted by its task, ``modelpress.datasets.sizes``)."""
    assert isinstance(split.eval, float | int), "a sized eval split has no row count before its task fits it"
    return _count(split.eval, rows)


def _count(value: float, n: int) -> int:
    return int(round(value * n)) if value <= 1 else min(int(value), n)


def split_beside_eval(frame: pd.DataFrame, calibration: int, seed: int) -> pd.DataFrame:
    """Train and calibration rows of ``frame`` (shuffled, seeded) when the eval rows come apart:
    calibration is drawn as :func:`assign_splits` draws it, from the training pool."""
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_cal = min(calibration, max(len(frame) // 4, 1))
    return frame.assign(split=["calibration"] * n_cal + ["train"] * (len(frame) - n_cal))
