from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelpress.core.registry import get_stage
from modelpress.recipe.schema import load_recipe
from modelpress.steps.prune.config import PruneConfig, Schedule


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_is_rejected(sparsity: float) -> None:
    with pytest.raises(ValidationError, match="sparsity"):
        PruneConfig(sparsity=sparsity)


def test_structured_only_fields_are_rejected_for_masks() -> None:
    with pytest.raises(ValidationError, match="only applies to method 'structured'"):
        PruneConfig(method="magnitude", target="ffn")
    with pytest.raises(ValidationError, match="head_sparsity"):
        PruneConfig(head_sparsity=0.3)


def test_cubic_schedule_front_loads_and_ends_on_target() -> None:
    targets = Schedule(steps=3, kind="cubic").targets(0.8)
    assert targets[-1] == pytest.approx(0.8)
    assert targets[0] == pytest.approx(0.8 * (1 - (2 / 3) ** 3))
    steps = [b - a for a, b in zip([0.0, *targets], targets)]
    assert steps == sorted(steps, reverse=True)


def test_the_shipped_mnist_recipe_still_validates() -> None:
    recipe = load_recipe("mnist-cnn")
    stage = recipe.stages[0]
    config = stage.prune if hasattr(stage, "prune") else stage
    assert get_stage("prune").config is PruneConfig
    assert "0.6" in repr(config)
