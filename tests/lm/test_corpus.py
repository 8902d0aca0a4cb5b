"""Reading, splitting and packing documents (modelpress.lm.corpus)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelpress.lm.corpus import (
    CorpusError,
    check_max_length,
    pack_splits,
    read_documents,
    split_documents,
)

from .conftest import word_tokenizer


def test_each_file_kind_gives_its_documents(tmp_path):
    docs = ["first doc", "second doc", "third"]
    (tmp_path / "c.txt").write_text("first doc\n\n  \nsecond doc\nthird\n")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(docs)))
    pd.DataFrame({"body": docs}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"body": docs}).to_parquet(tmp_path / "c.parquet")
    assert read_documents(tmp_path / "c.txt") == docs
    assert read_documents(tmp_path / "c.jsonl") == docs
    assert read_documents(tmp_path / "c.csv", field="body") == docs
    assert read_documents(tmp_path / "c.parquet", field="body") == docs


@pytest.mark.parametrize("name, content, field, expected", [
    ("blank.txt", "\n  \n\t\n", "text", "no usable lines"),
    ("no-field.jsonl", json.dumps({"body": "x"}) + "\n", "text", "line 1 has no 'text' field"),
    ("bad.jsonl", "{not json\n", "text", "line 1 is not JSON"),
    ("no-column.csv", "body\nx\n", "text", "no column 'text'"),
])
def test_unusable_files_are_named_in_one_line(tmp_path, name, content, field, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CorpusError) as error:
        read_documents(path, field=field)
    message = str(error.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CorpusError, match="no such corpus file"):
        read_documents(tmp_path / "absent.txt")


def test_split_is_by_document_seeded_and_complete():
    docs = [f"doc {i}" for i in range(50)]
    frame = split_documents(docs, calibration=5, eval=0.2, seed=1)
    assert list(frame.columns) == ["text", "split"]
    assert sorted(frame["text"]) == sorted(docs)  # every document exactly once
    assert frame["split"].value_counts().to_dict() == {"train": 35, "eval": 10, "calibration": 5}
    assert frame.equals(split_documents(docs, calibration=5, eval=0.2, seed=1))
    assert not frame.equals(split_documents(docs, calibration=5, eval=0.2, seed=2))


def test_packing_never_crosses_a_split_boundary():
    """Each split's sequences hold only that split's documents' tokens (and EOS): no eval text
    leaks into calibration or train. Packing all documents in one stream would mix them, since
    documents of different splits alternate in the shuffled frame."""
    words = {s: [f"{s[0]}{i}" for i in range(30)] for s in ("calibration", "train", "eval")}
    tokenizer = word_tokenizer([w for ws in words.values() for w in ws])
    rng = np.random.default_rng(0)
    docs, splits = [], []
    for i in range(90):
        split = ("calibration", "train", "eval")[i % 3]
        docs.append(" ".join(rng.choice(words[split], size=int(rng.integers(3, 12)))))
        splits.append(split)
    frame = pd.DataFrame({"text": docs, "split": splits})
    packed = pack_splits(frame, tokenizer, max_length=16)
    eos = tokenizer.eos_token_id
    for split, sequences in packed.items():
        assert sequences.shape[1] == 16 and sequences.dtype == np.int64
        allowed = set(tokenizer.convert_tokens_to_ids(words[split])) | {eos}
        assert set(np.unique(sequences).tolist()) <= allowed, split
        assert (sequences == eos).any()  # documents are separated by EOS
    # the split's own tokens, in order, EOS between documents (nothing dropped but the tail)
    cal = frame[frame.split == "calibration"]["text"].tolist()
    stream = [t for d in cal for t in [*tokenizer(d, add_special_tokens=False)["input_ids"], eos]]
    assert packed["calibration"].reshape(-1).tolist() == stream[: packed["calibration"].size]


def test_a_split_shorter_than_one_sequence_is_refused():
    frame = pd.DataFrame({"text": ["w1 w2", "w1 w2 w3 w4 w5 w6 w7 w8 w9"], "split": ["eval", "train"]})
    with pytest.raises(CorpusError, match=r"split 'eval': 3 tokens, fewer than one sequence of max_length=8"):
        pack_splits(frame, word_tokenizer(), max_length=8)


def test_max_length_beyond_the_context_names_the_field(llama):
    check_max_length(128, llama.config)
    with pytest.raises(CorpusError, match=r"data.max_length: 129 is beyond the model's context of 128 tokens"):
        check_max_length(129, llama.config)
