"""Request hygiene for the CPU server: a body size limit, short validation errors, and 4xx
(not kserve's 5xx) for versioned routes and malformed binary-protocol headers.

uvicorn and FastAPI read a request body whole, however large, and FastAPI's 422 answer for a
body that does not match the protocol's schema echoes the offending input back. A 100 MB body
would therefore cost 100 MB of server memory (more while JSON-decoding it) and, if malformed,
a response of the same size. :class:`BodyLimit` refuses a body over the limit before reading
it when its Content-Length says so, and stops reading a chunked one as soon as it passes the
limit (413 either way); :func:`short_validation_errors` answers schema mismatches with a 400
that names the fields, without the input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

LIMIT_ENV = "MODELPRESS_MAX_REQUEST_BYTES"
DEFAULT_LIMIT = 32 * 1024 * 1024  # batch 1024 of 28x28 FP32 as V2 JSON is ~8 MB; binary ~3 MB
ErrorBody = Callable[[int, str], dict[str, Any]]  # (status, reason) -> the JSON error body


def limit_bytes() -> int:
    try:
        return max(1024, int(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT)))
    except ValueError:
        return DEFAULT_LIMIT


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request body over :func:`limit_bytes` (read per request, so
    worker processes started later see the value the server was started with)."""

    def __init__(self, app: Any, error_body: ErrorBody | None = None) -> None:
        self.app = app
        self.error_body = error_body or v2_error_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal(scope)
        if refusal is not None:
            await _answer(send, *refusal, self.error_body)
            return
        limit = limit_bytes()
        declared = _content_length(scope)
        if declared == -1 or (declared is not None and declared > limit):
            what = "an invalid Content-Length" if declared == -1 else f"a body of {declared:,} bytes"
            await _answer(send, 413 if declared != -1 else 400,
                          f"{what}; this server accepts at most {limit:,} bytes per request", self.error_body)
            return
        received = 0
        started = answered = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # answer now: the framework turns any error raised while it reads the body
                    # into its own 400, which would hide the reason
                    if not started and not answered:
                        answered = True
                        await _answer(send, 413, f"request body passed {limit:,} bytes, "
                                                 "this server's limit per request", self.error_body)
                    raise _TooLarge
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if answered:
                return  # what the app says after our 413 is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            pass


def _refusal(scope: dict[str, Any]) -> tuple[int, str] | None:
    """What kserve would answer with a 5xx although the request is at fault."""
    parts = scope.get("path", "").split("/")
    if len(parts) > 5 and parts[1:3] == ["v2", "models"] and parts[4] == "versions":
        # kserve raises NotImplementedError (501) for any versioned route
        return 404, (f"model versions are not routed here: this server serves one version of each "
                     f"model, at /v2/models/{parts[3]}/{'/'.join(parts[6:]) or ''}".rstrip("/"))
    header = _header(scope, b"inference-header-content-length")
    if header is not None:
        declared = _content_length(scope)
        if not header.isdigit():
            return 400, f"Inference-Header-Content-Length {header!r} is not a byte count"
        if declared is not None and declared >= 0 and int(header) > declared:
            return 400, f"Inference-Header-Content-Length {header} exceeds the body's {declared} bytes"
    return None


def _header(scope: dict[str, Any], wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == wanted:
            return value.decode("latin-1").strip()
    return None


def _content_length(scope: dict[str, Any]) -> int | None:
    """The declared length; None when absent, -1 when not a non-negative integer."""
    text = _header(scope, b"content-length")
    if text is None:
        return None
    return int(text) if text.isdigit() else -1


def v2_error_body(status: int, reason: str) -> dict[str, Any]:
    """The V2 protocol's error envelope."""
    return {"error": reason}


async def _answer(send: Any, status: int, reason: str, error_body: ErrorBody) -> None:
    body = json.dumps(error_body(status, reason)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def short_validation_errors(request: Any, exc: Any) -> Any:
    """FastAPI's RequestValidationError as a 400 naming each field, without echoing the input."""
    from fastapi.responses import JSONResponse

    # kserve's body is "an InferenceRequest or raw bytes": report the InferenceRequest reading
    errors = [e for e in exc.errors() if "bytes" not in tuple(e.get("loc", ()))[:2]] or exc.errors()
    problems = []
    for error in errors[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "InferenceRequest"))
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return JSONResponse(status_code=400, content={"error": "request does not follow the protocol: "
                                                  + "; ".join(problems)})


def install(app: Any, error_body: ErrorBody | None = None) -> None:
    """Add both to a FastAPI app once (the server module does it for kserve's app on import,
    so that spawned worker processes, which import it again, get them too). ``error_body``
    shapes the refusals (default: the V2 protocol's; the LLM server gives OpenAI's)."""
    from fastapi.exceptions import RequestValidationError

    if getattr(app.state, "modelpress_limits", False):
        return
    app.add_middleware(BodyLimit, error_body=error_body)
    app.add_exception_handler(RequestValidationError, short_validation_errors)
    app.state.modelpress_limits = True
