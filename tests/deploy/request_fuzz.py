"""Malformed requests for a serving endpoint, and a client that sends them and reads answers.

Generic part: :class:`Probe` (one HTTP request), :func:`send` / :func:`send_all` (plain
sockets via http.client, so a server closing early on a huge body is an answer, not a crash)
and :func:`reason_of`; :func:`assert_flood_refused`, the checks every server's flood must pass.
Endpoint part: a generator per protocol in :data:`ENDPOINT_SETS`
(``v2``: the CPU server's V2 routes; ``openai``: the LLM server's OpenAI routes), each taking
``(rng, model, spec, count)`` and yielding probes.

Loaded by file path from integration_tests (like tooling.py).
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

JSON = {"Content-Type": "application/json"}
HUGE_BYTES = 100 * 1024 * 1024
RSS_GROWTH_LIMIT_MB = 64  # a 100 MB body must never be held in memory, not even for a moment


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
    if isinstance(text, dict):  # the OpenAI envelope: {"error": {"message": ..., "type": ...}}
        return text.get("message") or ""
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

# --- OpenAI (the LLM server) -----------------------------------------------------------------

@dataclass(frozen=True)
class LLMSpec:
    context: int  # tokens
    vocab: int


def openai_probes(rng: random.Random, model: str, spec: LLMSpec, count: int) -> Iterator[Probe]:
    """``count`` malformed OpenAI API requests cycling through the kinds below (seeded)."""
    kinds = [k for k in OPENAI_KINDS if k not in ("huge-body", "huge-chunked")]
    yield _huge_openai(model, chunked=False)
    yield _huge_openai(model, chunked=True)
    for i in range(count - 2):
        kind = kinds[i % len(kinds)]
        yield OPENAI_KINDS[kind](rng, model, spec)


def valid_openai_probe(model: str) -> Probe:
    return Probe("valid", "POST", "/v1/completions", _json(_completion(model, max_tokens=4, temperature=0)), JSON)


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


def _completion(model: str, **fields: object) -> dict:
    return {"model": model, "prompt": "the film was", **fields}


def _chat(model: str, **fields: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "a great movie"}], **fields}


def _openai(kind: str, body: dict, chat: bool) -> Probe:
    return Probe(kind, "POST", "/v1/chat/completions" if chat else "/v1/completions", _json(body), JSON)


def _openai_bad_json(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    good = _json(_completion(model)).decode()
    broken = rng.choice([good[: rng.randint(1, len(good) - 1)], good.replace('"', "'", 3), "{" + good, "",
                         "prompt=hello", "\x00\xff\xfe", "{]", "[" * 5000 + "]" * 5000,
                         good[:-1] + ', "temperature": NaN}', good[:-1] + ', "max_tokens": Infinity}'])
    return Probe("bad-json", "POST", rng.choice(["/v1/completions", "/v1/chat/completions"]),
                 broken.encode("utf-8", "surrogateescape"), JSON)


def _openai_not_an_object(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    body = rng.choice(["1", '"prompt"', "null", "[]", "{}", "[{}]", f'{{"model": "{model}"}}', "true"])
    return Probe("not-a-request", "POST", rng.choice(["/v1/completions", "/v1/chat/completions"]),
                 body.encode(), JSON)


WRONG_TYPES: list[tuple[str, list[object]]] = [  # field -> values no lax parsing turns valid
    ("prompt", [5, None, {"text": "x"}, [[1, 2]], [1.5], [None], True]),
    ("max_tokens", ["ten", 1.5, [4], {"n": 4}]),
    ("temperature", ["hot", [], {"t": 1}, None]),
    ("top_p", ["all", [0.5], 0, 1.5]),
    ("top_k", ["ten", -1, 2.5]),
    ("stream", ["maybe", 5, [], {}]),
    ("stop", [5, [1, 2], [""], {"s": "x"}, [None]]),
    ("seed", ["x", -1, 2 ** 40, 1.5]),
    ("n", [0, 2, "one"]),
    ("user", [5, ["u"]]),
    ("echo", ["perhaps", [1]]),
    ("model", [5, None, ["tiny"], ""]),
]


def _openai_wrong_types(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    field_name, values = rng.choice(WRONG_TYPES)
    return _openai("wrong-types", {**_completion(model), field_name: rng.choice(values)}, chat=False)


def _openai_bad_max_tokens(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    value = rng.choice([-1, 0, -(2 ** 63), spec.context, spec.context * 4, 10 ** 6, 2 ** 63, 10 ** 30, 1e300])
    chat = rng.random() < 0.5
    field_name = rng.choice(["max_tokens", "max_completion_tokens"]) if chat else "max_tokens"
    return _openai("bad-max-tokens", (_chat if chat else _completion)(model, **{field_name: value}), chat)


def _openai_unknown_model(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    name = rng.choice(["gpt-4", "gpt-3.5-turbo", model.upper(), model + "x", "a" * 300, "../" + model,
                       "x\u0000y", " " + model])
    if rng.random() < 0.25:
        return Probe("unknown-model", "GET", f"/v1/models/{urllib.parse.quote(name, safe='')}")
    chat = rng.random() < 0.5
    return _openai("unknown-model", (_chat if chat else _completion)(name, max_tokens=4), chat)


def _openai_unsupported(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    chat = rng.random() < 0.5
    common = [{"temprature": 0.5}, {"presence_penalty": 1.0}, {"frequency_penalty": -1}, {"logit_bias": {"5": 10}},
              {"stream_options": {"include_usage": True}}, {"stop": ["a", "b", "c", "d", "e"]}, {"functions": []}]
    only = ([{"tools": [{"type": "function"}]}, {"logprobs": True}, {"top_logprobs": 3},
             {"response_format": {"type": "json_object"}}, {"max_tokens": 4, "max_completion_tokens": 4}]
            if chat else [{"logprobs": 2}, {"best_of": 3}, {"suffix": "x"}, {"prompt": ["a", "b"]}])
    return _openai("unsupported", (_chat if chat else _completion)(model, **rng.choice(common + only)), chat)


def _openai_too_long(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    prompt = rng.choice([[5] * (spec.context + rng.randint(0, 50)), [1, 2, spec.vocab + rng.randint(0, 10 ** 6)],
                         [-1, 2], " film" * (spec.context * 2), []])
    return _openai("too-long", _completion(model, prompt=prompt), chat=False)


def _openai_bad_chat(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    messages = rng.choice([[], "hello", [{"role": "wizard", "content": "x"}], [{"role": "user"}],
                           [{"content": "x"}], [{"role": "user", "content": 5}], [None],
                           [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}],
                           [{"role": "user", "content": "x", "extra": 1}],
                           [{"role": "user", "content": "word " * 500}]])
    return _openai("bad-chat", {"model": model, "messages": messages}, chat=True)


def _openai_wrong_route(rng: random.Random, model: str, spec: LLMSpec) -> Probe:
    method, path = rng.choice([("GET", "/v1/completions"), ("PUT", "/v1/chat/completions"),
                               ("DELETE", "/v1/models"), ("POST", "/v1/embeddings"), ("POST", "/v1/models"),
                               ("POST", f"/v1/models/{model}:predict"), ("POST", "/v1/responses")])
    return Probe("wrong-route", method, path, _json(_completion(model)), JSON)


def _huge_openai(model: str, chunked: bool) -> Probe:
    body = b'{"model": "' + model.encode() + b'", "prompt": "' + b"a" * HUGE_BYTES + b'"}'
    return Probe("huge-chunked" if chunked else "huge-body", "POST", "/v1/completions", body, JSON, chunked=chunked)


OPENAI_KINDS: dict[str, Callable[..., Probe]] = {
    "bad-json": _openai_bad_json, "not-a-request": _openai_not_an_object, "wrong-types": _openai_wrong_types,
    "bad-max-tokens": _openai_bad_max_tokens, "unknown-model": _openai_unknown_model,
    "unsupported": _openai_unsupported, "too-long": _openai_too_long, "bad-chat": _openai_bad_chat,
    "wrong-route": _openai_wrong_route,
    "huge-body": lambda rng, model, spec: _huge_openai(model, False),
    "huge-chunked": lambda rng, model, spec: _huge_openai(model, True),
}

# protocol -> (probe generator, readiness path)
ENDPOINT_SETS: dict[str, tuple[Callable[..., Iterator[Probe]], str]] = {
    "v2": (v2_probes, "/v2/health/ready"),
    "openai": (openai_probes, "/v2/health/ready"),
}


def status_mb(pid: int, field_name: str) -> float:
    """A memory line of the process's /proc status (VmRSS: now, VmHWM: the peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name} for pid {pid}")


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its VmRSS (``5`` to /proc/PID/clear_refs, Linux 4.0+, the
    process's owner); False where the kernel refuses, and the peak then stays the lifetime one."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def assert_flood_refused(proc: subprocess.Popen, port: int, probes: list[Probe], ready_path: str) -> list[Answer]:
    """Send ``probes`` to the server ``proc`` on 127.0.0.1:``port``: every one must get a 4xx with
    a reason (huge bodies 413), and the server must stay up, ready and its memory bounded. The
    answers come back for the checks of one protocol (the caller's).

    The bound is on the peak (VmHWM) during the flood, not on VmRSS after it: a 100 MB body
    read whole and freed before the flood ends would leave VmRSS where it was."""
    reset = reset_peak(proc.pid)
    before = status_mb(proc.pid, "VmRSS" if reset else "VmHWM")
    answers = send_all("127.0.0.1", port, probes)
    peak = status_mb(proc.pid, "VmHWM")
    wrong = [a for a in answers if not (400 <= a.status < 500 and a.reason)]
    assert not wrong, [(a.probe.kind, a.status, a.body[:200], a.probe.body[:120]) for a in wrong[:10]]
    assert {a.status for a in answers if a.probe.kind.startswith("huge")} == {413}, statuses(answers)
    assert send("127.0.0.1", port, Probe("ready", "GET", ready_path)).status == 200
    assert proc.poll() is None
    assert peak - before < RSS_GROWTH_LIMIT_MB, (f"server RSS {before:.0f} MB before the flood, {peak:.0f} MB at "
                                                f"its peak, {status_mb(proc.pid, 'VmRSS'):.0f} MB after")
    return answers


def statuses(answers: list[Answer]) -> collections.Counter[str]:
    """How many answers each ``kind:status`` got: the summary a failed flood check shows."""
    return collections.Counter(f"{a.probe.kind}:{a.status}" for a in answers)
