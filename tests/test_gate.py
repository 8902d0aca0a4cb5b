from __future__ import annotations

import pytest

from modelpress.core.handoffs import Evaluation
from modelpress.gate.rules import run_gate
from modelpress.settings.blocks import Threshold

REPORT = Evaluation(task="image-classification", eval_rows=100,
                    baseline={"accuracy": 0.90, "size_mb": 10.0, "latency_ms": 4.0},
                    candidate={"accuracy": 0.88, "size_mb": 2.5, "latency_ms": 3.0})


@pytest.mark.parametrize("metric, threshold, value, passed", [
    ("accuracy", {"max_drop": 0.03}, 0.02, True),
    ("accuracy", {"max_drop": 0.01}, 0.02, False),
    ("accuracy", {"max_relative_drop": 0.02}, 0.02 / 0.9, False),
    ("accuracy", {"min": 0.88}, 0.88, True),
    ("size_mb", {"max_ratio": 0.25}, 0.25, True),
    ("size_mb", {"max": 2.0}, 2.5, False),
    ("latency_ms", {"max_ratio": 0.5}, 0.75, False),
])
def test_each_rule(metric: str, threshold: dict, value: float, passed: bool) -> None:
    verdict = run_gate({metric: Threshold(**threshold)}, REPORT)
    [check] = verdict.checks
    assert check.value == pytest.approx(value)
    assert check.passed is passed and verdict.passed is passed


def test_verdict_names_every_failed_check() -> None:
    verdict = run_gate({"accuracy": Threshold(max_drop=0.0), "size_mb": Threshold(max_ratio=0.1)}, REPORT)
    assert not verdict.passed
    assert "accuracy.max_drop" in verdict.reason and "size_mb.max_ratio" in verdict.reason
