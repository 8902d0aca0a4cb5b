"""Recipes name the stages by registry key; their bad values fail at load, with field paths."""

from __future__ import annotations

import pytest

from modelpress.core.errors import RecipeError
from modelpress.recipe.schema import validate_recipe

BASE = {
    "name": "t",
    "model": {"source": "package", "name": "small-cnn"},
    "data": {"source": "digits"},
    "gate": {"accuracy": {"max_drop": 0.01}},
    "registry": {"name": "t"},
}


def test_distill_then_prune_then_finetune_validates():
    recipe = validate_recipe({**BASE, "stages": [
        {"distill": {"student": {"width": 0.5}, "assistants": [{"width": 0.75}], "temperature": 4, "alpha": 0.7}},
        {"prune": {"sparsity": 0.8}},
        {"finetune": {"epochs": 2, "lora": {"r": 8}, "grad_accum": 2}},
    ]})
    assert [s.name for s in recipe.stages] == ["distill", "prune", "finetune"]


@pytest.mark.parametrize("stage, message", [
    ({"distill": {"student": {"layers": 3}, "temperature": 0}}, "temperature must be > 0"),
    ({"distill": {"student": {"layers": 3}, "alpha": 2}}, "alpha must lie in [0, 1]"),
    ({"finetune": {"lora": {"r": 0}}}, "r"),
    ({"finetune": {"epochs": 1, "learning_rate": 1e-3}}, "learning_rate"),
])
def test_bad_stage_values_fail_at_load(stage, message):
    with pytest.raises(RecipeError) as caught:
        validate_recipe({**BASE, "stages": [stage]})
    text = "\n".join(caught.value.problems)
    assert "stages[0]" in text and message in text
