"""Splits sized in what a causal LM reads: packed sequences or tokens, not documents.

``split: {calibration: {sequences: 128}}`` means 128 packed sequences, whatever the documents'
lengths: a corpus of 12-token headlines needs ~2,700 documents for that, one of long articles a
handful. Without the tokenizer the data layer cannot count, so :func:`provisional_splits` marks
the seeded, shuffled rows with only the eval rows a fraction or count gives, and the task (which
has the tokenizer) calls :func:`fit_splits` with each document's packed token count: eval first,
then calibration, then train, each a run of whole documents in the shuffled order, as
:func:`~modelpress.datasets.splits.assign_splits` lays them out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelpress.core.errors import ModelpressError
from modelpress.datasets.base import Split, SplitSize

if TYPE_CHECKING:
    import pandas as pd


def provisional_splits(frame: pd.DataFrame, split: Split) -> pd.DataFrame:
    """Every row kept: the eval rows a fraction or count gives, the rest train until fitted."""
    n_eval = 0 if not isinstance(split.eval, float) else _count(split.eval, len(frame))
    return frame.assign(split=["eval"] * n_eval + ["train"] * (len(frame) - n_eval))


def fit_splits(frame: pd.DataFrame, split: Split, doc_tokens: Sequence[int], max_length: int) -> pd.DataFrame:
    """``frame`` (as :func:`provisional_splits` left it) with eval and calibration holding whole
    documents up to their sizes; ``doc_tokens[i]`` is row i's tokens in a packing (EOS included)."""
    n = len(frame)
    n_eval = int((frame["split"] == "eval").sum())
    if isinstance(split.eval, SplitSize):
        n_eval = documents_for(split.eval, doc_tokens, 0, max_length, "eval")
    n_train = min(_count(split.train, n), n - n_eval)
    if isinstance(split.calibration, SplitSize):
        n_cal = documents_for(split.calibration, doc_tokens, n_eval, max_length, "calibration")
        n_train = max(n_train, n_cal)  # calibration is drawn from train: a size in tokens wins
    else:
        n_cal = min(split.calibration, max(n_train // 4, 1))
    labels = ["eval"] * n_eval + ["calibration"] * n_cal + ["train"] * (n_train - n_cal)
    return frame.iloc[:len(labels)].assign(split=labels)


def documents_for(size: SplitSize, doc_tokens: Sequence[int], start: int, max_length: int, name: str) -> int:
    """How many documents from ``start`` pack into ``size``'s sequences; one line if the corpus is short."""
    need = size.sequences_for(max_length) * max_length
    total = 0
    for count, tokens in enumerate(itertools.islice(doc_tokens, start, None), 1):
        total += tokens
        if total >= need:
            return count
    raise ModelpressError(f"data.split.{name}: {size} needs {need:,} tokens ({need // max_length} sequences of "
                          f"{max_length}); the corpus has {total:,} left for it (give a smaller size or more data)")


def _count(value: float, n: int) -> int:
    return int(round(value * n)) if value <= 1 else min(int(value), n)
