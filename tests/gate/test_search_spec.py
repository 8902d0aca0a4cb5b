"""The search block: paths and values checked against the stages' own configs at load."""

from __future__ import annotations

import pytest

from modelpress.core.errors import RecipeError
from modelpress.recipe.schema import load_recipe, validate_recipe
from modelpress.settings.search import expand, pareto, techniques


def _with_search(search: dict) -> dict:
    raw = load_recipe("mnist-cnn").model_dump(mode="json")
    raw["search"] = search
    return raw


def test_every_bad_path_and_value_is_reported_with_its_field() -> None:
    raw = _with_search({"objective": "accuracy", "grid": {
        "prune.sparsity": [0.3, 1.5], "quantize.nbits": [4], "stages[0].quantize.bits": [8],
        "lowrank.rank": [4], "stages[7].prune.sparsity": [0.1], "prune": [1]}})
    with pytest.raises(RecipeError) as caught:
        validate_recipe(raw, source="search.yaml")
    problems = caught.value.problems
    expected = [
        "search.objective: 'accuracy' is not a metric to minimise",
        "search.grid.prune.sparsity: [1] 1.5: Input should be less than 1",
        "search.grid.quantize.nbits: stage 'quantize' has no parameter 'nbits'; it has: ",
        "search.grid.stages[0].quantize.bits: stages[0] is 'prune', not 'quantize'",
        "search.grid.lowrank.rank: no 'lowrank' stage in the recipe",
        "search.grid.stages[7].prune.sparsity: the recipe has 2 stage(s)",
        "search.grid.prune: expected '<stage>.<param>'",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)


def test_expansion_toggles_stages_and_drops_no_op_points() -> None:
    raw = _with_search({"grid": {"prune.sparsity": [0.0, 0.5, 0.8], "quantize.enabled": [True, False]}})
    recipe = validate_recipe(raw)
    candidates = expand(raw, recipe.stages, recipe.search)
    assert [c.label for c in candidates] == [
        "prune.sparsity=0.0, quantize.enabled=true", "prune.sparsity=0.5, quantize.enabled=true",
        "prune.sparsity=0.5, quantize.enabled=false", "prune.sparsity=0.8, quantize.enabled=true",
        "prune.sparsity=0.8, quantize.enabled=false"]
    assert [techniques(c) for c in candidates][:3] == [["quantize"], ["prune", "quantize"], ["prune"]]
    for candidate in candidates:  # each is a plain, valid recipe
        assert "search" not in candidate.recipe and validate_recipe(candidate.recipe).stages
    assert candidates[3].recipe["stages"][0]["prune"]["sparsity"] == 0.8


def test_pareto_keeps_only_undominated_rows() -> None:
    rows = [{"accuracy": 0.95, "size_mb": 1.0}, {"accuracy": 0.94, "size_mb": 0.5},
            {"accuracy": 0.93, "size_mb": 0.6}, {"accuracy": 0.95, "size_mb": 1.2}]
    assert pareto(rows, [("accuracy", True), ("size_mb", False)]) == [0, 1]
