"""A causal LM's splits in sequences and tokens: fitted with its tokenizer, and reported.

``data.split`` may give eval and calibration as ``{sequences: N}`` or ``{tokens: N}``
(``modelpress.datasets.sizes``): the documents' packed token counts decide how many documents
each split takes. Whatever the split was given in, :func:`corpus_sizes` says what calibration
and eval hold in packed sequences and tokens (the data report, the run's metadata, and the
calibration warning of ``modelpress validate``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelpress.datasets.sizes import fit_splits
from modelpress.lm.corpus import CorpusError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelpress.datasets.base import Split


def fit_corpus_splits(frame: pd.DataFrame, split: Split, tokenizer: Any, max_length: int) -> pd.DataFrame:
    """Sizes in sequences or tokens resolved to whole documents (the frame as it is otherwise)."""
    if not split.sized:
        return frame
    encoded = tokenizer(frame["text"].tolist(), add_special_tokens=False)["input_ids"]
    return fit_splits(frame, split, [len(ids) + 1 for ids in encoded], max_length)  # + the EOS separator


def corpus_sizes(frame: pd.DataFrame, packed: Callable[[pd.DataFrame], np.ndarray],
                 max_length: int) -> dict[str, int]:
    """``{calibration,eval}_{documents,sequences,tokens}``: the packed sequences each split gives
    (and ``sequence_tokens``, their length)."""
    sizes: dict[str, int] = {"sequence_tokens": max_length}
    for split in ("calibration", "eval"):
        part = frame[frame["split"] == split]
        try:
            sequences = len(packed(part)) if len(part) else 0
        except CorpusError:
            sequences = 0  # fewer tokens than one sequence (check_data says so where it matters)
        sizes |= {f"{split}_documents": len(part), f"{split}_sequences": sequences,
                  f"{split}_tokens": sequences * max_length}
    return sizes
