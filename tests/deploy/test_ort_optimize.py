"""Offline ONNX Runtime optimization: portable level only, parity-checked, recorded by pull."""

from __future__ import annotations

import json

import onnx
import pytest

from modelpress.core.errors import ModelpressError
from modelpress.deploy.ort_optimize import optimize_offline
from modelpress.deploy.pull import pull


@pytest.mark.parametrize("fixture", ["cnn_onnx", "text_onnx"])
def test_optimized_graph_keeps_the_interface_and_outputs(request, fixture):
    model = request.getfixturevalue(fixture)
    optimized, report = optimize_offline(model)
    assert [i.name for i in optimized.graph.input] == [i.name for i in model.graph.input
                                                       if i.name not in {t.name for t in model.graph.initializer}]
    assert [o.name for o in optimized.graph.output] == [o.name for o in model.graph.output]
    assert report["max_abs"] <= 1e-5 and report["nodes_after"] <= report["nodes_before"]
    onnx.checker.check_model(optimized)


def shifted(model: onnx.ModelProto, by: float) -> onnx.ModelProto:
    """``model`` with every float weight matrix shifted by ``by``: a graph that really computes
    something else."""
    from onnx import numpy_helper

    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    for tensor in changed.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype.kind == "f" and array.ndim >= 2:
            tensor.CopyFrom(numpy_helper.from_array(array + by, tensor.name))
    return changed


def test_the_comparator_measures_a_real_change(cnn_onnx):
    from modelpress.deploy.ort_optimize import _max_abs_difference

    assert _max_abs_difference(cnn_onnx, cnn_onnx) == 0.0
    assert _max_abs_difference(cnn_onnx, shifted(cnn_onnx, 0.5)) > 0.1


def test_an_optimizer_output_that_changed_the_outputs_is_refused(cnn_onnx, monkeypatch):
    """ORT's optimizer is stood in for by a graph that really differs; the parity check is real."""
    real_load = onnx.load

    def load_changed(path, *args, **kwargs):
        model = real_load(path, *args, **kwargs)
        return shifted(model, 0.5) if str(path).endswith("out.onnx") else model

    monkeypatch.setattr(onnx, "load", load_changed)
    with pytest.raises(ModelpressError, match="changed the outputs by"):
        optimize_offline(cnn_onnx)


def test_pull_optimize_records_the_report(tmp_path, mlflow_registry):
    folder = pull("models:/tiny-cnn@champion", tmp_path, optimize=True)
    meta = json.loads((folder / "1" / "modelpress.json").read_text())
    assert meta["ort_offline_optimization"]["max_abs"] <= 1e-5
