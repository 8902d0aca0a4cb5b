"""Real LLM serving: the tiny Llama's onnxruntime-genai build, logged in a real MLflow sqlite
registry, fetched with `modelpress pull --build onnxruntime-genai`, served by `modelpress serve`
(LLM mode, in the serving side venv: kserve + the onnxruntime-genai runtime) on a free loopback
port, and driven by the stock `openai` client; bad requests go over plain HTTP."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from modelpress.deploy.llm_engine import StopScanner

MODEL = "tiny-llm"
PROMPT = "the film was"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.fixture(scope="module")
def pulled(llm_registry, tmp_path_factory, modelpress_cli) -> Path:
    dest = tmp_path_factory.mktemp("pulled")
    done = subprocess.run([modelpress_cli, "pull", f"models:/{MODEL}@champion", "--build", "onnxruntime-genai",
                           "--to", str(dest)], capture_output=True, text=True, check=False, timeout=120,
                          env={**os.environ, "MLFLOW_TRACKING_URI": llm_registry})
    assert done.returncode == 0, done.stderr
    return dest / "onnxruntime-genai"


@pytest.fixture(scope="module")
def server(serve_python, pulled, tooling, tmp_path_factory):
    port = tooling.free_port()
    log = tmp_path_factory.mktemp("llm-logs") / "server.log"
    proc = tooling.start_server(serve_python, pulled, port, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None and not _ready(port):
        time.sleep(0.3)
    if not _ready(port):
        tooling.stop_server(proc)
        pytest.fail(f"the LLM server did not turn ready:\n{log.read_text()[-3000:]}")
    yield port, log, proc
    tooling.stop_server(proc)


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=f"http://127.0.0.1:{server[0]}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def expected_greedy(pulled):
    """Greedy text from the build, decoded in this process by the onnxruntime-genai the build was
    checked with (0.15.2); the server runs the serving image's runtime (0.18)."""
    import onnxruntime_genai as og

    from modelpress.deploy.builds.onnxruntime_genai import genai_greedy

    model = og.Model(str(pulled))
    tokenizer = og.Tokenizer(model)

    def greedy(prompt_tokens: list[int], n: int) -> tuple[str, int]:
        tokens = genai_greedy(model, prompt_tokens, n)
        if 0 in tokens:  # EOS (token 0 of the tiny tokenizer) ends the completion
            tokens = tokens[:tokens.index(0) + 1]
        # decoded token by token, as a server streams: a random model emits byte tokens that are
        # not whole UTF-8 characters, which a one-shot decode of the sequence replaces differently
        stream = tokenizer.create_stream()
        return "".join(stream.decode(t) for t in tokens if t != 0), len(tokens)

    return greedy, (lambda text: [int(t) for t in tokenizer.encode(text)]), tokenizer


def test_models_lists_the_registered_name(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL


def test_completion_equals_the_builds_greedy_decode(client, expected_greedy):
    greedy, encode, _ = expected_greedy
    text, count = greedy(encode(PROMPT), 12)
    done = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    assert done.choices[0].text == text and text
    assert done.usage.prompt_tokens == len(encode(PROMPT)) and done.usage.completion_tokens == count
    assert done.choices[0].finish_reason == ("length" if count == 12 else "stop")
    streamed = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stream=True)
    chunks = [c.choices[0].text for c in streamed if c.choices]
    assert "".join(chunks) == text and len([c for c in chunks if c]) > 1


def test_concurrent_requests_wait_for_a_slot_and_get_their_own_answers(client, expected_greedy):
    from concurrent.futures import ThreadPoolExecutor

    greedy, encode, _ = expected_greedy
    prompts = ["the film was", "a dull plot", "great music and a sad ending", "the director"]
    with ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(lambda p: client.completions.create(
            model=MODEL, prompt=p, max_tokens=24, temperature=0).choices[0].text, prompts))
    assert answers == [greedy(encode(p), 24)[0] for p in prompts]


def test_chat_and_streamed_chat_give_the_same_text(client, expected_greedy):
    greedy, _, tokenizer = expected_greedy
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a great movie"}]
    prompt = tokenizer.apply_chat_template(messages=json.dumps(messages), add_generation_prompt=True)
    text, count = greedy(expected_greedy[1](prompt), 10)
    done = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == text and text
    assert done.usage.completion_tokens == count
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == text and len([d for d in deltas if d]) > 1
    assert chunks[-1].usage.completion_tokens == count
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("length", "stop")


