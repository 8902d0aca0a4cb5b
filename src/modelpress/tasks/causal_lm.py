"""Causal language models: next-token prediction on packed sequences of a corpus.

The data is a corpus (one row per document with ``text`` and ``split``, no labels), split by
document; each split is packed on its own into ``max_length`` sequences with the model's own
tokenizer (``modelpress.lm.corpus``), so no eval token reaches a calibration or training
sequence. Batches are ``{"input_ids": [n, max_length]}`` and their labels the same ids.

Baseline and candidate are evaluated as PyTorch modules on the same eval tokens
(``modelpress.lm.metrics``): perplexity (the primary metric, lower is better), KL(baseline ||
candidate), next-token agreement, size, prefill latency, greedy decode speed and peak memory
(speed and memory on each model as it ships, named in ``Evaluation.runtimes``: ``lm.runtime``);
a few prompts' greedy continuations are shown side by side (``modelpress.lm.continuations``).
The registered version is the ``huggingface`` build: the PyTorch candidate, with its Hugging
Face folder (config, tokenizer, weights) logged beside it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import statistics
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SerializeAsAny, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.errors import ModelpressError as Error
from modelpress.core.handoffs import Evaluation, Example
from modelpress.core.metric import Metric
from modelpress.core.registry import register_task
from modelpress.lm.continuations import DEFAULT_PROMPTS, side_by_side
from modelpress.lm.corpus import pack_documents
from modelpress.lm.metrics import (
    LM_METRICS,
    PeakMemory,
    latency_ms,
    next_token_loss,
    prefill_ids,
    rss_mb,
    size_mb,
    tokens_per_s,
)
from modelpress.lm.per_sequence import compare_sequences
from modelpress.lm.runtime import as_shipped
from modelpress.lm.scorers import TaskFile, task_file, task_metric
from modelpress.sources.zoo import load_tokenizer
from modelpress.tasks.base import Batch, DataKind, Task, TaskConfig, split_outputs
from modelpress.tasks.llm_tasks import check_shipped, score_tasks
from modelpress.tasks.lm_sizes import corpus_sizes, fit_corpus_splits
from modelpress.tasks.losses import causal_lm_kd_loss

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch
    from torch import nn

    from modelpress.datasets.base import Split


#: the context-length keys of a Hugging Face config, in the order they are trusted
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
DECODE_PROMPT_TOKENS = 16
TIMING_ROUNDS = 3


class CausalLMConfig(TaskConfig):
    name: Literal["causal-lm"] = "causal-lm"
    max_length: int = Field(256, ge=8, le=131072, description="tokens per packed sequence")
    eval_sequences: int = Field(64, ge=1, description="eval sequences scored at most (perplexity, KL, agreement)")
    eval_batch_size: int = Field(2, ge=1, description="sequences per forward when scoring")
    latency_batch: int = Field(1, ge=1, description="prefill latency: sequences per timed forward")
    latency_length: int = Field(128, ge=1, description="prefill latency: tokens per timed sequence")
    decode_tokens: int = Field(32, ge=1, description="greedy tokens timed for tokens_per_s")
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS), max_length=20,
                               description="prompts whose greedy continuations the report shows")
    continuation_tokens: int = Field(24, ge=0, le=512, description="tokens per continuation (0: none)")
    chat: bool = Field(True, description="prompts go through the tokenizer's chat template when it has one")
    fidelity_positions: int = Field(8, ge=1, description="last positions whose logits calibration "
                                    "compares (full-vocabulary logits of every token would not fit)")
    tasks: list[Annotated[SerializeAsAny[TaskFile], BeforeValidator(task_file), AfterValidator(check_shipped)]] = \
        Field([], description="task files scored on both models (modelpress.lm.scorers): metrics tasks.NAME.acc, ...")

    @field_validator("tasks")
    @classmethod
    def _distinct_names(cls, value: list[TaskFile]) -> list[TaskFile]:
        names = [t.name for t in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"task name(s) {', '.join(twice)} given twice (each names its metrics)")
        return value


@functools.cache
def tokenizer(source: str | None) -> Any:
    """The model's own tokenizer (a folder's files, or a package's loader), with a pad token."""

    loaded = load_tokenizer(source)
    if loaded.eos_token_id is None:
        raise ModelpressError(f"the tokenizer of {source} has no eos_token: documents cannot be "
                              "separated when packed")
    if loaded.pad_token is None:
        loaded.pad_token = loaded.eos_token
    return loaded


