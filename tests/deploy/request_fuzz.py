"""Malformed requests for a serving endpoint, and a client that sends them and reads answers.

Generic part: :class:`Probe` (one HTTP request), :func:`send` / :func:`send_all` (plain
sockets via http.client, so a server closing early on a huge body is an answer, not a crash)
and :func:`reason_of`. Endpoint part: a generator per protocol in :data:`ENDPOINT_SETS`
(``v2`` today); another protocol (the LLM server's OpenAI routes) is one more generator taking
``(rng, model, count)`` and yielding probes, registered there.

Loaded by file path from integration_tests (like tooling.py).
"""

from __future__ import annotations

import http.client
import json
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

JSON = {"Content-Type": "application/json"}
HUGE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Probe:
    kind: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


@dataclass(frozen=True)
class Answer:
    probe: Probe
    status: int
    body: bytes

    @property
    def reason(self) -> str:
        return reason_of(self.body)


def reason_of(body: bytes) -> str:
    """The error text of a JSON error body ({"error": ...} or FastAPI's {"detail": ...})."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    text = data.get("error") or data.get("detail") or ""
    return text if isinstance(text, str) else json.dumps(text)


def send(host: str, port: int, probe: Probe, timeout: float = 60) -> Answer:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = dict(probe.headers)
        if probe.chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(probe.body))
        connection.putrequest(probe.method, probe.path)
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders()
        try:
            _write_body(connection, probe)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading everything: read that answer
        response = connection.getresponse()
        return Answer(probe, response.status, response.read())
    finally:
        connection.close()


def _write_body(connection: http.client.HTTPConnection, probe: Probe) -> None:
    view = memoryview(probe.body)
    step = 1 << 20
    for start in range(0, len(view), step):
        piece = view[start:start + step]
        connection.send(b"%x\r\n%s\r\n" % (len(piece), piece) if probe.chunked else piece)
    if probe.chunked:
        connection.send(b"0\r\n\r\n")


def send_all(host: str, port: int, probes: list[Probe], workers: int = 8) -> list[Answer]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: _send_or_error(host, port, p), probes))


def _send_or_error(host: str, port: int, probe: Probe) -> Answer:
    try:
        return send(host, port, probe)
    except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
        return Answer(probe, 0, f"no answer: {type(exc).__name__}: {exc}".encode())


# --- V2 (Open Inference Protocol) ------------------------------------------------------------

@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: any size


def v2_probes(rng: random.Random, model: str, inputs: list[Tensor], count: int) -> Iterator[Probe]:
    """``count`` malformed requests cycling through the kinds below (seeded, reproducible)."""
    kinds = [k for k in V2_KINDS if k not in ("huge-body", "huge-chunked")]
    yield _huge(model, chunked=False)  # one of each huge body: each costs a 100 MB upload
    yield _huge(model, chunked=True)
    for i in range(count - 2):
        kind = kinds[i % len(kinds)]
        yield V2_KINDS[kind](rng, model, inputs)


def valid_v2_probe(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    """A well-formed request (the server must still answer these 200 after the fuzz)."""
    return Probe("valid", "POST", _infer(model), _request([_valid_input(rng, spec) for spec in inputs]), JSON)


def _infer(model: str) -> str:
    return f"/v2/models/{model}/infer"


def _valid_input(rng: random.Random, spec: Tensor) -> dict:
    shape = [rng.randint(1, 3) if d == -1 else d for d in spec.shape]
    size = 1
    for d in shape:
        size *= d
    data = [rng.random() for _ in range(size)] if spec.datatype.startswith("FP") else [1] * size
    return {"name": spec.name, "datatype": spec.datatype, "shape": shape, "data": data}


def _request(tensors: list[dict], **extra: object) -> bytes:
    return json.dumps({"inputs": tensors, **extra}).encode()


def _mutated(rng: random.Random, model: str, inputs: list[Tensor], change: Callable[[dict], None],
             kind: str) -> Probe:
    tensors = [_valid_input(rng, spec) for spec in inputs]
    change(rng.choice(tensors))
    return Probe(kind, "POST", _infer(model), _request(tensors), JSON)


def _bad_json(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    good = _request([_valid_input(rng, s) for s in inputs]).decode()
    broken = rng.choice([good[: rng.randint(1, len(good) - 1)], good.replace('"', "'", 3), "{" + good,
                         "inputs=[1,2]", "\x00\xff\xfe", "{]", "[" * 5000 + "]" * 5000, ""])
    return Probe("bad-json", "POST", _infer(model), broken.encode("utf-8", "surrogateescape"), JSON)


def _not_a_request(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    body = rng.choice(['1', '"inputs"', 'null', '[]', '{}', '{"inputs": 5}', '{"inputs": [5]}',
                       '{"inputs": [null]}', '{"inputs": {"name": "x"}}', '{"inputs": [[]]}',
                       '{"outputs": []}', '{"inputs": [{"name": "x"}]}'])
    return Probe("not-a-request", "POST", _infer(model), body.encode(), JSON)


def _wrong_datatype(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    def change(t: dict) -> None:
        t["datatype"] = rng.choice(["FP64", "INT64", "INT8", "BOOL", "BYTES", "FOO", "", "FP 32", 5, None])
    return _mutated(rng, model, inputs, change, "wrong-datatype")


def _wrong_data(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    def change(t: dict) -> None:
        t["data"] = rng.choice([["a"] * len(t["data"]), [None] * len(t["data"]), t["data"][:-1], [],
                                t["data"] + [1.0], [[[1.0]]], "abc", {"x": 1}, [True] * len(t["data"]),
                                [1e400] * len(t["data"]), [[1.0, 2.0], [3.0]]])
    return _mutated(rng, model, inputs, change, "wrong-data")


def _bad_shape(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    def change(t: dict) -> None:
        shape = list(t["shape"])
        axis = rng.randrange(len(shape))
        shape[axis] = rng.choice([-1, -(2 ** 40), 0, 2 ** 31, 10 ** 12, 2 ** 63, 1.5, "7", None, [2]])
        t["shape"] = rng.choice([shape, shape[:-1], shape + [1], [], "1,28,28", None])
    return _mutated(rng, model, inputs, change, "bad-shape")


def _bad_names(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    tensors = [_valid_input(rng, spec) for spec in inputs]
    choice = rng.randrange(4)
    if choice == 0:
        tensors[0]["name"] = rng.choice(["image", "", "pixels ", 5, None, "x" * 10000])
    elif choice == 1:
        tensors = tensors + [dict(tensors[0])]
    elif choice == 2:
        tensors = []
    extra = {"outputs": [{"name": rng.choice(["nope", "", 5])}]} if choice == 3 else {}
    return Probe("bad-names", "POST", _infer(model), _request(tensors, **extra), JSON)


def _unknown_model(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    name = rng.choice(["nope", model + "x", model.upper(), "..", "%2e%2e", "a" * 300, "x%00y", "models"])
    path = rng.choice([f"/v2/models/{name}/infer", f"/v2/models/{name}", f"/v2/models/{name}/ready",
                       f"/v2/models/{name}/versions/999/infer", f"/v2/models/{model}/versions/999/infer"])
    method = "POST" if path.endswith("infer") else "GET"
    return Probe("unknown-model", method, path, _request([_valid_input(rng, s) for s in inputs]), JSON)


def _bad_binary(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    header = _request([{k: v for k, v in _valid_input(rng, s).items() if k != "data"}
                       | {"parameters": {"binary_data_size": rng.choice([0, 1, 3, 10 ** 9, -4])}}
                       for s in inputs])
    tail = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    length = rng.choice([str(len(header)), str(len(header) + 10 ** 6), "-5", "abc", "", str(len(header) - 3)])
    return Probe("bad-binary", "POST", _infer(model), header + tail,
                 {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": length})


def _wrong_method(rng: random.Random, model: str, inputs: list[Tensor]) -> Probe:
    method = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
    return Probe("wrong-method", method, _infer(model), b"", JSON)


def _huge(model: str, chunked: bool) -> Probe:
    body = b'{"inputs": [' + b"1," * (HUGE_BYTES // 2) + b"1]}"
    return Probe("huge-chunked" if chunked else "huge-body", "POST", _infer(model), body, JSON, chunked=chunked)


V2_KINDS: dict[str, Callable[..., Probe]] = {
    "bad-json": _bad_json, "not-a-request": _not_a_request, "wrong-datatype": _wrong_datatype,
    "wrong-data": _wrong_data, "bad-shape": _bad_shape, "bad-names": _bad_names,
    "unknown-model": _unknown_model, "bad-binary": _bad_binary, "wrong-method": _wrong_method,
    "huge-body": lambda rng, model, inputs: _huge(model, False),
    "huge-chunked": lambda rng, model, inputs: _huge(model, True),
}

# protocol -> (probe generator, readiness path)
ENDPOINT_SETS: dict[str, tuple[Callable[..., Iterator[Probe]], str]] = {
    "v2": (v2_probes, "/v2/health/ready"),
}
