"""``modelpress serve`` LLM mode: an ONNX Runtime GenAI build behind OpenAI-compatible endpoints.

Built on kserve's ModelServer, as the V2 server (deploy/server.py) is: kserve runs uvicorn and
gives /v2/health/{live,ready}, the model's readiness and Prometheus /metrics. The OpenAI routes
(/v1/models, /v1/completions, /v1/chat/completions, with ``stream: true`` as server-sent events)
are this module's own FastAPI routes on kserve's app, with request types from
deploy/openai_protocol.py, because kserve's own OpenAI support imports vLLM (see there).

Every refused request gets a 4xx with one line naming the field; bodies over the size limit are
refused before or while they are read (deploy/request_limits.py, as for the V2 server).
Generations run one at a time by default (``max_parallel``): on a CPU pod, parallel decodes
share the cores, so they finish no sooner; scale with replicas.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

# kserve parses sys.argv when imported; keep `modelpress serve`'s own options away from it.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from kserve.errors import InvalidInput
    from prometheus_client import Counter, Histogram
finally:
    sys.argv = _argv

from modelpress.core.errors import ModelpressError
from modelpress.deploy import openai_protocol as api
from modelpress.deploy import request_limits
from modelpress.deploy.llm_engine import CONFIG_FILE, GenAIEngine, Generation, PromptError, Sampling

log = logging.getLogger("modelpress.serve")

DEFAULT_LIMIT = 4 * 1024 * 1024  # a 128k-token chat history is ~0.5 MB of JSON


def openai_error_body(status: int, reason: str) -> dict[str, Any]:
    return api.OpenAIError(status, reason).body()


# The V2 server's body limit (refused from Content-Length, or while a chunked body is read),
# answering in the OpenAI error envelope; installed before deploy/server.py, whose own install
# (on its import) then leaves it be.
request_limits.install(kserve.model_server.app, error_body=openai_error_body)
COMPLETION_DEFAULT_TOKENS = 16  # the OpenAI completions API's default max_tokens

REQUESTS = Counter("modelpress_llm_requests_total", "OpenAI API requests by endpoint and status",
                   ["endpoint", "status"])
PROMPT_TOKENS = Counter("modelpress_llm_prompt_tokens_total", "Prompt tokens of served requests")
GENERATED_TOKENS = Counter("modelpress_llm_generated_tokens_total", "Tokens generated")
TIME_TO_FIRST_TOKEN = Histogram(
    "modelpress_llm_time_to_first_token_seconds", "From the request's arrival to its first new token",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
DECODE_RATE = Histogram(
    "modelpress_llm_decode_tokens_per_second", "Decode speed of each request after its first token",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000))


def model_name_of(folder: Path) -> str:
    """The registered model's name (``modelpress pull`` writes it to modelpress.json), else the folder's."""
    try:
        return str(json.loads((folder / "modelpress.json").read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name


class GenAIModel(kserve.Model):
    """The GenAI build as a kserve model: kserve reports its readiness; the routes below use it."""

    def __init__(self, name: str, folder: Path, intra_op_threads: int = 0):
        super().__init__(name)
        self.folder = Path(folder)
        self.intra_op_threads = intra_op_threads
        # not ``self.engine``: kserve's Model uses that name to mean "start an engine task"
        self.llm: GenAIEngine | None = None
        self.load_error: str | None = None
        self.created = int(time.time())

    def load(self) -> bool:
        try:
            self.llm = GenAIEngine(self.folder, self.intra_op_threads)
        except ModelpressError as exc:
            self.load_error = str(exc)
        except Exception as exc:  # noqa: BLE001 -- GenAI raises RuntimeError/OrtException for bad files
            self.load_error = f"model {self.name!r}: cannot load {self.folder}: {exc}"
        if self.load_error:
            log.error(self.load_error)
            self.ready = False
            return False
        assert self.llm is not None
        log.info("model %r ready from %s (context %d tokens)", self.name, self.folder, self.llm.context_length)
        self.ready = True
        return True

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Any:
        raise InvalidInput(f"{self.name!r} is a language model: use POST /v1/completions or /v1/chat/completions")


# --- request plumbing -------------------------------------------------------------------------

async def read_json(request: Request) -> Any:
    """The body as JSON (400 when it is not); request_limits' middleware has refused an
    oversized one before it was read."""
    body = await request.body()
    try:
        return json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise api.OpenAIError(400, f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise api.OpenAIError(400, "the request body nests too deeply to be a request") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def sampling_of(body: api.CompletionRequest | api.ChatCompletionRequest, max_new_tokens: int) -> Sampling:
    return Sampling(max_new_tokens=max_new_tokens, temperature=body.temperature, top_p=body.top_p,
                    top_k=body.top_k, seed=body.seed, stops=tuple(body.stop_sequences()))


def sse(payload: Any) -> str:
    data = payload if isinstance(payload, str) else payload.model_dump_json(exclude_none=True)
    return f"data: {data}\n\n"


def usage_of(result: Generation) -> api.Usage:
    return api.Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                     total_tokens=result.prompt_tokens + result.completion_tokens)


class LLMRoutes:
    """The OpenAI endpoints for one GenAI model."""

    def __init__(self, model: GenAIModel, max_parallel: int = 1):
        self.model = model
        self.slots = asyncio.Semaphore(max_parallel)
        self.threads = concurrent.futures.ThreadPoolExecutor(max_parallel, thread_name_prefix="generate")

    @property
    def engine(self) -> GenAIEngine:
        assert self.model.llm is not None, "routes are installed only once the model has loaded"
        return self.model.llm

    def install(self, app: FastAPI) -> None:
        # Added before kserve adds its own routes, so /v1/models is OpenAI's list here, not
        # kserve's V1-protocol one (the same path; FastAPI takes the first match).
        app.add_api_route("/v1/models", self.list_models, methods=["GET"])
        app.add_api_route("/v1/models/{model}", self.get_model, methods=["GET"])
        app.add_api_route("/v1/completions", self.completions, methods=["POST"])
        app.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"])
        app.add_api_route("/health", self.health, methods=["GET"])  # vLLM's probe path
        app.add_exception_handler(api.OpenAIError, refused)  # type: ignore[arg-type]  # Starlette types it for Exception
        log.info("OpenAI API for %r: /v1/models, /v1/completions, /v1/chat/completions", self.model.name)

    async def health(self) -> JSONResponse:
        return JSONResponse({"ready": self.model.ready}, status_code=200 if self.model.ready else 503)

    def card(self) -> api.ModelCard:
        return api.ModelCard(id=self.model.name, created=self.model.created, max_model_len=self.engine.context_length)

    async def list_models(self) -> dict[str, Any]:
        return api.ModelList(data=[self.card()]).model_dump()

    async def get_model(self, model: str) -> dict[str, Any]:
        self._check_model(model, "model")
        return self.card().model_dump()

    def _check_model(self, name: str, param: str = "model") -> None:
        if name != self.model.name:
            raise api.OpenAIError(404, f"model {name!r} is not served here; this server serves "
                                       f"{self.model.name!r}", param=param, code="model_not_found")

    # --- /v1/completions ------------------------------------------------------------------------

    async def completions(self, request: Request) -> Any:
        endpoint = "/v1/completions"
        body = api.parse(api.CompletionRequest, await read_json(request))
        self._check_model(body.model)
        prompt = body.prompt[0] if isinstance(body.prompt, list) and isinstance(body.prompt[0], str) else body.prompt
        tokens = list(prompt) if isinstance(prompt, list) else self.engine.encode(prompt)
        result = Generation(prompt_tokens=len(tokens))
        n_new = self._fit(tokens, body.max_tokens, "prompt", COMPLETION_DEFAULT_TOKENS)
        echo = (prompt if isinstance(prompt, str) else self.engine.decode(tokens)) if body.echo else ""
        pieces = self._pieces(tokens, sampling_of(body, n_new), result, endpoint)
        ids = api.new_id("cmpl"), api.now()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return self._stream(self._completion_events(ids, pieces, result, echo, include_usage))
        text = echo + "".join([piece async for piece in pieces])
        return api.Completion(id=ids[0], created=ids[1], model=self.model.name, usage=usage_of(result), choices=[
            api.CompletionChoice(text=text, finish_reason=result.finish_reason)]).model_dump()

    async def _completion_events(self, ids: tuple[str, int], pieces: AsyncIterator[str], result: Generation,
                                 echo: str, include_usage: bool) -> AsyncIterator[str]:
        def chunk(text: str, finish: str | None = None, usage: api.Usage | None = None) -> str:
            choices = [] if usage else [api.CompletionChoice(text=text, finish_reason=finish)]
            return sse(api.Completion(id=ids[0], created=ids[1], model=self.model.name, choices=choices, usage=usage))

        if echo:
            yield chunk(echo)
        async for piece in pieces:
            yield chunk(piece)
        yield chunk("", result.finish_reason)
        if include_usage:
            yield chunk("", usage=usage_of(result))

    # --- /v1/chat/completions -------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Any:
        endpoint = "/v1/chat/completions"
        body = api.parse(api.ChatCompletionRequest, await read_json(request))
        self._check_model(body.model)
        try:
            tokens = self.engine.chat_prompt([{"role": m.role, "content": m.text()} for m in body.messages])
        except PromptError as exc:
            raise api.OpenAIError(400, str(exc), param=exc.param, code=exc.code) from None
        result = Generation(prompt_tokens=len(tokens))
        n_new = self._fit(tokens, body.token_limit(), "messages", None)
        pieces = self._pieces(tokens, sampling_of(body, n_new), result, endpoint)
        ids = api.new_id("chatcmpl"), api.now()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return self._stream(self._chat_events(ids, pieces, result, include_usage))
        text = "".join([piece async for piece in pieces])
        choice = api.ChatChoice(message=api.AssistantMessage(content=text), finish_reason=result.finish_reason)
        return api.ChatCompletion(id=ids[0], created=ids[1], model=self.model.name, choices=[choice],
                                  usage=usage_of(result)).model_dump()

    async def _chat_events(self, ids: tuple[str, int], pieces: AsyncIterator[str], result: Generation,
                           include_usage: bool) -> AsyncIterator[str]:
        def chunk(delta: api.Delta | None, finish: str | None = None, usage: api.Usage | None = None) -> str:
            choices = [] if delta is None else [api.ChunkChoice(delta=delta, finish_reason=finish)]
            return sse(api.ChatCompletionChunk(id=ids[0], created=ids[1], model=self.model.name,
                                               choices=choices, usage=usage))

        yield chunk(api.Delta(role="assistant", content=""))
        async for piece in pieces:
            yield chunk(api.Delta(content=piece))
        yield chunk(api.Delta(), result.finish_reason)
        if include_usage:
            yield chunk(None, usage=usage_of(result))

    # --- shared ---------------------------------------------------------------------------------

    def _fit(self, tokens: list[int], max_new: int | None, param: str, default: int | None) -> int:
        try:
            return self.engine.check_tokens(tokens, max_new, param, default)
        except PromptError as exc:
            raise api.OpenAIError(400, str(exc), param=exc.param, code=exc.code) from None

    async def _pieces(self, tokens: list[int], sampling: Sampling, result: Generation,
                      endpoint: str) -> AsyncIterator[str]:
        """The engine's text pieces, each produced on a worker thread (the event loop keeps
        serving health checks and other requests meanwhile); one generation per slot."""
        async with self.slots:
            pieces: Generator[str, None, None] = self.engine.generate(tokens, sampling, result)
            step: concurrent.futures.Future | None = None
            try:
                while True:
                    step = self.threads.submit(next, pieces, None)
                    piece = await asyncio.wrap_future(step)
                    if piece is None:
                        break
                    yield piece
            finally:
                if step is not None and not step.done():  # the client went away mid-step
                    await asyncio.wrap_future(step)
                pieces.close()  # ... and its generation ends here
        record(result, endpoint)

    @staticmethod
    def _stream(events: AsyncIterator[str]) -> StreamingResponse:
        async def with_done() -> AsyncIterator[str]:
            try:
                async for event in events:
                    yield event
            except Exception as exc:
                log.exception("generation failed mid-stream")
                yield sse(json.dumps(api.OpenAIError(500, f"generation failed: {exc}", kind="server_error").body()))
            yield sse("[DONE]")

        return StreamingResponse(with_done(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def record(result: Generation, endpoint: str) -> None:
    REQUESTS.labels(endpoint, "200").inc()
    PROMPT_TOKENS.inc(result.prompt_tokens)
    GENERATED_TOKENS.inc(result.completion_tokens)
    if (ttft := result.time_to_first_token_s()) is not None:
        TIME_TO_FIRST_TOKEN.observe(ttft)
    if (rate := result.decode_tokens_per_s()) is not None:
        DECODE_RATE.observe(rate)


async def refused(request: Request, exc: api.OpenAIError) -> JSONResponse:
    route = request.scope.get("route")  # the template (/v1/models/{model}): bounded label values
    REQUESTS.labels(getattr(route, "path", "other"), str(exc.status)).inc()
    log.warning("rejected request to %s: %s", request.url.path, exc.message)
    return JSONResponse(exc.body(), status_code=exc.status)


# --- entry point ------------------------------------------------------------------------------

def is_llm_folder(folder: Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def serve(folder: Path, http_port: int = 8080, intra_op_threads: int = 0, max_parallel: int = 1,
          access_log: bool = False, max_request_bytes: int | None = None, workers: int = 1) -> None:
    """Load the GenAI folder, then serve it until stopped; exits non-zero when it does not load."""
    from modelpress.deploy.server import _use_uvloop, quiet_request_logs

    folder = Path(folder)
    if workers != 1:
        raise ModelpressError(f"--workers {workers}: the LLM server runs one process (its generations "
                              "share the cores anyway); scale with replicas")
    os.environ[request_limits.LIMIT_ENV] = str(max_request_bytes or DEFAULT_LIMIT)  # read per request
    model = GenAIModel(model_name_of(folder), folder, intra_op_threads)
    if not model.load():
        raise ModelpressError(f"not serving: {model.load_error}")  # a pod with a broken model never turns ready
    LLMRoutes(model, max_parallel).install(kserve.model_server.app)
    server = kserve.ModelServer(http_port=http_port, workers=1, enable_grpc=False, enable_latency_logging=False)
    quiet_request_logs(access_log)
    _use_uvloop()
    server.start([model])
