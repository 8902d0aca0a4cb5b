"""Paired intervals with known answers: identical models, a clear loss, a too-small eval split,
coverage by simulation, and each statistic recomputed as the evaluation computes it."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.core.handoffs import Samples
from modelpress.core.intervals import paired_interval, point, rows_needed, smallest_detectable


def drop(cand: float, base: float) -> float:
    return base - cand


def accuracy_rows(rows: int, right: int, lost: int, gained: int, seed: int = 0) -> Samples:
    """Baseline right on ``right`` rows; the candidate loses ``lost`` of them and gains ``gained``."""
    rng = np.random.default_rng(seed)
    base = np.zeros(rows)
    base[:right] = 1
    cand = base.copy()
    cand[:lost] = 0
    cand[right:right + gained] = 1
    order = rng.permutation(rows)
    return Samples(statistic="mean", baseline=base[order].tolist(), candidate=cand[order].tolist())


def test_identical_models_give_an_interval_of_zero() -> None:
    interval = paired_interval(accuracy_rows(500, 420, 0, 0), drop)
    assert interval.contains(0.0) and interval.low == interval.high == 0.0


def test_three_points_worse_on_2000_rows_is_clearly_beyond_one_point() -> None:
    interval = paired_interval(accuracy_rows(2000, 1800, 80, 20), drop)
    assert interval.estimate == pytest.approx(0.03)
    assert interval.low > 0.01  # the whole interval is beyond max_drop 0.01


def test_one_point_on_200_rows_straddles_and_says_how_many_rows_would_resolve_it() -> None:
    interval = paired_interval(accuracy_rows(200, 180, 3, 1), drop)
    assert interval.estimate == pytest.approx(0.01)
    assert interval.low < 0.02 < interval.high
    needed = rows_needed(interval, 0.02)
    # normal approximation by hand: se = √((4/200 − 0.01²)/200) ≈ 0.00997, z = 1.96, gap 0.01
    assert needed is not None and 650 < needed < 900
    assert rows_needed(interval, 0.01) is None  # the estimate sits on the bound


def test_coverage_by_simulation() -> None:
    """200 seeded draws of 300 rows from a known paired population: the 95 % interval holds the
    true difference in at least 93 % of them."""
    rng = np.random.default_rng(1)
    # per row: (baseline right, candidate right) with these probabilities
    outcomes = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    probs = np.array([0.80, 0.07, 0.03, 0.10])
    truth = (probs[0] + probs[1]) - (probs[0] + probs[2])  # 0.04
    covered = 0
    for draw in range(200):
        rows = outcomes[rng.choice(4, size=300, p=probs)]
        samples = Samples(statistic="mean", baseline=rows[:, 0].tolist(), candidate=rows[:, 1].tolist())
        covered += paired_interval(samples, drop, resamples=1000, seed=draw).contains(truth)
    assert covered >= 186, f"coverage {covered / 200:.1%}"


def test_statistics_match_their_definitions() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 100)
    base = np.where(rng.random(100) < 0.8, labels, rng.integers(0, 3, 100))
    cand = np.where(rng.random(100) < 0.7, labels, rng.integers(0, 3, 100))
    f1 = Samples(statistic="macro_f1", baseline=base.tolist(), candidate=cand.tolist(), labels=labels.tolist())
    expected = (f1_score(labels, base, average="macro"), f1_score(labels, cand, average="macro"))
    assert point(f1) == pytest.approx(expected)
    ppl = Samples(statistic="exp_ratio", baseline=[2.0, 4.0], candidate=[3.0, 3.0], weights=[1.0, 3.0])
    assert point(ppl) == pytest.approx((np.exp(6 / 4), np.exp(6 / 4)))
    latency = Samples(statistic="median", baseline=[1.0, 2.0, 9.0], candidate=[1.0, 1.0, 5.0])
    ratio = paired_interval(latency, lambda c, b: c / b)
    assert ratio.estimate == pytest.approx(0.5) and ratio.low <= 0.5 <= ratio.high


def test_the_bootstrap_is_seeded() -> None:
    samples = accuracy_rows(300, 250, 10, 4)
    assert paired_interval(samples, drop, seed=3) == paired_interval(samples, drop, seed=3)


def test_unpaired_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="not paired"):
        paired_interval(Samples(statistic="mean", baseline=[1.0, 0.0], candidate=[1.0]), drop)


def test_smallest_detectable_difference() -> None:
    assert smallest_detectable(600) == pytest.approx(1.959964 * 0.5 / 600 ** 0.5)
    assert smallest_detectable(600, p=0.9) < smallest_detectable(600)
