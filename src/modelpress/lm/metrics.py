"""Baseline vs candidate on the same eval tokens, plus the footprint and speed of one model.

Quality (``compare``): every predicted position t (token t + 1 of each packed sequence) counts
once, for both models alike:

* ``perplexity`` = exp(total negative log-likelihood / predicted tokens), token-weighted;
* ``kl`` = mean over positions of KL(p_baseline || p_candidate) over the whole vocabulary;
* ``agreement`` = share of positions where both models' top-1 next token is the same.

Memory: full-vocabulary logits of every eval token would not fit (8k tokens x 49k vocabulary
in fp32 is 1.6 GB per model), so the models run ``batch_size`` sequences at a time and the two
logit blocks are compared ``chunk_tokens`` positions at a time; the baseline runs once per batch
however many candidates are compared.

Written here rather than taken from a library: lm-eval / evaluate compute perplexity of one
model, not the per-token KL and agreement of two models on the same tokens.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, computed_field

from modelpress.core.metric import Metric
from modelpress.core.quiet import progress_bar

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

#: What a causal-LM task measures (``Task.metrics``), in the order the summary prints them.
LM_METRICS = (
    Metric("perplexity", "perplexity", False, 1.0, math.inf, "{:.3f}"),
    Metric("kl", "KL(baseline || candidate) per token", False, 0.0, math.inf),
    Metric("agreement", "next-token top-1 agreement", True, 0.0, 1.0),
    Metric("size_mb", "size (MB)", False, fmt="{:.2f}"),
    Metric("latency_ms", "prefill latency (ms)", False, fmt="{:.2f}"),
    Metric("tokens_per_s", "greedy decode (tokens/s)", True, fmt="{:.1f}"),
    Metric("peak_memory_mb", "peak memory (MB)", False, fmt="{:.1f}"),
)


class LMQuality(BaseModel):
    """One candidate against the baseline on the same eval tokens (JSON-able)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens: int
    baseline_perplexity: float
    perplexity: float
    kl: float
    agreement: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def perplexity_ratio(self) -> float:
        return self.perplexity / self.baseline_perplexity


@dataclass
class _Sums:
    nll: float = 0.0
    kl: float = 0.0
    agree: int = 0


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a forward output: a Hugging Face ``ModelOutput``, a tuple or a tensor."""
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = output[0] if isinstance(output, (tuple, list)) else output
    return logits


def sequence_batches(sequences: np.ndarray | torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    import torch

    ids = torch.as_tensor(sequences, dtype=torch.long)
    if ids.dim() != 2 or ids.shape[1] < 2:
        raise ValueError(f"eval sequences must be [n, length >= 2] token ids, got {tuple(ids.shape)}")
    yield from ids.split(batch_size)


def _forward_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits of the predicting positions, flattened to [tokens, vocab]."""
    device = _device_of(model)
    logits = logits_of(model(input_ids=ids.to(device), use_cache=False))
    return logits[:, :-1].reshape(-1, logits.shape[-1])


def compare_many(baseline: nn.Module, candidates: Mapping[str, nn.Module], sequences: Any,
                 batch_size: int = 2, chunk_tokens: int = 512,
                 progress: bool = False) -> dict[str, LMQuality]:
    """``LMQuality`` of each candidate vs ``baseline`` on ``sequences`` ([n, length] token ids).

    Holds (1 + candidates) x batch_size x length x vocabulary logits at a time.
    """
    import torch

    base, sums = _Sums(), {name: _Sums() for name in candidates}
    tokens = 0
    models = [baseline, *candidates.values()]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.inference_mode():
            batches = list(sequence_batches(sequences, batch_size))
            for ids in progress_bar(batches, desc="compare", enabled=progress):
                targets = ids[:, 1:].reshape(-1)
                ref = _forward_logits(baseline, ids)
                outs = {name: _forward_logits(m, ids).to(ref.device) for name, m in candidates.items()}
                _accumulate(ref, outs, targets.to(ref.device), chunk_tokens, base, sums)
                tokens += targets.numel()
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    base_ppl = math.exp(base.nll / tokens)
    return {name: LMQuality(tokens=tokens, baseline_perplexity=base_ppl, perplexity=math.exp(s.nll / tokens),
                            kl=s.kl / tokens, agreement=s.agree / tokens) for name, s in sums.items()}


def compare(baseline: nn.Module, candidate: nn.Module, sequences: Any, batch_size: int = 2,
            chunk_tokens: int = 512) -> LMQuality:
    return compare_many(baseline, {"candidate": candidate}, sequences, batch_size, chunk_tokens)["candidate"]


def perplexity(model: nn.Module, sequences: Any, batch_size: int = 2, chunk_tokens: int = 512) -> float:
    """Token-weighted perplexity of one model (the baseline side of ``compare``)."""
    import torch

    base, tokens = _Sums(), 0
    with torch.inference_mode():
        for ids in sequence_batches(sequences, batch_size):
            ref = _forward_logits(model, ids)
            targets = ids[:, 1:].reshape(-1).to(ref.device)
            _accumulate(ref, {}, targets, chunk_tokens, base, {})
            tokens += targets.numel()
    return math.exp(base.nll / tokens)