def test_sampling_is_seeded_and_a_stop_sequence_cuts_the_text(client, expected_greedy):
    def sampled(seed: int) -> str:
        return client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=16, temperature=0.9, top_p=0.95,
                                         seed=seed).choices[0].text

    first, again = sampled(7), sampled(7)
    assert first == again and first  # the same seed draws the same text
    # other seeds draw other text: the seed reaches the sampler (a server that ignored it, or used
    # one fixed seed, would answer every seed alike); three of them, as two draws may agree by chance
    others = {seed: sampled(seed) for seed in (8, 9, 10)}
    assert any(text != first for text in others.values()), (first, others)
    greedy, encode, _ = expected_greedy
    text, _ = greedy(encode(PROMPT), 12)
    stop = text[len(text) // 2:len(text) // 2 + 2]
    for stream in (False, True):
        done = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop],
                                         stream=stream)
        chunks = list(done) if stream else [done]
        assert "".join(c.choices[0].text for c in chunks if c.choices) == text[:text.index(stop)]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def _post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post_raw(port: int, path: str, body: bytes, chunked: bool = False) -> tuple[int, dict]:
    """POST ``body`` in 64 KB writes (with Content-Length, or chunked without one), stopping once
    the server answers: an HTTP library keeps writing into the connection the server has closed
    after refusing a large body, and gets a reset instead of the answer."""
    import select
    import socket

    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    pieces = [body[i:i + (64 << 10)] for i in range(0, len(body), 64 << 10)]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"{framing}\r\n\r\n".encode())
        try:
            for piece in pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                if select.select([sock], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(65536)
        head, _, answer = response.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: *(\d+)", head, re.IGNORECASE).group(1))
        while len(answer) < length:
            answer += sock.recv(65536)
    return int(head.split()[1]), json.loads(answer)


def _body(**fields) -> bytes:
    return json.dumps({"model": MODEL, "prompt": PROMPT, **fields}).encode()


BAD_REQUESTS = [  # (path, body, status, reason)
    ("/v1/completions", b'{"model": "tiny-llm", "prompt": ', 400, "not valid JSON"),
    ("/v1/completions", b'{"model": "tiny-llm", "prompt": "x", "temperature": NaN}', 400, "NaN is not a JSON value"),
    ("/v1/completions", b"[1, 2]", 400, "must be a JSON object"),
    ("/v1/completions", b"[" * 100_000 + b"]" * 100_000, 400, "nests too deeply"),
    ("/v1/completions", _body(model="gpt-4"), 404, "model 'gpt-4' is not served here"),
    ("/v1/completions", _body(temperature=-1), 400, "temperature: Input should be greater than or equal to 0"),
    ("/v1/completions", _body(max_tokens=0), 400, "max_tokens: Input should be greater than or equal to 1"),
    ("/v1/completions", _body(n=3), 400, "n: this server returns one choice per request"),
    ("/v1/completions", _body(logprobs=2), 400, "logprobs: logprobs is not supported"),
    ("/v1/completions", _body(temprature=0.5), 400, "temprature: unknown field"),
    ("/v1/completions", _body(stop=["a", "b", "c", "d", "e"]), 400, "stop: at most 4 stop sequences"),
    ("/v1/completions", _body(prompt=[5] * 300), 400, "the prompt is 300 tokens; this model's context is 256"),
    ("/v1/completions", _body(max_tokens=500), 400, "plus max_tokens (500) is more than this model's context"),
    ("/v1/completions", _body(prompt=[1, 2, 100000]), 400, "token id 100000 is outside the vocabulary"),
    ("/v1/completions", _body(prompt=""), 400, "the prompt is empty"),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": []}).encode(), 400, "messages: List should"),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
     400, "messages.0.role"),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                                         "tools": [{"type": "function"}]}).encode(), 400, "tools is not supported"),
]
HUGE = b'{"model": "tiny-llm", "prompt": "' + b"a" * (6 << 20) + b'"}'



