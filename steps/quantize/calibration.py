"""Calibration batches from the recipe's calibration split, checked before anything is computed.

NaN/inf in calibration inputs (or activations they produce) would silently give NaN scales and a
model that outputs garbage; we refuse early, naming the split and where the values appeared, so
nothing half-quantized is ever returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.core.quiet import progress_bar

if TYPE_CHECKING:
    import numpy as np

    from modelpress.steps.quantize.config import Calibration
    from modelpress.tasks import Batch
    from modelpress.tasks.context import StageContext


class CalibrationError(ModelpressError):
    """The calibration data cannot calibrate (missing, or NaN/inf)."""


def calibration_batches(context: StageContext, cfg: Calibration, stage: str) -> list[Batch]:
    """Up to ``cfg.samples`` calibration rows as task batches (finite, non-empty)."""
    frame = context.calibration
    if len(frame) == 0:
        raise CalibrationError(f"{stage}.calibration: the recipe's data has no calibration rows "
                               "(data.split.calibration)")
    # Encode all rows at once so every batch has the same shape (text padded to the longest
    # calibration row): ORT's histogram calibrators (percentile, entropy) stack batches.
    # ``samples`` counts the task's inputs (rows; packed sequences for a causal LM).
    encoded = context.task.example(frame, cfg.samples)
    rows = len(next(iter(encoded.values())))
    batches = [{k: v[i:i + cfg.batch_size] for k, v in encoded.items()} for i in range(0, rows, cfg.batch_size)]
    for i, batch in enumerate(batches):
        check_finite(batch, f"{stage}.calibration: input batch {i}")
    return batches


def check_finite(arrays: dict[str, np.ndarray] | Any, where: str) -> None:
    import numpy as np

    items = arrays.items() if isinstance(arrays, dict) else [("value", arrays)]
    for name, value in items:
        value = np.asarray(value.detach().float().numpy() if hasattr(value, "detach") else value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise CalibrationError(f"{where}: {name!r} has {bad} NaN/inf value(s); calibration needs "
                                   "finite data (nothing was quantized)")


def progress(items: list, enabled: bool, desc: str, unit: str = "batch") -> Iterator:
    return iter(progress_bar(items, desc=desc, unit=unit, enabled=enabled))
