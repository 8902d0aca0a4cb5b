"""OpenAI-compatible request and response types for the LLM server (deploy/llm_server.py).

Written here, not imported: kserve 0.21's ``kserve.protocol.rest.openai`` takes its request and
response types from vLLM (``vllm.entrypoints.openai...``), and vLLM (torch, CUDA) is not in the
CPU serving image, so that module cannot even be imported there. These are the fields of the
OpenAI API this server honours. A field it does not know, or a value it cannot honour (``n``
above 1, log-probabilities, tools, penalties), is refused with a 400 that names the field:
silently ignoring it would return something the client did not ask for.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_STOP_SEQUENCES = 4  # as the OpenAI API


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False


def _neutral(name: str, value: Any, neutral: tuple[Any, ...]) -> Any:
    if value not in neutral:
        raise ValueError(f"{name} is not supported by this server (leave it unset)")
    return value


class _Sampling(_Strict):
    """Fields shared by completions and chat completions."""

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="new tokens at most (default: the "
                                   "completion endpoint's 16, chat: up to the context)")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0: greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="vLLM's extension; 0: no top-k cut")
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=2**31)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None  # the API's end-user id for abuse monitoring: accepted, not used

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("this server returns one choice per request (n=1)")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        if any(not s for s in stops):
            raise ValueError("a stop sequence cannot be empty")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None, info: Any) -> float | None:
        return _neutral(info.field_name, value, (None, 0, 0.0))

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return _neutral("logit_bias", value or None, (None,))

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self

    def stop_sequences(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int]
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str] | list[int]) -> str | list[str] | list[int]:
        if isinstance(value, list) and not value:
            raise ValueError("the prompt is empty")
        if isinstance(value, list) and isinstance(value[0], str) and len(value) != 1:
            raise ValueError("one prompt per request (this server does not batch prompts)")
        if isinstance(value, list) and isinstance(value[0], int) and min(value) < 0:
            raise ValueError("token ids are non-negative")
        return value

    @field_validator("logprobs", "suffix")
    @classmethod
    def _unsupported(cls, value: Any, info: Any) -> Any:
        return _neutral(info.field_name, value, (None,))

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, value: int | None) -> int | None:
        return _neutral("best_of", value, (None, 1))


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponseFormat(_Strict):
    type: Literal["text"]


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        return _neutral("logprobs", value, (None, False))

    @field_validator("top_logprobs", "tool_choice")
    @classmethod
    def _unsupported(cls, value: Any, info: Any) -> Any:
        return _neutral(info.field_name, value, (None, "none"))

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        return _neutral("tools", value or None, (None,))

    @model_validator(mode="after")
    def _one_limit(self) -> ChatCompletionRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("give max_tokens or max_completion_tokens, not both")
        return self

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


# --- responses --------------------------------------------------------------------------------

FinishReason = Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "modelpress"
    max_model_len: int | None = None  # as vLLM reports it


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


# --- errors -----------------------------------------------------------------------------------

class OpenAIError(Exception):
    """A request the server refuses: HTTP status, one-line reason, and the field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        # the OpenAI API's error envelope, which its clients parse into BadRequestError & co.
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def validation_error(exc: ValidationError) -> OpenAIError:
    """A pydantic error as one 400 naming each field (never echoing the input back)."""
    problems, first = [], None
    for error in exc.errors()[:8]:
        where = ".".join(str(p) for p in error["loc"] if not _is_union_branch(p))
        first = first or where or None
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{where or 'body'}: {message}")
    return OpenAIError(400, "; ".join(dict.fromkeys(problems)), param=first)


def _is_union_branch(part: Any) -> bool:
    # pydantic names the union member it tried ('str', 'list[int]', 'function-after[...]')
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))


def parse(request_type: type[BaseModel], payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise OpenAIError(400, "the request body must be a JSON object")
    try:
        return request_type.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None