def test_bad_requests_get_4xx_with_a_reason_and_the_server_keeps_serving(server, client):
    import openai

    port, log, _ = server
    for path, body, status, reason in BAD_REQUESTS:
        got, answer = _post(port, path, body)
        assert (got, reason in answer["error"]["message"]) == (status, True), (path, body[:80], answer)
    # a body over the limit is refused from its Content-Length, or while it is read when chunked
    for chunked, reason in ((False, "accepts at most 4,194,304"), (True, "passed 4,194,304 bytes")):
        status, answer = _post_raw(port, "/v1/completions", HUGE, chunked)
        assert status == 413 and reason in answer["error"]["message"], answer
    # the stock client maps them onto its exceptions, with the server's reason
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.completions.create(model="gpt-4", prompt=PROMPT)
    with pytest.raises(openai.BadRequestError, match="context_length_exceeded|more than this model's context"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=10_000)
    assert _ready(port)
    assert client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0).choices[0].text
    assert "Traceback" not in log.read_text()


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("request_fuzz", Path(__file__).parents[1] / "request_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


FUZZ_REQUESTS = 1000


def test_1000_malformed_requests_get_4xx_with_a_reason_and_the_server_stays_up(server, tokenizer):
    """Bad JSON, wrong types, negative and huge max_tokens, prompts past the context, 100 MB
    bodies (with and without Content-Length), unknown models and routes (request_fuzz.py)."""
    port, log, proc = server
    fuzz = _fuzz_module()
    generate, ready_path = fuzz.ENDPOINT_SETS["openai"]
    probes = list(generate(random.Random(0), MODEL, fuzz.LLMSpec(context=256, vocab=len(tokenizer)), FUZZ_REQUESTS))
    assert len(probes) == FUZZ_REQUESTS

    answers = fuzz.assert_flood_refused(proc, port, probes, ready_path)
    assert all(a.status == 404 for a in answers if a.probe.kind == "unknown-model"), fuzz.statuses(answers)
    good = fuzz.send("127.0.0.1", port, fuzz.valid_openai_probe(MODEL))
    assert good.status == 200 and json.loads(good.body)["choices"][0]["text"], good.body[:300]
    assert "Traceback" not in log.read_text()


def test_metrics_report_time_to_first_token_and_decode_speed(server, client):
    client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    _post(server[0], "/v1/completions", _body(model="nope"))
    with urllib.request.urlopen(f"http://127.0.0.1:{server[0]}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line.startswith("modelpress_llm_")}
    assert samples["modelpress_llm_time_to_first_token_seconds_count"] >= 1
    assert samples["modelpress_llm_time_to_first_token_seconds_sum"] > 0
    assert samples["modelpress_llm_decode_tokens_per_second_count"] >= 1
    assert samples["modelpress_llm_generated_tokens_total"] >= 8
    assert samples['modelpress_llm_requests_total{endpoint="/v1/completions",status="404"}'] >= 1


def test_a_corrupt_build_never_turns_ready(serve_python, pulled, tooling, tmp_path):
    broken = Path(shutil.copytree(pulled, tmp_path / "onnxruntime-genai"))
    (broken / "model.onnx").write_bytes(b"\x08\x07this is not an onnx graph")
    port = tooling.free_port()
    log = tmp_path / "server.log"
    proc = tooling.start_server(serve_python, broken, port, log)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        tooling.stop_server(proc)
        pytest.fail("a server with a corrupt build kept running")
    text = log.read_text()
    assert code == 1 and f"not serving: model '{MODEL}': cannot load {broken}" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(("stops", "pieces", "emitted", "stopped"), [
    (("END",), ["the film E", "N", "D was"], ["the film ", "", ""], True),  # held back, then cut
    (("END",), ["the film E", "X"], ["the film ", "EX"], False),  # released once it cannot be a stop
    (("\n\n", "."), ["a b", " c.", "d"], ["a b", " c"], True),
    ((), ["a", "b"], ["a", "b"], False),
])
def test_stop_scanner_never_emits_part_of_a_stop_sequence(stops, pieces, emitted, stopped):
    scanner = StopScanner(stops)
    out, done = [], False
    for piece in pieces:
        text, done = scanner.feed(piece)
        out.append(text)
        if done:
            break
    assert (out, done) == (emitted, stopped)
