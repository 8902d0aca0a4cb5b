"""The gate decides on paired intervals: known answers for pass, fail and inconclusive, each
``on_inconclusive`` setting, champion checks on the champion's rows, and ``statistics: none``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelpress.core.handoffs import ChampionReport, Evaluation, Samples
from modelpress.gate.rules import run_gate
from modelpress.settings.blocks import Statistics, Threshold


def accuracy_rows(rows: int, right: int, lost: int, gained: int) -> Samples:
    """Baseline right on ``right`` rows; the candidate loses ``lost`` of them and gains ``gained``."""
    base = np.zeros(rows)
    base[:right] = 1
    cand = base.copy()
    cand[:lost] = 0
    cand[right:right + gained] = 1
    order = np.random.default_rng(0).permutation(rows)
    return Samples(statistic="mean", baseline=base[order].tolist(), candidate=cand[order].tolist())


def evaluation(samples: Samples) -> Evaluation:
    base, cand = float(np.mean(samples.baseline)), float(np.mean(samples.candidate))
    return Evaluation(task="text-classification", eval_rows=len(samples.baseline),
                      baseline={"accuracy": base, "size_mb": 10.0}, candidate={"accuracy": cand, "size_mb": 2.0},
                      samples={"accuracy": samples})


DROPS = {"accuracy": Threshold(max_drop=0.0, max_relative_drop=0.0, max_ratio=1.0)}


def test_identical_models_pass_every_drop_bound_with_an_interval_holding_zero() -> None:
    verdict = run_gate(DROPS, evaluation(accuracy_rows(400, 350, 0, 0)))
    assert verdict.passed and [c.result for c in verdict.checks] == ["pass"] * 3
    drop = verdict.checks[0]
    assert drop.low is not None and drop.high is not None and drop.low <= 0.0 <= drop.high


def test_three_points_worse_on_2000_rows_fails_max_drop_one_point() -> None:
    verdict = run_gate({"accuracy": Threshold(max_drop=0.01)}, evaluation(accuracy_rows(2000, 1800, 80, 20)))
    (check,) = verdict.checks
    assert check.result == "fail" and not verdict.passed and check.value == pytest.approx(0.03)
    assert check.low is not None and check.low > 0.01 and check.rows_needed is None


@pytest.mark.parametrize("on_inconclusive, passed", [("fail", False), ("pass", True), ("warn", True)])
def test_one_point_on_200_rows_is_inconclusive_and_the_recipe_says_what_that_does(
        on_inconclusive: str, passed: bool) -> None:
    verdict = run_gate({"accuracy": Threshold(max_drop=0.02)}, evaluation(accuracy_rows(200, 180, 3, 1)),
                       statistics=Statistics(on_inconclusive=on_inconclusive))
    (check,) = verdict.checks
    assert check.result == "inconclusive" and check.passed is passed and verdict.passed is passed
    assert check.rows_needed is not None and 650 < check.rows_needed < 900  # √: se ≈ 0.00997, gap 0.01
    assert verdict.on_inconclusive == on_inconclusive and len(verdict.inconclusive) == 1
    assert "eval rows would resolve it" in verdict.inconclusive[0]
    assert ("WARNING inconclusive" in verdict.reason) is (on_inconclusive == "warn")
    assert ("INCONCLUSIVE" in verdict.reason) is (on_inconclusive != "pass")


def test_statistics_none_decides_on_point_estimates_as_before() -> None:
    # 0.9 points lost on 600 rows: the point estimate is within max_drop 0.01, the interval is not
    noisy = evaluation(accuracy_rows(600, 540, 7, 2))
    bound = {"accuracy": Threshold(max_drop=0.01), "size_mb": Threshold(max_ratio=0.3)}
    old = run_gate(bound, noisy, statistics=Statistics(method="none"))
    assert old.passed and old.reason == "all checks passed" and old.checks[0].low is None
    assert [c.model_dump(exclude={"outcome"}) for c in old.checks] == [
        {"metric": "accuracy", "rule": "max_drop", "limit": 0.01, "value": pytest.approx(5 / 600), "passed": True,
         "note": "", "low": None, "high": None, "level": None, "rows": None, "rows_needed": None},
        {"metric": "size_mb", "rule": "max_ratio", "limit": 0.3, "value": 0.2, "passed": True, "note": "",
         "low": None, "high": None, "level": None, "rows": None, "rows_needed": None}]
    new = run_gate(bound, noisy)
    assert not new.passed and new.checks[0].result == "inconclusive"
    assert new.checks[1].passed and "point estimate" in new.checks[1].note  # size: no per-row values


def test_champion_checks_use_the_champions_rows() -> None:
    champ = accuracy_rows(2000, 1800, 80, 20)  # baseline = the champion, 3 points better
    report = ChampionReport(version="4", metrics={"accuracy": 0.9}, candidate={"accuracy": 0.87},
                            samples={"accuracy": champ})
    verdict = run_gate({"accuracy": Threshold(max_champion_drop=0.01)}, evaluation(accuracy_rows(50, 40, 0, 0)),
                       report)
    (check,) = verdict.checks
    assert check.result == "fail" and check.rows == 2000 and check.low is not None and check.low > 0.01


def test_a_latency_ratio_is_judged_on_interleaved_rounds() -> None:
    rng = np.random.default_rng(0)
    base = 10 + rng.normal(0, 1, 40)
    cand_rounds = 0.5 * base + rng.normal(0, 0.2, 40)
    timing = Samples(statistic="median", baseline=base.tolist(), candidate=cand_rounds.tolist())
    metrics = {"latency_ms": float(np.median(base))}
    cand = {"latency_ms": float(np.median(timing.candidate))}
    ev = Evaluation(task="text-classification", eval_rows=40, baseline=metrics, candidate=cand,
                    samples={"latency_ms": timing})
    assert run_gate({"latency_ms": Threshold(max_ratio=0.6)}, ev).checks[0].result == "pass"
    assert run_gate({"latency_ms": Threshold(max_ratio=0.4)}, ev).checks[0].result == "fail"


def test_a_classifier_evaluation_keeps_the_rows_behind_its_metrics(digits: Any) -> None:
    """Real ONNX models on digits: each metric recomputed from its samples is the metric, and an
    identical candidate passes every drop bound on its intervals."""
    from modelpress.core.intervals import point
    from modelpress.deploy.onnx_export import export_onnx

    from .conftest import linear_model

    frame, task = digits
    weak, strong = (export_onnx(linear_model(frame, task, steps), task, frame) for steps in (3, 40))
    evaluation = task.evaluate(strong, weak, frame)
    assert set(evaluation.samples) == {"accuracy", "f1", "agreement", "cosine", "latency_ms"}
    for metric, samples in evaluation.samples.items():
        assert point(samples) == pytest.approx((evaluation.baseline[metric], evaluation.candidate[metric])), metric
    assert len(evaluation.samples["accuracy"].candidate) == len(frame)
    assert len(evaluation.samples["latency_ms"].candidate) >= 20  # interleaved rounds
    same = task.evaluate(strong, strong, frame)
    verdict = run_gate({"accuracy": Threshold(max_drop=0.0), "f1": Threshold(max_drop=0.0),
                        "agreement": Threshold(min=1.0)}, same)
    assert verdict.passed and all(c.low is not None for c in verdict.checks)


def search_rows(gap_rows: int) -> tuple[list[dict], dict[int, dict[str, Samples]]]:
    """Two candidates of equal size on 2000 rows; #1 is right on ``gap_rows`` more rows than #0
    (wrong on 10 rows #0 gets right, right on 10 + gap_rows that #0 gets wrong) and slower."""
    right = np.zeros(2000)
    right[:1600] = 1
    better = right.copy()
    better[:10] = 0
    better[1600:1610 + gap_rows] = 1
    rows = [{"index": 0, "size_mb": 1.0, "latency_ms": 2.0, "accuracy": 0.8},
            {"index": 1, "size_mb": 1.0, "latency_ms": 3.0, "accuracy": 0.8 + gap_rows / 2000}]
    ones = [1.0] * 2000
    samples = {0: {"accuracy": Samples(statistic="mean", baseline=ones, candidate=right.tolist())},
               1: {"accuracy": Samples(statistic="mean", baseline=ones, candidate=better.tolist())}}
    return rows, samples


@pytest.mark.parametrize("gap_rows, method, chosen", [
    (4, "paired-bootstrap", 0),   # 0.2 points: within noise, a tie, and the faster one wins
    (4, "none", 1),               # point estimates: any gain wins, as before intervals
    (200, "paired-bootstrap", 1),  # 10 points: clearly better
])
def test_search_calls_a_candidate_better_only_when_the_interval_says_so(gap_rows: int, method: str,
                                                                        chosen: int) -> None:
    from modelpress.settings.search import best_candidate

    rows, samples = search_rows(gap_rows)
    best = best_candidate(rows, samples, "size_mb", "accuracy", True, Statistics(method=method))
    assert best is not None and best["index"] == chosen


def test_promotion_needs_the_paired_interval_within_tolerance() -> None:
    from modelpress.gate.rules import promotion_check

    def report(lost: int, gained: int) -> ChampionReport:
        rows = accuracy_rows(1000, 800, lost, gained)
        return ChampionReport(version="2", metrics={"accuracy": float(np.mean(rows.baseline))},
                              candidate={"accuracy": float(np.mean(rows.candidate))}, samples={"accuracy": rows})

    assert promotion_check("accuracy", True, report(0, 0), 0.0).result == "pass"  # same predictions
    noisy = promotion_check("accuracy", True, report(6, 8), 0.0)  # 0.2 points better: noise
    assert noisy.result == "inconclusive" and not noisy.passed
    assert promotion_check("accuracy", True, report(6, 8), 0.0, Statistics(method="none")).passed
    assert promotion_check("accuracy", True, report(40, 5), 0.01).result == "fail"
    assert promotion_check("accuracy", True, report(6, 8), 0.02).result == "pass"


@pytest.mark.parametrize("max_drop, warned", [(0.01, True), (0.02, False), (0.05, False)])
def test_validate_warns_when_the_eval_split_cannot_resolve_a_drop_bound(tmp_path: Any, max_drop: float,
                                                                        warned: bool) -> None:
    """digits: 1,797 rows, eval 0.25 → 449 rows; resolvable drops are ≥ 2·1.96²/449 ≈ 0.0171."""
    from click.testing import CliRunner

    from modelpress.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: digits-res\nmodel: {source: package, name: small-cnn}\n"
        "data: {source: digits, split: {train: 0.75, eval: 0.25, calibration: 64}}\n"
        f"stages: [quantize]\ngate: {{accuracy: {{max_drop: {max_drop}}}}}\nregistry: {{name: digits-res}}\n")
    result = CliRunner().invoke(main, ["validate", str(recipe)])
    assert result.exit_code == 0, result.output
    assert ("warning: gate.accuracy.max_drop" in result.output) is warned, result.output
    if warned:
        assert "449 eval rows" in result.output and "0.0171" in result.output and "769 rows" in result.output


def test_the_gate_report_draws_each_checks_interval_and_bound() -> None:
    from modelpress.gate.report import render_gate
    from modelpress.tasks import get_task

    ev = evaluation(accuracy_rows(200, 180, 3, 1))
    verdict = run_gate({"accuracy": Threshold(max_drop=0.02), "size_mb": Threshold(max_ratio=0.3)}, ev)
    page, _ = render_gate(get_task("text-classification"), ev, verdict, None)
    assert page.count("<svg class='interval'") == 2  # one per check (the size check: its dot and bound)
    assert "stroke-width='4'" in page  # the accuracy check's interval bar
    assert "INCONCLUSIVE" in page and "eval rows would resolve it" in page and "id='inconclusive'" in page
    assert "point estimate: no per-row values of size_mb" in page