_PACKED: OrderedDict[str, np.ndarray] = OrderedDict()  # the last few packings (epochs re-read them)
PACK_CACHE = 8


@register_task("causal-lm")
class CausalLM(Task):
    name = "causal-lm"
    Config = CausalLMConfig
    summary = "next-token prediction on a corpus packed with the model's own tokenizer; perplexity, KL, agreement"
    data_kind: ClassVar[DataKind] = "text"
    input_names = ("input_ids",)
    metrics: ClassVar[tuple[Metric, ...]] = LM_METRICS
    primary_metric: ClassVar[str] = "perplexity"
    hf_architectures = ("ForCausalLM",)
    hf_auto_class = "AutoModelForCausalLM"
    capabilities = frozenset({"students-by-layers", "hf-causal-lm"})
    evaluated_in: ClassVar[Literal["onnx", "torch"]] = "torch"
    registered_build: ClassVar[str] = "huggingface"
    labelled: ClassVar[bool] = False
    monitor: ClassVar[Literal["accuracy", "loss"]] = "loss"
    sized_splits: ClassVar[bool] = True

    config: CausalLMConfig

    @classmethod
    def dynamic_metric(cls, name: str) -> Metric | None:
        return task_metric(name)

    @classmethod
    def configured_metrics(cls, config: TaskConfig) -> tuple[Metric, ...]:
        assert isinstance(config, CausalLMConfig)
        made = [task_metric(name) for task in config.tasks for name in task.metric_names()]
        return (*cls.metrics, *(m for m in made if m is not None))

    # --- checks before the model loads ------------------------------------------------------

    @classmethod
    def source_problems(cls, config: TaskConfig, source: Any) -> list[str]:
        try:
            hf_config = source.facts().hf_config
        except Error:
            return []  # the source reports its own unreadable config
        limit, key = context_length(hf_config or {})
        if limit is None:
            return []
        assert isinstance(config, CausalLMConfig)
        return [f"model.task.{field}: {value} is beyond the model's context of {limit} tokens ({key})"
                for field, value in (("max_length", config.max_length), ("latency_length", config.latency_length))
                if value > limit]

    def fit_splits(self, frame: pd.DataFrame, split: Split) -> pd.DataFrame:
        return fit_corpus_splits(frame, split, self.tokenizer, self.config.max_length)

    def split_sizes(self, frame: pd.DataFrame) -> dict[str, int]:
        return corpus_sizes(frame, self._packed, self.config.max_length)

    def check_data(self, frame: pd.DataFrame) -> None:
        """Calibration and eval must each give at least one full sequence (packed on their own)."""
        for split in ("eval", "calibration"):
            part = frame[frame["split"] == split]
            if len(part):
                self._packed(part, where=f"data: split {split!r}")

    # --- data → batches -------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return tokenizer(self.spec.tokenizer)

    def preprocessor(self) -> Any:
        return self.tokenizer

    def _packed(self, frame: pd.DataFrame, where: str | None = None) -> np.ndarray:
        texts = frame["text"].tolist()
        key = hashlib.sha256("\x00".join([str(self.spec.tokenizer), str(self.config.max_length), *texts])
                             .encode()).hexdigest()
        if key not in _PACKED:
            _PACKED[key] = pack_documents(texts, self.tokenizer, self.config.max_length,
                                          where=where or f"{len(texts)} documents")
            while len(_PACKED) > PACK_CACHE:
                _PACKED.popitem(last=False)
        _PACKED.move_to_end(key)
        return _PACKED[key]

    def encode(self, frame: pd.DataFrame) -> Batch:
        return {"input_ids": self._packed(frame)}

    def batches(self, frame: pd.DataFrame, batch_size: int, shuffle: bool = False,
                seed: int = 0) -> Iterator[tuple[Batch, np.ndarray]]:
        import numpy as np

        sequences = self._packed(frame)
        order = np.random.default_rng(seed).permutation(len(sequences)) if shuffle else np.arange(len(sequences))
        for start in range(0, len(order), batch_size):
            chunk = sequences[order[start:start + batch_size]]
            yield {"input_ids": chunk}, chunk.copy()  # the labels are the ids, shifted by the loss

    def batch_count(self, frame: pd.DataFrame, batch_size: int) -> int:
        return math.ceil(len(self._packed(frame)) / batch_size)

    def example(self, frame: pd.DataFrame, rows: int = 2) -> Batch:
        return {"input_ids": self._packed(frame)[:rows]}

    def timing_batch(self, frame: pd.DataFrame, batch_size: int) -> Batch:
        """``latency_batch`` x ``latency_length`` ids (the config's, whatever ``batch_size`` asks)."""

        rows, length = self.config.latency_batch, self.config.latency_length
        sequences = self._packed(frame)
        if len(sequences) >= rows and sequences.shape[1] >= length:
            return {"input_ids": sequences[:rows, :length].copy()}
        return {"input_ids": prefill_ids(rows, length, len(self.tokenizer)).numpy()}

    # --- model outputs ----------------------------------------------------------------------

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the last ``fidelity_positions`` positions (what calibration compares)."""
        import torch

        ids = torch.as_tensor(batch["input_ids"])
        logits = split_outputs(model(input_ids=ids, use_cache=False))[0][:, -self.config.fidelity_positions:]
        return logits, logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return next_token_loss(logits, labels)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
        """Next-token top-1 accuracy: position t predicts token t + 1."""
        targets = labels[:, 1:]
        return int((logits[:, :-1].argmax(-1) == targets).sum()), targets.numel()

    def distill_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                     labels: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
        """Token-level KD: every position's next-token distribution, and the next tokens."""

        if teacher_logits is None:  # alpha = 0: the next tokens alone
            return self.loss(student_logits, labels)
        return causal_lm_kd_loss(student_logits, teacher_logits, labels, None, temperature, alpha)

    def protected_modules(self, model: nn.Module) -> dict[str, str]:
        """The LM head when it is the input embedding table (tied): changing it changes both; and
        an MoE's routers, which decide which experts run (vLLM and llama.cpp keep them float)."""
        protected = _moe_routers(model)
        head = _output_embeddings(model)
        embeddings = _input_embeddings(model)
        if head is None or embeddings is None or head.weight.data_ptr() != embeddings.weight.data_ptr():
            return protected
        name = next((n for n, m in model.named_modules() if m is head), "lm_head")
        return {**protected, name: "its weight is the input embedding table (tied embeddings)"}

    def head_modules(self, model: nn.Module) -> list[str]:
        return []  # LoRA adapts the block projections; nothing is trained in full

    def check_model(self, model: nn.Module, frame: pd.DataFrame, where: str) -> None:
        """The model must take the packed ids: context long enough, a vocabulary for every id."""
        import torch

        limit, key = context_length(getattr(model, "config", None) or {})
        if limit is not None and self.config.max_length > limit:
            raise ModelpressError(f"model.task.max_length: {self.config.max_length} is beyond {where}'s "
                                  f"context of {limit} tokens ({key})")
        ids = torch.as_tensor(self.example(frame, 1)["input_ids"])
        try:
            with torch.inference_mode():
                logits = split_outputs(model.eval()(input_ids=ids, use_cache=False))[0]
        except Exception as exc:  # noqa: BLE001 -- the user's model meeting our inputs
            raise ModelpressError(f"{where}: the model fails on token ids of shape {tuple(ids.shape)}: "
                                  f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
        if logits.shape[-1] < len(self.tokenizer):
            raise ModelpressError(f"{where}: the model predicts {logits.shape[-1]} tokens but its tokenizer "
                                  f"has {len(self.tokenizer)}; the tokenizer is not this model's")

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, baseline: nn.Module, candidate: nn.Module, eval_frame: pd.DataFrame) -> Evaluation:
        """Both models on the same eval tokens; speed timed interleaved (same machine noise)."""

        cfg = self.config
        sequences = self._packed(eval_frame, where="data: split 'eval'")[: cfg.eval_sequences]
        per_sequence = compare_sequences(baseline, candidate, sequences, batch_size=cfg.eval_batch_size)
        quality = per_sequence.quality()
        models = {"baseline": baseline, "candidate": candidate}
        speed, runtimes = self._speed(models, eval_frame)
        base = {"perplexity": quality.baseline_perplexity, "kl": 0.0, "agreement": 1.0,
                "size_mb": size_mb(baseline), **speed["baseline"], "eval_tokens": float(quality.tokens)}
        cand = {"perplexity": quality.perplexity, "kl": quality.kl, "agreement": quality.agreement,
                "size_mb": size_mb(candidate), **speed["candidate"], "eval_tokens": float(quality.tokens)}
        tasks = score_tasks(cfg.tasks, baseline, candidate, self.tokenizer, cfg.max_length)
        base.update(tasks.baseline)
        cand.update(tasks.candidate)
        examples = []
        if cfg.prompts and cfg.continuation_tokens:
            rows = side_by_side(baseline, candidate, self.tokenizer, cfg.prompts, cfg.continuation_tokens, cfg.chat)
            examples = [Example(input=r.prompt, baseline=r.baseline, candidate=r.candidate, same=r.same)
                        for r in rows]
        return Evaluation(task=self.name, eval_rows=len(eval_frame), baseline=base, candidate=cand,
                          examples=examples, examples_title=f"continuations (greedy, {cfg.continuation_tokens} tokens)",
                          samples={**per_sequence.samples(), **tasks.samples}, runtimes=runtimes)

    def _speed(self, models: dict[str, nn.Module],
               eval_frame: pd.DataFrame) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Speed and peak memory of each model as it ships (``lm.runtime``), with its runtime's label."""
        import torch

        ids = torch.as_tensor(self.timing_batch(eval_frame, self.config.latency_batch)["input_ids"])
        prompt = ids[:1, :DECODE_PROMPT_TOKENS]
        shipped = {name: as_shipped(model, ids) for name, model in models.items()}
        runtimes = {name: label for name, (_, label) in shipped.items()}
        models = {name: model for name, (model, _) in shipped.items()}
        latency = _interleaved(models, lambda m: latency_ms(m, ids, repeats=1, warmup=0))
        decode = _interleaved(models, lambda m: tokens_per_s(m, prompt, self.config.decode_tokens))
        return {name: {"latency_ms": latency[name], "tokens_per_s": decode[name],
                       "peak_memory_mb": peak_memory_mb(model, ids)} for name, model in models.items()}, runtimes


