"""Paired statistics: a metric recomputed on resampled rows, an interval on what a gate rule derives.

Every model here is scored on the same eval rows (baseline, candidate, champion), so a difference
is judged on the *paired* rows: one resample of row indices is applied to both sides at once,
which cancels the rows both models find easy or hard. The interval is the bootstrap's percentile
interval: the quantities gated (differences of means, ratios of medians, macro-F1) are nearly
symmetric on hundreds of rows, the percentile interval follows any monotone transform (a ratio's
interval is the inverse of its reciprocal's), and it needs no jackknife (BCa would recompute
macro-F1 or a median once per row); its coverage is checked by simulation in tests/gate.

Pure functions; numpy is imported inside them (``modelpress --help`` stays fast).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from modelpress.core.handoffs import Samples

#: resamples drawn per block, so memory stays at block × rows indices whatever the resample count
BLOCK = 250


@dataclass(frozen=True)
class Side:
    """One model's per-row values (with the rows' shared weights and labels), indexable by a
    (resamples, rows) matrix of row indices."""

    values: np.ndarray
    weights: np.ndarray | None
    labels: np.ndarray | None


def _mean(rows: Side, idx: np.ndarray) -> np.ndarray:
    return rows.values[idx].mean(axis=1)


def _ratio(rows: Side, idx: np.ndarray) -> np.ndarray:
    assert rows.weights is not None
    return rows.values[idx].sum(axis=1) / rows.weights[idx].sum(axis=1)


def _exp_ratio(rows: Side, idx: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.exp(_ratio(rows, idx))


def _median(rows: Side, idx: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.median(rows.values[idx], axis=1)


def _macro_f1(rows: Side, idx: np.ndarray) -> np.ndarray:
    """Macro F1 over the classes present in the resample's labels or predictions (as sklearn)."""
    import numpy as np

    assert rows.labels is not None
    predicted, truth = rows.values[idx].astype("int64"), rows.labels[idx]
    total = np.zeros(len(idx))
    present = np.zeros(len(idx))
    for c in np.union1d(np.unique(rows.values.astype("int64")), np.unique(rows.labels)):
        p, t = predicted == c, truth == c
        denominator = p.sum(axis=1) + t.sum(axis=1)
        hit = denominator > 0
        total += np.where(hit, 2 * (p & t).sum(axis=1) / np.maximum(denominator, 1), 0.0)
        present += hit
    return total / np.maximum(present, 1)


#: ``Samples.statistic`` → how the metric is computed from the rows selected by an index matrix
STATISTICS: dict[str, Callable[[Side, np.ndarray], np.ndarray]] = {
    "mean": _mean, "ratio": _ratio, "exp_ratio": _exp_ratio, "median": _median, "macro_f1": _macro_f1,
}


def sides(samples: Samples) -> tuple[Side, Side]:
    """(baseline, candidate) as arrays; one clear error when the two are not paired."""
    import numpy as np

    n = len(samples.baseline)
    if len(samples.candidate) != n or n == 0:
        raise ValueError(f"samples are not paired: {n} baseline rows, {len(samples.candidate)} candidate rows")
    weights = np.asarray(samples.weights, dtype="float64") if samples.weights is not None else None
    labels = np.asarray(samples.labels, dtype="int64") if samples.labels is not None else None
    return (Side(np.asarray(samples.baseline, dtype="float64"), weights, labels),
            Side(np.asarray(samples.candidate, dtype="float64"), weights, labels))


def point(samples: Samples) -> tuple[float, float]:
    """The metric on all rows: (baseline, candidate)."""
    import numpy as np

    base, cand = sides(samples)
    every = np.arange(len(base.values))[None, :]
    compute = STATISTICS[samples.statistic]
    return float(compute(base, every)[0]), float(compute(cand, every)[0])


@dataclass(frozen=True)
class Interval:
    """A derived quantity on all rows, its percentile interval and the bootstrap standard error."""

    estimate: float
    low: float
    high: float
    se: float
    rows: int
    level: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def paired_interval(samples: Samples, derive: Callable[[float, float], float], level: float = 0.95,
                    resamples: int = 2000, seed: int = 0) -> Interval:
    """``derive(candidate, baseline)`` (a difference, a relative drop, a ratio, or the candidate
    alone) with a seeded paired-bootstrap percentile interval at ``level``."""
    import numpy as np

    base, cand = sides(samples)
    compute = STATISTICS[samples.statistic]
    n = len(base.values)
    rng = np.random.default_rng(seed)
    derived: list[float] = []
    for start in range(0, resamples, BLOCK):
        idx = rng.integers(0, n, size=(min(BLOCK, resamples - start), n))
        derived += [derive(float(c), float(b)) for c, b in zip(compute(cand, idx), compute(base, idx), strict=True)]
    values = np.asarray(derived)
    finite = values[np.isfinite(values)]
    b, c = point(samples)
    tail = (1 - level) / 2
    if len(finite) < len(values) / 2:  # e.g. a ratio to a zero baseline on most resamples
        return Interval(derive(c, b), float("-inf"), float("inf"), float("inf"), n, level)
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Interval(derive(c, b), float(low), float(high), float(finite.std(ddof=1)), n, level)


def rows_needed(interval: Interval, bound: float) -> int | None:
    """Eval rows at which the interval would clear ``bound``, if the estimate and the per-row
    spread stay as observed: the standard error shrinks as 1/√rows (normal approximation), so
    rows = n·(z·se / |bound − estimate|)². None when the estimate sits on the bound or there is
    no spread (no row count resolves it)."""
    gap = abs(bound - interval.estimate)
    if gap <= 1e-9 * max(1.0, abs(bound)) or not math.isfinite(interval.se) or interval.se == 0:
        return None
    z = NormalDist().inv_cdf(1 - (1 - interval.level) / 2)
    return max(interval.rows + 1, math.ceil(interval.rows * (z * interval.se / gap) ** 2))


def smallest_detectable(rows: int, p: float = 0.5, level: float = 0.95) -> float:
    """Half-width of a ``level`` interval on a proportion near ``p`` measured on ``rows`` rows,
    z·√(p(1−p)/rows): a bound on an accuracy-like metric finer than this cannot be resolved
    (p = 0.5 is the worst case)."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    return z * math.sqrt(p * (1 - p) / max(rows, 1))


def smallest_resolvable_drop(rows: int, level: float = 0.95) -> float:
    """The smallest bound on a paired accuracy-like drop that ``rows`` eval rows can resolve for
    any candidate that changes predictions: one that loses half the bound with every changed row
    a loss (the least spread such a loss can have, per-row variance ≈ the loss δ) clears the bound
    only when z·√(δ/rows) ≤ bound − δ, i.e. bound ≥ 2z²/rows. A smaller bound passes only a
    candidate that changes no prediction at all."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    return 2 * z * z / max(rows, 1)
