"""Gate checks relative to the champion, and contradictory thresholds refused at recipe load."""

from __future__ import annotations

import pytest

from modelpress.core.errors import RecipeError
from modelpress.core.handoffs import ChampionReport, Evaluation
from modelpress.gate.rules import run_gate
from modelpress.recipe.schema import load_recipe, validate_recipe
from modelpress.settings.blocks import Threshold

REPORT = Evaluation(task="image-classification", eval_rows=100,
                    baseline={"accuracy": 0.90, "size_mb": 10.0, "latency_ms": 4.0},
                    candidate={"accuracy": 0.88, "size_mb": 2.5, "latency_ms": 3.0})
CHAMPION = ChampionReport(version="3", metrics={"accuracy": 0.92, "size_mb": 2.0, "latency_ms": 2.0},
                          candidate={"accuracy": 0.88, "size_mb": 2.5, "latency_ms": 2.4})


def test_champion_rules_use_the_candidate_measured_beside_the_champion() -> None:
    verdict = run_gate({"accuracy": Threshold(max_champion_drop=0.05),
                        "latency_ms": Threshold(max_champion_ratio=1.1)}, REPORT, CHAMPION)
    drop, ratio = verdict.checks
    assert drop.value == pytest.approx(0.04) and drop.passed
    assert ratio.value == pytest.approx(1.2) and not ratio.passed  # 2.4 / 2.0, not 3.0 / 2.0
    assert not verdict.passed and "latency_ms.max_champion_ratio" in verdict.reason
    assert verdict.champion_version == "3"


def test_champion_rules_skip_without_champion_and_fail_when_it_cannot_be_measured() -> None:
    thresholds = {"accuracy": Threshold(max_champion_drop=0.0)}
    first = run_gate(thresholds, REPORT, ChampionReport())
    assert first.passed and "skipped" in first.checks[0].note
    broken = run_gate(thresholds, REPORT, ChampionReport(version="2", error="InvalidGraph: bad"))
    assert not broken.passed and "champion not measured" in broken.reason


def _raw(**gate: dict) -> dict:
    raw = load_recipe("mnist-cnn").model_dump(mode="json")
    raw["gate"] = gate
    return raw


@pytest.mark.parametrize("gate, registry, expected", [
    ({"accuracy": {"min": 1.5}}, {}, "gate.accuracy: min (1.5) is above the largest possible accuracy"),
    ({"size_mb": {"max_ratio": 0.3, "max_relative_drop": 0.5}}, {},
     "gate.size_mb: max_ratio (0.3) requires the candidate to shrink"),
    ({"latency_ms": {"min": 5.0}, "latency_p95_ms": {"max": 2.0}}, {},
     "latency_p95_ms.max (2.0) is below latency_ms.min"),
    ({"accuracy": {"max_champion_drop": 0.01}}, {"tolerance": 0.03}, "registry.tolerance (0.03) disagree"),
    ({"accuracy": {"min": 0.9, "max": 0.8}}, {}, "min (0.9) is greater than max (0.8)"),
    ({"perplexity": {"max": 20}}, {}, "cannot produce perplexity"),
])
def test_bad_gates_are_refused_at_load(gate: dict, registry: dict, expected: str) -> None:
    raw = _raw(**gate)
    raw["registry"] = {**raw["registry"], **registry}
    with pytest.raises(RecipeError) as caught:
        validate_recipe(raw, source="r.yaml")
    assert expected in str(caught.value)


def test_a_consistent_gate_with_champion_bounds_loads() -> None:
    raw = _raw(accuracy={"max_drop": 0.02, "max_champion_drop": 0.005}, peak_memory_mb={"max_ratio": 1.5})
    recipe = validate_recipe(raw)
    assert recipe.gate["accuracy"].max_champion_drop == 0.005
