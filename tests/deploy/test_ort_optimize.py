"""Offline ONNX Runtime optimization: portable level only, parity-checked, recorded by pull."""

from __future__ import annotations

import json

import onnx
import pytest
from modelpress.deploy.ort_optimize import optimize_offline
from modelpress.deploy.pull import pull

from modelpress.errors import ModelpressError


@pytest.mark.parametrize("fixture", ["cnn_onnx", "text_onnx"])
def test_optimized_graph_keeps_the_interface_and_outputs(request, fixture):
    model = request.getfixturevalue(fixture)
    optimized, report = optimize_offline(model)
    assert [i.name for i in optimized.graph.input] == [i.name for i in model.graph.input
                                                       if i.name not in {t.name for t in model.graph.initializer}]
    assert [o.name for o in optimized.graph.output] == [o.name for o in model.graph.output]
    assert report["max_abs"] <= 1e-5 and report["nodes_after"] <= report["nodes_before"]
    onnx.checker.check_model(optimized)


def test_a_changed_output_is_refused(cnn_onnx, monkeypatch):
    import modelpress.deploy.ort_optimize as module

    monkeypatch.setattr(module, "_max_abs_difference", lambda a, b: 0.5)  # the parity gate, not ORT
    with pytest.raises(ModelpressError, match="changed the outputs by 5.00e-01"):
        optimize_offline(cnn_onnx)


def test_pull_optimize_records_the_report(tmp_path, mlflow_registry):
    folder = pull("models:/tiny-cnn@champion", tmp_path, optimize=True)
    meta = json.loads((folder / "1" / "modelpress.json").read_text())
    assert meta["ort_offline_optimization"]["max_abs"] <= 1e-5
