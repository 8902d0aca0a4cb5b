"""Parameter counts, serialized size and eager latency, before and after a compression stage."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from modelpress.tasks.evaluation import interleaved_latency, torch_runner

if TYPE_CHECKING:
    from torch import nn

    from modelpress.tasks.context import StageContext


def footprint(model: nn.Module, when: str) -> dict[str, float]:
    import torch

    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {
        f"params_{when}": params,
        f"params_nonzero_{when}": nonzero,
        f"size_mb_{when}": round(buffer.tell() / 1e6, 4),
    }


def latency_report(
    before: nn.Module, after: nn.Module, context: StageContext, batch_size: int = 32
) -> dict[str, float]:
    """Eager PyTorch latency of one fixed-shape batch, both models interleaved (same noise)."""

    frame = next(
        (context.split(s) for s in ("eval", "calibration", "train") if len(context.split(s))), None
    )
    if frame is None:
        return {}
    batch = context.task.timing_batch(frame, batch_size)
    runs = {"before": torch_runner(before, context.task), "after": torch_runner(after, context.task)}
    timing = interleaved_latency(runs, batch, repeats=5, warmup=1)
    ratio = timing["before"]["latency_ms"] / max(timing["after"]["latency_ms"], 1e-9)
    return {
        "latency_ms_before": round(timing["before"]["latency_ms"], 3),
        "latency_ms_after": round(timing["after"]["latency_ms"], 3),
        "speedup": round(ratio, 3),
    }
