"""2:4 masks through PyTorch's semi-structured sparse kernels (runs only where CUDA is present)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelpress.steps.prune.masks import semi_structured_kernels, two_four_masks

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (sparse tensor cores)")


def test_two_four_weights_run_on_sparse_kernels_with_dense_results() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(128, 128).half().cuda().eval()
    with torch.no_grad():
        layer.weight.mul_(two_four_masks({"w": layer.weight.abs().float()})["w"].to(layer.weight))
    x = torch.randn(64, 128, dtype=torch.half, device="cuda")
    expected = layer(x)
    model = semi_structured_kernels(nn.Sequential(layer))
    assert type(model[0].weight.data).__name__.startswith("SparseSemiStructured")
    torch.testing.assert_close(model(x), expected, atol=1e-2, rtol=1e-2)
