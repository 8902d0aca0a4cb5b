"""Small real models and data for the quantization tests (digits 8x8 from scikit-learn)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyNet(nn.Module):
    """Linear → LayerNorm → Linear → GELU → Linear: the LayerNorm→MatMul pattern of transformers."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.inp = nn.Linear(64, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.up = nn.Linear(hidden, 2 * hidden)
        self.down = nn.Linear(2 * hidden, hidden)
        self.head = nn.Linear(hidden, 10)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [batch, 1 token, 64]: 3-D activations export as MatMul (as in transformers), not Gemm
        h = self.norm(self.inp(pixels.flatten(1)[:, None, :]))
        features = self.down(nn.functional.gelu(self.up(h)))
        return self.head(features)[:, 0], features[:, 0]


@pytest.fixture(scope="session")
def digits_frame():
    from modelpress.datasets.base import Split
    from modelpress.datasets.shipped import SHIPPED
    from modelpress.datasets.splits import assign_splits

    return assign_splits(SHIPPED["digits"].load(), Split(train=0.7, eval=0.3, calibration=64), 0, 600)


@pytest.fixture(scope="session")
def task():
    from modelpress.tasks import TaskSpec

    return TaskSpec("image-classification", image_shape=(1, 8, 8)).build()


@pytest.fixture(scope="session")
def trained_net(digits_frame, task) -> TinyNet:
    """TinyNet trained ~1 s on digits: real weights and real activations."""
    torch.manual_seed(0)
    net = TinyNet()
    train = digits_frame[digits_frame.split == "train"]
    x = torch.from_numpy(task.encode(train)["pixel_values"])  # raw 0..16 pixels, as the stages see them
    y = torch.from_numpy(train["label"].to_numpy().copy()).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x)[0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture()
def context(digits_frame, task):
    from modelpress.tasks.context import StageContext

    return StageContext(task=task, data=digits_frame)


@pytest.fixture(scope="session")
def exported(trained_net, task, digits_frame):
    from modelpress.deploy.onnx_export import export_onnx

    return export_onnx(trained_net, task, digits_frame.iloc[:4])