def _interleaved(models: dict[str, nn.Module], measure: Callable[[nn.Module], float],
                 rounds: int = TIMING_ROUNDS) -> dict[str, float]:
    """Median of ``rounds`` measurements per model, alternating models each round (after one
    warm-up each), so machine noise hits both alike."""
    for model in models.values():
        measure(model)
    samples: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            samples[name].append(measure(model))
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_memory_mb(model: nn.Module, input_ids: torch.Tensor) -> float:
    """The model's tensors plus the peak extra memory of one prefill forward of ``input_ids``
    (the process's resident high-water mark above its resident size, or the GPU allocator's)."""
    import torch

    device = next(iter(model.parameters())).device
    before = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mb()
    with PeakMemory(device) as peak, torch.inference_mode():
        model(input_ids=input_ids.to(device), use_cache=False)
    extra = peak.mb - before if peak.reset else 0.0  # a lifetime peak would say nothing of this model
    return size_mb(model) + max(extra, 0.0)


def context_length(config: Any) -> tuple[int | None, str]:
    """(longest sequence a Hugging Face config takes, the key that says it), from a dict or a config."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    for key in CONTEXT_KEYS:
        value = get(key, None)
        if isinstance(value, int) and value > 0:
            return value, key
    return None, ""


def _moe_routers(model: nn.Module) -> dict[str, str]:
    """Each MoE block's router, found by structure rather than by name: the Linear beside a block's
    ``experts`` that gives one logit per expert (Mixtral's ``block_sparse_moe.gate``, Qwen2-MoE's
    ``mlp.gate``)."""
    from torch import nn

    found = {}
    for name, module in model.named_modules():
        experts = getattr(module, "experts", None)
        if not isinstance(experts, nn.ModuleList):
            continue
        for child, layer in module.named_children():
            if isinstance(layer, nn.Linear) and layer.out_features == len(experts):
                found[f"{name}.{child}"] = (f"it routes each token to {len(experts)} experts (an MoE router: "
                                            "vLLM and llama.cpp read it in float)")
    return found


def _output_embeddings(model: nn.Module) -> Any:
    get = getattr(model, "get_output_embeddings", None)  # a Hugging Face model's; plain modules lack it
    head = get() if callable(get) else None
    return head if head is not None and hasattr(head, "weight") else None


def _input_embeddings(model: nn.Module) -> Any:
    get = getattr(model, "get_input_embeddings", None)
    return get() if callable(get) else None
