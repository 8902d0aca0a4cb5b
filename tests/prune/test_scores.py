"""Each scorer must rank a planted unimportant neuron lowest -- and the statistics-based ones
must see what magnitude cannot (a dead neuron with large weights, a silent input feature)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelpress.core.registry import get_stage
from modelpress.steps.prune.scores import (
    classification_calibration,
    column_scores,
    element_scores,
    row_scores,
)

from .conftest import MLP

PLANTED = 5


def _live_mlp() -> MLP:
    """Every hidden unit fires on the data (positive bias): only the planted one is unimportant."""
    torch.manual_seed(0)
    model = MLP()
    with torch.no_grad():
        model.fc1.bias.fill_(1.0)
    return model


def _prune_one_hidden_unit(model: MLP, context, score: str) -> list[int]:
    """Structured-prune exactly one of the 16 hidden units; return the survivors' original ids."""
    spec = get_stage("prune")
    config = spec.config(
        method="structured", scope="layer", sparsity=1 / 16, score=score, report_latency=False
    )
    before = model.fc1.weight.detach().clone()
    pruned = spec.apply(model, config, context)
    survivors = [
        int(torch.where((before == row).all(1))[0][0]) for row in pruned.fc1.weight.detach()
    ]
    assert len(survivors) == 15
    return survivors


@pytest.mark.parametrize("score", ["l1", "l2", "taylor", "wanda"])
def test_every_scorer_removes_a_planted_near_zero_neuron(image_context, score: str) -> None:
    model = _live_mlp()
    with torch.no_grad():
        model.fc1.weight[PLANTED] *= 1e-3
        model.fc2.weight[:, PLANTED] *= 1e-3
    assert PLANTED not in _prune_one_hidden_unit(model, image_context, score)


def test_taylor_finds_a_dead_neuron_that_magnitude_keeps(image_context) -> None:
    model = _live_mlp()
    with torch.no_grad():
        model.fc1.weight[PLANTED] *= 5  # large weights ...
        model.fc1.bias[PLANTED] = -1e3  # ... but ReLU never lets it fire: zero gradient
    assert PLANTED in _prune_one_hidden_unit(model, image_context, "l1")
    assert PLANTED not in _prune_one_hidden_unit(model, image_context, "taylor")


def test_wanda_weighs_weights_by_their_input_activity(image_context) -> None:
    silent = 7
    image_context.data[f"f{silent}"] = np.float32(0.0)  # feature 7 is always zero in the data
    torch.manual_seed(0)
    model = MLP()
    with torch.no_grad():
        model.fc1.weight[:, silent] = 10.0  # the largest weights in the layer
    modules = {"fc1": model.fc1}
    calibration = classification_calibration(image_context, batches=2, batch_size=8)
    l1 = column_scores(element_scores(model, modules, "l1")["fc1"])
    wanda = column_scores(element_scores(model, modules, "wanda", calibration)["fc1"])
    assert int(l1.argmax()) == silent
    assert float(wanda[silent]) == 0.0 and int(wanda.argmin()) == silent


def test_row_and_column_scores_sum_the_right_axes() -> None:
    scores = torch.arange(24, dtype=torch.float32).view(2, 3, 4)  # conv-like [out, in, k]
    assert row_scores(scores).tolist() == [66.0, 210.0]
    assert column_scores(scores).tolist() == [60.0, 92.0, 124.0]