def _accumulate(ref: torch.Tensor, candidates: dict[str, torch.Tensor], targets: torch.Tensor, chunk: int,
                base: _Sums, sums: dict[str, _Sums]) -> None:
    """Add one batch's sums, ``chunk`` positions at a time (log-softmax temporaries stay small)."""
    import torch

    for start in range(0, len(targets), chunk):
        stop = start + chunk
        target = targets[start:stop, None]
        log_p = torch.log_softmax(ref[start:stop].float(), -1)
        base.nll -= float(log_p.gather(1, target).double().sum())
        top_p = log_p.argmax(-1)
        for name, logits in candidates.items():
            log_q = torch.log_softmax(logits[start:stop].float(), -1)
            s = sums[name]
            s.nll -= float(log_q.gather(1, target).double().sum())
            s.kl += float((log_p.exp() * (log_p - log_q)).sum(-1).double().sum())
            s.agree += int((top_p == log_q.argmax(-1)).sum())


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of predicting token t + 1 at position t (the LM training loss)."""
    import torch.nn.functional as F

    targets = input_ids[:, 1:]
    if attention_mask is not None:
        targets = targets.masked_fill(attention_mask[:, 1:] == 0, -100)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=-100)


# ----------------------------------------------------------------------------- footprint and speed
def size_mb(model: nn.Module) -> float:
    """Bytes of the model's tensors (parameters and buffers) in MB; packed integer weights count
    at their packed size, a tensor shared by two modules (tied embeddings) once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        key = (tensor.data_ptr(), tensor.numel())
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total / 1e6


def _device_of(model: nn.Module) -> torch.device:
    import torch

    first: torch.Tensor | None = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def prefill_ids(batch: int, length: int, vocab_size: int, seed: int = 0) -> torch.Tensor:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, length), generator=generator)


def latency_ms(model: nn.Module, input_ids: torch.Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time (ms) of one prefill forward of ``input_ids`` (fixed batch x length)."""
    import torch

    device = _device_of(model)
    ids = input_ids.to(device)
    with torch.inference_mode():
        times = [_timed(lambda: model(input_ids=ids, use_cache=False), device)
                 for _ in range(warmup + repeats)]
    return statistics.median(times[warmup:]) * 1e3


def greedy_decode(model: nn.Module, input_ids: torch.Tensor, new_tokens: int,
                  eos_token_id: int | None = None) -> torch.Tensor:
    """``input_ids`` + up to ``new_tokens`` greedy tokens, one forward per token with the KV cache
    (stops early when every row has produced ``eos_token_id``)."""
    import torch

    device = _device_of(model)
    ids = input_ids.to(device)
    done = torch.zeros(len(ids), dtype=torch.bool, device=device)
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
        for _ in range(new_tokens):
            step = logits_of(out)[:, -1].argmax(-1)
            if eos_token_id is not None:
                step = step.masked_fill(done, eos_token_id)
                done |= step == eos_token_id
            ids = torch.cat([ids, step[:, None]], 1)
            if bool(done.all()):
                break
            out = model(input_ids=step[:, None], past_key_values=out.past_key_values, use_cache=True)
    return ids


def tokens_per_s(model: nn.Module, prompt_ids: torch.Tensor, new_tokens: int = 32) -> float:
    """Greedy decode throughput (generated tokens per second over all rows, prefill excluded)."""
    import torch

    device = _device_of(model)
    ids = prompt_ids.to(device)
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
        step = logits_of(out)[:, -1:].argmax(-1)
        state: dict[str, Any] = {"out": out, "step": step}

        def decode() -> None:
            for _ in range(new_tokens):
                state["out"] = model(input_ids=state["step"], past_key_values=state["out"].past_key_values,
                                     use_cache=True)
                state["step"] = logits_of(state["out"])[:, -1:].argmax(-1)

        seconds = _timed(decode, device)
    return len(ids) * new_tokens / max(seconds, 1e-9)


class PeakMemory:
    """Peak memory (MB) inside a ``with`` block: the GPU's allocator peak on CUDA, else the
    process's resident high-water mark (VmHWM), reset at entry through /proc/self/clear_refs
    where the kernel allows it (otherwise the process's lifetime peak, said by ``reset``)."""

    def __init__(self, device: str | torch.device = "cpu"):
        import torch

        self.device = torch.device(device)
        self.mb = 0.0
        self.reset = False

    def __enter__(self) -> Self:
        import torch

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.reset = True
        else:
            self.reset = reset_rss_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = rss_peak_mb()


def rss_peak_mb() -> float:
    """This process's resident high-water mark (VmHWM) in MiB."""
    import resource

    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident size now (VmRSS) in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def reset_rss_peak() -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False
