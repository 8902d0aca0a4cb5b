from __future__ import annotations

import numpy as np
import pytest
import torch

from modelpress.core.errors import ModelpressError
from modelpress.datasets.shipped import SHIPPED
from modelpress.deploy.onnx_export import check_parity, export_onnx
from modelpress.sources.zoo.nets import SmallCNN
from modelpress.tasks import TaskSpec
from modelpress.tasks.evaluation import onnx_session


@pytest.fixture(scope="module")
def digits():
    frame = SHIPPED["digits"].load().iloc[:64]
    return frame, TaskSpec(name="image-classification", image_shape=(1, 8, 8)).build()


def test_cnn_export_has_dynamic_batch_and_matches_pytorch(digits) -> None:
    frame, task = digits
    torch.manual_seed(0)
    model = SmallCNN((1, 8, 8), 10).eval()
    proto = export_onnx(model, task, frame)
    assert [o.name for o in proto.graph.output] == ["logits", "embedding"]
    assert [i.name for i in proto.graph.input] == ["pixels"]  # SmallCNN.forward(self, pixels)
    session = onnx_session(proto)
    for rows in (1, 7, 64):
        batch = task.encode(frame.iloc[:rows])
        logits = session.run(["logits"], {"pixels": batch["pixel_values"]})[0]
        expected = model(torch.from_numpy(batch["pixel_values"]))[0].detach().numpy()
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert check_parity(model, proto, task, frame).agreement == 1.0


def test_parity_check_catches_a_graph_that_differs(digits) -> None:
    frame, task = digits
    torch.manual_seed(0)
    model = SmallCNN((1, 8, 8), 10).eval()
    proto = export_onnx(model, task, frame)
    with torch.no_grad():
        model.fc2.weight.mul_(-1.0)  # PyTorch now disagrees with the exported graph
    with pytest.raises(ModelpressError, match="does not match PyTorch"):
        check_parity(model, proto, task, frame)
