"""1,000 malformed requests to the CPU server (kserve V2 + ONNX Runtime, serving side venv):
bad JSON, wrong datatypes and data, negative and huge shapes, 100 MB bodies (with and without
Content-Length), unknown models and versions, broken binary-protocol headers. Every one must get
a 4xx with a reason, the server must stay ready and its memory bounded.

The probes come from tests/deploy/request_fuzz.py, one generator per endpoint set; a server
mode with other routes (the LLM server's OpenAI endpoints) adds its generator there and a
parameter here."""

from __future__ import annotations

import importlib.util
import random
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .serving import MODEL, pull_champion, start, stop, tooling

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
REQUESTS = 1000


def fuzz_module():
    spec = importlib.util.spec_from_file_location("request_fuzz", REPO / "tests" / "deploy" / "request_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def ready(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory):
    repository = pull_champion(tmp_path_factory.mktemp("fuzz"))
    port = tooling().free_port()
    log = tmp_path_factory.mktemp("fuzz-logs") / "server.log"
    proc = start(tooling().serve_python(), repository, port, log)
    deadline = time.monotonic() + 90
    while not ready(port, "/v2/health/ready"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"server did not turn ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    yield port, proc
    stop(proc)


@pytest.mark.parametrize("endpoints", ["v2"])
def test_malformed_requests_get_4xx_with_a_reason_and_the_server_stays_up(v2_server, endpoints: str) -> None:
    port, proc = v2_server
    fuzz = fuzz_module()
    generate, ready_path = fuzz.ENDPOINT_SETS[endpoints]
    inputs = [fuzz.Tensor("pixels", "FP32", (-1, 1, 28, 28))]
    probes = list(generate(random.Random(0), MODEL, inputs, REQUESTS))
    assert len(probes) == REQUESTS

    fuzz.assert_flood_refused(proc, port, probes, ready_path)
    good = fuzz.send("127.0.0.1", port, fuzz.valid_v2_probe(random.Random(1), MODEL, inputs))
    assert good.status == 200, good.body[:300]
