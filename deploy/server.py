"""The CPU server: ONNX Runtime models behind kserve's V2 (Open Inference Protocol) ModelServer.

kserve provides the protocol, /v2/health/{live,ready}, model metadata and Prometheus /metrics;
this module adds an ONNX Runtime model class that validates every request against the graph
(wrong name / datatype / shape -> 400 naming the tensor). It needs the ``serve`` extra
(kserve, onnxruntime, numpy) and nothing from the pipeline stack: no torch, no ZenML, no MLflow.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

# kserve parses sys.argv when imported; keep `modelpress serve`'s own options away from it.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
    import numpy as np
    import onnxruntime as ort
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
finally:
    sys.argv = _argv

from modelpress.core.errors import ModelpressError
from modelpress.deploy import request_limits
from modelpress.deploy.triton_repo import latest_version, onnx_models
from modelpress.deploy.v2_protocol import (
    V2Tensor,
    data_problems,
    finite_problems,
    request_problems,
    specs_from_ort,
)

log = logging.getLogger("modelpress.serve")

# On import, not in serve(): with --workers > 1 kserve spawns processes that import its app
# afresh and this module again (to unpickle the models), so each gets the limits.
request_limits.install(kserve.model_server.app)


class ClientErrorDecoding(DataPlane):
    """kserve's data plane, with a request it cannot decode (a binary body whose header and
    sizes disagree) answered 400 naming the problem instead of a 500."""

    def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(body, headers, *args, **kwargs)
        except InvalidInput:
            raise
        except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot decode the request: {exc}") from None


class OnnxRuntimeModel(kserve.Model):
    """One ONNX model from a Triton-layout repository folder, served by ONNX Runtime on CPU."""

    def __init__(self, name: str, model_path: Path, intra_op_threads: int = 1):
        super().__init__(name)
        self.model_path = Path(model_path)
        self.intra_op_threads = intra_op_threads
        self.session: ort.InferenceSession | None = None
        self.inputs: list[V2Tensor] = []
        self.outputs: list[V2Tensor] = []
        self.load_error: str | None = None

    def load(self) -> bool:
        """Open the session; a corrupt or unreadable model leaves the model not ready, logged."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        try:
            self.session = ort.InferenceSession(str(self.model_path), options,
                                                providers=["CPUExecutionProvider"])
            self.inputs = specs_from_ort(self.session.get_inputs())
            self.outputs = specs_from_ort(self.session.get_outputs())
        except Exception as exc:  # noqa: BLE001 -- ORT raises its own Fail/InvalidProtobuf types, all fatal here
            self.load_error = f"model {self.name!r}: cannot load {self.model_path}: {exc}"
            log.error(self.load_error)
            self.ready = False
            return False
        log.info("model %r ready from %s: inputs %s, outputs %s", self.name, self.model_path,
                 [t.metadata() for t in self.inputs], [t.metadata() for t in self.outputs])
        self.ready = True
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        return [t.metadata() for t in self.inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [t.metadata() for t in self.outputs]

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> InferResponse:
        if self.session is None:  # kserve routes only to ready models; this is the type checker's guard
            raise InvalidInput(f"model {self.name} is not loaded")
        feeds = self._feeds(payload)
        wanted = self._requested_names(payload)
        results = self.session.run(wanted, feeds)
        outputs = []
        for name, value in zip(wanted, results):
            output = InferOutput(name=name, shape=list(value.shape), datatype=self._datatype(name))
            output.set_data_from_numpy(value, binary_data=payload.use_binary_outputs)
            outputs.append(output)
        # the protocol's response id is a string even when the request carried none
        return InferResponse(response_id=payload.id or uuid.uuid4().hex, model_name=self.name, infer_outputs=outputs,
                             use_binary_outputs=payload.use_binary_outputs,
                             requested_outputs=payload.request_outputs)

    def _feeds(self, payload: InferRequest) -> dict[str, np.ndarray]:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this server speaks the V2 protocol: POST /v2/models/<name>/infer")
        received = [(t.name, t.datatype, list(t.shape)) for t in payload.inputs]
        problems = request_problems(self.inputs, received)
        if problems:
            raise InvalidInput("; ".join(problems))
        feeds = {}
        for tensor in payload.inputs:
            if not _is_binary(tensor):  # JSON data: JSON types must match the datatype
                problems += data_problems(tensor.name, tensor.datatype, tensor.data)
            try:
                feeds[tensor.name] = tensor.as_numpy()
            except (ValueError, TypeError, OverflowError) as exc:  # data length does not match the shape
                raise InvalidInput(f"input {tensor.name!r}: data does not fit shape "
                                   f"{list(tensor.shape)} ({exc})") from None
            problems += finite_problems(tensor.name, feeds[tensor.name])
        if problems:
            raise InvalidInput("; ".join(problems))
        return feeds

    def _requested_names(self, payload: InferRequest) -> list[str]:
        known = [t.name for t in self.outputs]
        if not payload.request_outputs:
            return known
        names = [o.name for o in payload.request_outputs]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidInput(f"unknown output(s) {unknown}; the model returns {known}")
        return names

    def _datatype(self, name: str) -> str:
        return next(t.datatype for t in self.outputs if t.name == name)


def _is_binary(tensor: Any) -> bool:
    return getattr(tensor, "_raw_data", None) is not None


def models_in(repository: Path, intra_op_threads: int = 1) -> list[OnnxRuntimeModel]:
    """One model per ``<name>/config.pbtxt`` with an ONNX platform, at its latest version."""
    repository = Path(repository)
    if not repository.is_dir():
        raise ModelpressError(f"model repository {repository} does not exist")
    folders = onnx_models(repository)
    if not folders:
        raise ModelpressError(f"model repository {repository} holds no ONNX model "
                              "(expected <name>/config.pbtxt and <name>/<version>/model.onnx; "
                              "see `modelpress pull`)")
    return [OnnxRuntimeModel(f.name, latest_version(f) / "model.onnx", intra_op_threads) for f in folders]


def serve(repository: Path, http_port: int = 8080, workers: int = 1, intra_op_threads: int = 1,
          enable_grpc: bool = False, access_log: bool = False,
          max_request_bytes: int = request_limits.DEFAULT_LIMIT) -> None:
    """Load every model, then serve until stopped; exits non-zero when no model loads."""
    import os

    os.environ[request_limits.LIMIT_ENV] = str(max_request_bytes)  # read per request, by every worker
    models = models_in(repository, intra_op_threads)
    for model in models:
        model.load()
    broken = [m.load_error for m in models if not m.ready]
    if broken:
        # A pod with a broken model must never turn ready: fail fast with the reason.
        raise ModelpressError("not serving: " + "; ".join(e for e in broken if e))
    server = kserve.ModelServer(http_port=http_port, workers=workers, enable_grpc=enable_grpc,
                                # per-request latency log lines cost ~15% throughput (benchmarks/RESULTS.md, "Serving")
                                enable_latency_logging=False)
    server.dataplane.__class__ = ClientErrorDecoding  # same state, stricter decoding (no 5xx for bad bodies)
    quiet_request_logs(access_log)
    _use_uvloop()
    server.start(models)


def _use_uvloop() -> None:
    """kserve runs uvicorn under its own ``asyncio.run()``, so its ``event_loop`` option never
    reaches uvicorn: the loop policy decides. uvloop when installed (the image has it)."""
    if importlib.util.find_spec("uvloop") is None:
        log.warning("uvloop is not installed: serving on asyncio's default event loop (slower)")
        return
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # kserve's start() asks for the current loop before its asyncio.run(); give it one
    asyncio.set_event_loop(asyncio.new_event_loop())


class _BriefClientErrors(logging.Filter):
    """A rejected request is the client's error: one warning line, not a server traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, InvalidInput):
            record.msg, record.args, record.exc_info = "rejected request: %s", (error,), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_request_logs(access_log: bool) -> None:
    """Per-request log lines (timings, access log) cost throughput; Prometheus has the numbers."""
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if not access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve").addFilter(_BriefClientErrors())
