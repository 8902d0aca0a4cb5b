"""Truncated-SVD factorisation: rank chosen by energy or budget, exact on low-rank weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from modelpress.core.registry import get_stage
from modelpress.deploy.onnx_export import check_parity, export_onnx
from modelpress.steps.lowrank.config import LowRankConfig
from modelpress.tasks.context import StageContext


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Linear(64, 48)
        self.head = nn.Linear(48, 3)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.wide(pixels.flatten(1))))


@pytest.fixture
def context() -> StageContext:
    from modelpress.tasks import TaskSpec

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.random((48, 64)).astype("float32"), columns=[f"f{i}" for i in range(64)]
    )
    frame["label"] = rng.integers(0, 3, 48)
    frame["split"] = ["train"] * 32 + ["eval"] * 16
    return StageContext(TaskSpec("image-classification", image_shape=(1, 8, 8)).build(), frame)


def _planted_rank(rank: int) -> Net:
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.wide.weight.copy_(torch.randn(48, rank) @ torch.randn(rank, 64) / 8)
    return net


def _apply(model, context, **config):
    spec = get_stage("lowrank")
    return spec.apply(model, spec.config(**config), context)


def test_energy_finds_the_planted_rank_and_reproduces_the_layer(context) -> None:
    model = _planted_rank(5)
    factored = _apply(model, context, energy=0.9999)
    assert isinstance(factored.wide, nn.Sequential)
    assert factored.wide[0].out_features == 5 and factored.wide[0].bias is None
    assert context.report["rank.wide"] == "5/48"
    assert context.report["rank.head"].startswith("skipped")  # 48·3 is cheaper than any factoring
    assert context.report["params_after"] == context.report["params_before"] - (48 * 64) + 5 * (
        64 + 48
    )
    x = torch.rand(7, 1, 8, 8)
    torch.testing.assert_close(factored(x), model(x), atol=1e-4, rtol=1e-4)


def test_param_budget_caps_each_layer(context) -> None:
    factored = _apply(_planted_rank(40), context, param_budget=0.25)
    rank = int(0.25 * 48 * 64 / (48 + 64))  # 6
    assert factored.wide[0].out_features == rank
    assert sum(p.numel() for p in factored.wide.parameters()) <= 0.25 * 48 * 64 + 48


def test_a_factor_that_would_not_save_parameters_is_skipped(context) -> None:
    factored = _apply(_planted_rank(40), context, energy=1.0)  # full rank 40 · (64+48) > 64·48
    assert isinstance(factored.wide, nn.Linear)
    assert context.report["factored_layers"] == 0


def test_exclude_patterns_and_recovery_then_onnx(context) -> None:
    model = _planted_rank(4)
    factored = _apply(
        model, context, energy=0.999, exclude=["head"], recovery={"epochs": 1, "lr": 1e-3}
    )
    assert "rank.head" not in context.report
    exported = export_onnx(factored, context.task, context.split("eval"))
    check_parity(factored, exported, context.task, context.split("eval"))


@pytest.mark.parametrize(
    "config", [{}, {"energy": 0.9, "param_budget": 0.5}, {"energy": 1.5}, {"param_budget": 1.0}]
)
def test_bad_rank_rules_are_rejected(config: dict) -> None:
    with pytest.raises(ValidationError):
        LowRankConfig(**config)
