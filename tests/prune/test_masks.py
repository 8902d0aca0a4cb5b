"""Unstructured and 2:4 pruning: the right share of zeros where expected, kept through recovery."""

from __future__ import annotations

import pytest
import torch

from modelpress.core.registry import get_stage
from modelpress.deploy.onnx_export import check_parity, export_onnx
from modelpress.sources.zoo.nets import SmallCNN

from .conftest import IMAGE, MLP


def _run(model, context, **config):
    spec = get_stage("prune")
    return spec.apply(model, spec.config(report_latency=False, **config), context)


def approx(value: float):
    return pytest.approx(value, abs=0.01)


def _zeros(t: torch.Tensor) -> float:
    return float((t == 0).float().mean())


def test_the_default_config_is_global_magnitude_as_the_mnist_recipe_uses(image_context) -> None:
    torch.manual_seed(0)
    model = SmallCNN(IMAGE, 3, width=8, hidden=16)
    pruned = _run(model, image_context, sparsity=0.6)
    weights = [m.weight for m in (pruned.conv1, pruned.conv2, pruned.fc1, pruned.fc2)]
    total = sum(w.numel() for w in weights)
    assert abs(sum(int((w == 0).sum()) for w in weights) / total - 0.6) < 0.01
    assert image_context.report["sparsity"] == approx(0.6)
    assert image_context.report["params_nonzero_after"] < image_context.report["params_before"]
    assert _zeros(model.conv1.weight) == 0.0  # the input model is untouched


def test_min_density_keeps_a_small_layer_alive_under_a_global_threshold(image_context) -> None:
    torch.manual_seed(0)
    model = SmallCNN(IMAGE, 3, width=8, hidden=16)
    with torch.no_grad():
        model.conv1.weight.mul_(1e-4)
    pruned = _run(model, image_context, sparsity=0.8, min_density=0.25)
    assert _zeros(pruned.conv1.weight) == approx(0.75)
    assert image_context.report["sparsity.conv1"] == approx(0.75)


def test_layer_scope_prunes_every_layer_equally(image_context) -> None:
    torch.manual_seed(0)
    pruned = _run(
        SmallCNN(IMAGE, 3, width=8, hidden=16),
        image_context,
        scope="layer",
        sparsity=0.8,
        score="wanda",
    )
    for layer in (pruned.conv1, pruned.conv2, pruned.fc1, pruned.fc2):
        assert _zeros(layer.weight) == approx(0.8)


def test_masks_stay_fixed_during_recovery_while_other_weights_train(image_context) -> None:
    torch.manual_seed(0)
    model = SmallCNN(IMAGE, 3, width=8, hidden=16)
    masked_only = _run(model, image_context, sparsity=0.7)
    recovered = _run(
        model,
        image_context,
        sparsity=0.7,
        schedule={"steps": 2},
        recovery={"epochs": 2, "lr": 1e-2},
    )
    layers = ("conv1", "conv2", "fc1", "fc2")
    weights = [getattr(recovered, name).weight for name in layers]
    # AdamW moves every weight that has a gradient: only the fixed masks keep 70% at exactly zero
    assert sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights) == approx(
        0.7
    )
    assert not torch.equal(masked_only.fc1.weight, recovered.fc1.weight)  # recovery did train


def test_two_four_keeps_two_of_every_four_and_exports(image_context) -> None:
    torch.manual_seed(0)
    model = MLP(hidden=18)
    pruned = _run(model, image_context, method="semi-structured-2:4", score="wanda")
    groups = (pruned.fc1.weight != 0).view(18, 16, 4).sum(-1)  # 64 inputs → 16 runs of 4 per row
    assert int(groups.max()) == 2 and int(groups.min()) == 2
    assert image_context.report["skipped_layers"] == "fc2"  # 18 inputs do not split into runs of 4
    assert _zeros(pruned.fc2.weight) == 0.0
    exported = export_onnx(pruned, image_context.task, image_context.split("eval"))
    check_parity(pruned, exported, image_context.task, image_context.split("eval"))
