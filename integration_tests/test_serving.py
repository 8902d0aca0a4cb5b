"""Real serving: a model registered in MLflow, pulled with `modelpress pull`, served by
`modelpress serve` (kserve V2 + ONNX Runtime, in the serving side venv) on 127.0.0.1, driven
by a stock tritonclient.http client."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .serving import MODEL, pull_champion, tooling
from .serving import start as _start
from .serving import stop as _stop


@pytest.fixture(scope="module")
def serve_python() -> Path:
    return tooling().serve_python()


@pytest.fixture(scope="module")
def pulled(tmp_path_factory) -> Path:
    return pull_champion(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def server(serve_python, pulled, tmp_path_factory):
    import tritonclient.http as httpclient

    port = tooling().free_port()
    log = tmp_path_factory.mktemp("logs") / "server.log"
    proc = _start(serve_python, pulled, port, log)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if _ready(client):
            break
        time.sleep(0.3)
    else:
        _stop(proc)
        pytest.fail(f"server did not turn ready:\n{log.read_text()[-3000:]}")
    yield client, port, log
    client.close()
    _stop(proc)


def _ready(client) -> bool:
    try:
        return client.is_server_ready()
    except Exception:  # noqa: BLE001 -- connection refused while the server starts
        return False


def _reference(pulled: Path, pixels: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(pulled / MODEL / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits", "embedding"], {"pixels": pixels})


def _infer(client, pixels: np.ndarray, binary: bool, name: str = "pixels", datatype: str = "FP32"):
    import tritonclient.http as httpclient

    tensor = httpclient.InferInput(name, list(pixels.shape), datatype)
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("logits", "embedding")]
    # JSON bodies need the Content-Type header, or FastAPI hands kserve raw bytes
    # (benchmarks/RESULTS.md, "The stack that resolves together").
    headers = None if binary else {"Content-Type": "application/json"}
    return client.infer(MODEL, [tensor], outputs=outputs, headers=headers)


def test_health_and_metadata(server):
    client, _, _ = server
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert [o["name"] for o in metadata["outputs"]] == ["logits", "embedding"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_predictions_equal_the_onnx_runtime_session(server, pulled, binary):
    client, _, _ = server
    pixels = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    result = _infer(client, pixels, binary)
    logits, embedding = _reference(pulled, pixels)
    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("embedding"), embedding, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("pixels", "name", "datatype", "message"), [
    (np.zeros((1, 1, 28, 28), np.float32), "image", "FP32", "unknown input 'image'"),
    (np.zeros((1, 1, 28, 28), np.float64), "pixels", "FP64", "datatype FP64, the model expects FP32"),
    (np.zeros((1, 28, 28), np.float32), "pixels", "FP32", "has 3 dims"),
    (np.zeros((2, 1, 14, 14), np.float32), "pixels", "FP32", "dim 2 is 14, the model expects 28"),
], ids=["name", "dtype", "rank", "shape"])
def test_bad_requests_get_400_and_the_server_keeps_serving(server, pulled, pixels, name, datatype, message):
    from tritonclient.utils import InferenceServerException

    client, _, _ = server
    for binary in (True, False):
        with pytest.raises(InferenceServerException) as caught:
            _infer(client, pixels, binary, name=name, datatype=datatype)
        assert caught.value.status() == "400" and message in caught.value.message()
    good = np.ones((1, 1, 28, 28), np.float32)
    np.testing.assert_allclose(_infer(client, good, True).as_numpy("logits"), _reference(pulled, good)[0],
                               rtol=1e-6, atol=1e-6)


def test_prometheus_metrics_count_requests(server):
    import urllib.request

    _, port, _ = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "request_predict_seconds_count" in text and MODEL in text


def test_a_corrupt_model_never_turns_ready(serve_python, pulled, tmp_path):
    import shutil
    import urllib.error
    import urllib.request

    broken = Path(shutil.copytree(pulled, tmp_path / "models"))
    (broken / MODEL / "1" / "model.onnx").write_bytes(b"\x08\x07this is not an onnx graph")
    port = tooling().free_port()
    log = tmp_path / "server.log"
    proc = _start(serve_python, broken, port, log)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        _stop(proc)
        pytest.fail("a server with a corrupt model kept running")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
    text = log.read_text()
    assert code != 0
    assert f"model '{MODEL}': cannot load {broken / MODEL / '1' / 'model.onnx'}" in text
    assert "not serving" in text
