"""`modelpress pull` against a real MLflow sqlite registry."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnx
import pytest

from modelpress.core.errors import ModelpressError
from modelpress.deploy.pull import pull


def run_onnx(path, pixels):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"pixels": pixels})[0]


def test_pull_alias_writes_a_ready_repository(tmp_path, mlflow_registry, cnn_onnx):
    folder = pull("models:/tiny-cnn@champion", tmp_path / "models")
    assert folder == tmp_path / "models" / "tiny-cnn"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-cnn"]  # no engine in v1
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]
    pixels = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    expected = run_onnx_model(cnn_onnx, pixels)
    np.testing.assert_allclose(run_onnx(folder / "1" / "model.onnx", pixels), expected, rtol=1e-5)
    meta = json.loads((folder / "1" / "modelpress.json").read_text())
    assert meta["model_uri"] == "models:/tiny-cnn@champion" and meta["aliases"] == ["champion"]
    assert meta["parity_vs_pytorch"]["max_abs"] == pytest.approx(1e-6)
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".pull-")]


def run_onnx_model(model, pixels):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"pixels": pixels})[0]


def test_pull_version_replaces_a_previous_pull(tmp_path, mlflow_registry, parse_config):
    pull("models:/tiny-cnn@champion", tmp_path)
    folder = pull("models:/tiny-cnn/2", tmp_path, instance_kind="KIND_GPU")
    assert sorted(p.name for p in folder.iterdir()) == ["2", "config.pbtxt"]
    assert "kind: KIND_GPU" in (folder / "config.pbtxt").read_text()
    assert onnx.load(str(folder / "2" / "model.onnx")).graph.input[0].name == "pixels"
    # version 2's run logged a TensorRT engine: it comes along for the Triton runtime
    assert (tmp_path / "tiny-cnn-tensorrt" / "2" / "model.plan").read_bytes() == b"stand-in engine"
    onnx_config, trt_config = parse_config([folder / "config.pbtxt", tmp_path / "tiny-cnn-tensorrt" / "config.pbtxt"])
    assert (onnx_config["platform"], trt_config["platform"]) == ("onnxruntime_onnx", "tensorrt_plan")
    assert onnx_config["input"] == trt_config["input"] == [
        {"name": "pixels", "data_type": "TYPE_FP32", "dims": ["1", "28", "28"]}]


@pytest.mark.parametrize("uri", ["models:/missing@champion", "models:/tiny-cnn/99", "models:/tiny-cnn@nope"])
def test_unknown_model_fails_with_the_uri(tmp_path, mlflow_registry, uri):
    with pytest.raises(ModelpressError, match=f"cannot resolve {uri} in the MLflow registry"):
        pull(uri, tmp_path / "models")
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("uri", ["runs:/abc/model", "models:/tiny-cnn", "tiny-cnn@champion", "models:/a b@x"])
def test_malformed_uri_fails_before_any_network_call(tmp_path, uri):
    with pytest.raises(ModelpressError, match="not a registered model URI"):
        pull(uri, tmp_path / "never-created")
    assert not (tmp_path / "never-created").exists()


def test_cli_pull_fails_with_the_uri_and_no_traceback(tmp_path, mlflow_registry, modelpress_cli):
    """What the chart's initContainer prints when the URI is wrong (the success path is the
    serving integration test's pull)."""
    bad = subprocess.run([modelpress_cli, "pull", "models:/ghost@champion", "--to", str(tmp_path / "g")],
                         capture_output=True, text=True, check=False, timeout=120)
    assert bad.returncode == 1 and "models:/ghost@champion" in bad.stderr
    assert "Traceback" not in bad.stderr
