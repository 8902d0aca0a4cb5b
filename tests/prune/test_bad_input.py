"""Bad plans and untraceable models fail with an error naming the culprit, model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelpress.core.errors import ModelpressError
from modelpress.core.registry import get_stage
from modelpress.sources.zoo.nets import SmallCNN

from .conftest import IMAGE


def _run(model, context, **config):
    spec = get_stage("prune")
    return spec.apply(model, spec.config(report_latency=False, **config), context)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["structured", "magnitude"])
def test_a_plan_removing_every_unit_of_a_layer_is_refused(image_context, method: str) -> None:
    torch.manual_seed(0)
    model = SmallCNN(IMAGE, 3, width=8, hidden=16)
    with torch.no_grad():
        if method == "magnitude":
            model.conv1.weight.mul_(1e-6)  # a global threshold puts all of conv1 at the bottom
        else:  # structured ranks on scores normalised per layer: make conv1 uniformly mediocre
            model.conv1.weight.fill_(0.1)  # and conv2 three stars and thirteen duds
            model.conv2.weight[:3].mul_(1e3)
    before = _state(model)
    with pytest.raises(ModelpressError, match="every .* of 'conv1'"):
        _run(
            model,
            image_context,
            method=method,
            scope="global",
            sparsity=0.9,
            min_density=0.0,
            recovery={"epochs": 1},
        )
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


class _Detached(nn.Module):
    """A block whose output leaves autograd: no tracer can see what follows depends on it."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).detach()


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = _Detached()
        self.head = nn.Linear(32, 3)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(pixels.flatten(1))))


def test_an_untraceable_model_names_the_module(image_context) -> None:
    model = _Untraceable()
    before = _state(model)
    with pytest.raises(ModelpressError, match="cannot trace module 'stem.proj'"):
        _run(model, image_context, method="structured", sparsity=0.5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class _Flatten128(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], 128)  # hard-coded width: breaks once channels are removed


class _HardCoded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.flatten = _Flatten128()
        self.fc = nn.Linear(128, 3)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(torch.relu(self.conv(pixels)))))


def test_a_model_that_breaks_after_pruning_names_the_module(image_context) -> None:
    model = _HardCoded()
    before = _state(model)
    with pytest.raises(ModelpressError, match="'flatten'"):
        _run(model, image_context, method="structured", sparsity=0.5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
