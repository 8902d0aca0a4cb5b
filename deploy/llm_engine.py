"""Text generation on an ONNX Runtime GenAI folder (the ``onnxruntime-genai`` build), for the
LLM server (deploy/llm_server.py). Needs only onnxruntime-genai and numpy: no torch, no kserve.

GenAI does the work (model, KV cache, sampling, tokenizer, the chat template); this module adds
what the OpenAI API needs around it: prompt length checks against the model's context, stop
sequences that never leak into the text (a piece that may begin one is held back until it is
decided), finish reasons, and the timings that the server turns into metrics.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.core.errors import ModelpressError

CONFIG_FILE = "genai_config.json"


class PromptError(ValueError):
    """The prompt or the requested length does not fit the model (the client's error)."""

    def __init__(self, message: str, param: str, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    seed: int | None = None
    stops: tuple[str, ...] = ()


@dataclass
class Generation:
    """One request's output, filled in while :meth:`GenAIEngine.generate` runs. Times are
    ``time.perf_counter()`` readings; ``received`` is when the request arrived, so the time to
    first token includes any wait for a free generation slot, as the client sees it."""

    prompt_tokens: int
    received: float = field(default_factory=time.perf_counter)
    completion_tokens: int = 0
    finish_reason: str = "length"
    first_token_at: float | None = None
    last_token_at: float | None = None

    def time_to_first_token_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.received

    def decode_tokens_per_s(self) -> float | None:
        if (self.completion_tokens < 2 or self.first_token_at is None or self.last_token_at is None
                or self.last_token_at == self.first_token_at):
            return None
        return (self.completion_tokens - 1) / (self.last_token_at - self.first_token_at)


class StopScanner:
    """Cuts generated text at the first stop sequence; text that could still become one is held
    back, so a streamed client never sees part of a stop sequence."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text that is safe to emit, whether a stop sequence was reached)."""
        text = self.held + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return text[:min(hits)], True
        keep = max((n for s in self.stops for n in range(min(len(s) - 1, len(text)), 0, -1)
                    if text.endswith(s[:n])), default=0)
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], False

    def flush(self) -> str:
        text, self.held = self.held, ""
        return text


class GenAIEngine:
    """An ONNX Runtime GenAI model folder: tokenizer, chat template, context length, generation."""

    def __init__(self, folder: Path, intra_op_threads: int = 0):
        import onnxruntime_genai as og

        self.folder = Path(folder)
        config_path = self.folder / CONFIG_FILE
        if not config_path.is_file():
            raise ModelpressError(f"{self.folder} holds no {CONFIG_FILE} (pull it with "
                                  "`modelpress pull MODEL_URI --build onnxruntime-genai`)")
        try:
            genai_config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelpressError(f"{config_path}: cannot be read as JSON ({exc})") from None
        model_section = genai_config.get("model") if isinstance(genai_config, dict) else None
        if not isinstance(model_section, dict) or not isinstance(model_section.get("context_length"), int):
            raise ModelpressError(f"{config_path}: not a GenAI model configuration (no model.context_length)")
        self.context_length = model_section["context_length"]
        eos = model_section.get("eos_token_id", [])
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.bos_id = model_section.get("bos_token_id")
        self.vocab_size = model_section.get("vocab_size")
        config = og.Config(str(self.folder))
        if intra_op_threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": intra_op_threads, "inter_op_num_threads": 1}}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        self.chat_template_problem = self._probe_chat_template()

    # --- prompts --------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def decode(self, tokens: list[int]) -> str:
        import numpy as np

        return self.tokenizer.decode(np.asarray(tokens, dtype=np.int32))

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template applied (by GenAI's tokenizer) and encoded, ready to generate from."""
        if self.chat_template_problem:
            raise PromptError(self.chat_template_problem, "messages")
        text = self.tokenizer.apply_chat_template(messages=json.dumps(messages), add_generation_prompt=True)
        tokens = self.encode(text)
        if self.bos_id is not None and tokens[:2] == [self.bos_id, self.bos_id]:
            tokens = tokens[1:]  # the template wrote BOS and the tokenizer added another
        return tokens

    def _probe_chat_template(self) -> str | None:
        try:
            self.tokenizer.apply_chat_template(messages=json.dumps([{"role": "user", "content": "hi"}]),
                                               add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001 -- GenAI raises RuntimeError or its own types
            return f"this model has no chat template GenAI can apply ({exc}); use /v1/completions"
        return None

    def check_tokens(self, tokens: list[int], max_new_tokens: int | None, param: str,
                     default_new_tokens: int | None) -> int:
        """The number of new tokens to generate; PromptError when the prompt does not fit."""
        if not tokens:
            raise PromptError("the prompt is empty (it encodes to no tokens)", param)
        if self.vocab_size and any(t >= self.vocab_size for t in tokens):
            raise PromptError(f"token id {max(tokens)} is outside the vocabulary ({self.vocab_size} tokens)",
                              "prompt")
        room = self.context_length - len(tokens)
        if room < 1:
            raise PromptError(f"the prompt is {len(tokens)} tokens; this model's context is "
                              f"{self.context_length} tokens", param, "context_length_exceeded")
        if max_new_tokens is None:
            return room if default_new_tokens is None else min(default_new_tokens, room)
        if max_new_tokens > room:
            raise PromptError(f"the prompt ({len(tokens)} tokens) plus max_tokens ({max_new_tokens}) is more "
                              f"than this model's context of {self.context_length} tokens", "max_tokens",
                              "context_length_exceeded")
        return max_new_tokens

    # --- generation -----------------------------------------------------------------------------

    def generate(self, tokens: list[int], sampling: Sampling, result: Generation) -> Generator[str, None, None]:
        """Yield the new text piece by piece; ``result`` holds the counts and timings. Blocking:
        the server advances it on a worker thread (and closes it when the client goes away)."""
        import numpy as np
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(**self._search_options(len(tokens), sampling))
        generator = og.Generator(self.model, params)
        stream = self.tokenizer.create_stream()
        scanner = StopScanner(sampling.stops)
        generator.append_tokens(np.asarray(tokens, dtype=np.int32))
        while not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            result.completion_tokens += 1
            result.last_token_at = time.perf_counter()
            result.first_token_at = result.first_token_at or result.last_token_at
            if token in self.eos_ids:
                result.finish_reason = "stop"
                break
            text, stopped = scanner.feed(stream.decode(token))
            if text:
                yield text
            if stopped:
                result.finish_reason = "stop"
                return
        rest = scanner.flush()
        if rest:
            yield rest

    def _search_options(self, prompt_tokens: int, sampling: Sampling) -> dict[str, Any]:
        options: dict[str, Any] = {"max_length": prompt_tokens + sampling.max_new_tokens, "min_length": 0}
        if sampling.temperature == 0:
            return {**options, "do_sample": False}
        seed = sampling.seed if sampling.seed is not None else int.from_bytes(os.urandom(3), "little")
        return {**options, "do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "top_k": sampling.top_k, "random_seed": seed}
