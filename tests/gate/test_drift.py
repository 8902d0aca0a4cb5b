"""Fresh data against the reference profile: a generated great-expectations suite."""

from __future__ import annotations

from typing import Any

import pytest

from modelpress.core.errors import DataValidationError
from modelpress.datasets.profile import data_profile
from modelpress.datasets.shipped import SHIPPED
from modelpress.datasets.validation import check_against_profile

DRIFT = {"max_label_kl": 0.1, "max_mean_shift": 0.5, "max_out_of_range": 0.01}


@pytest.fixture(scope="module")
def halves() -> tuple[Any, Any]:
    frame = SHIPPED["digits"].load().sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame.iloc[:900], frame.iloc[900:].reset_index(drop=True)


def test_fresh_data_like_the_reference_passes_and_the_suite_is_kept(halves: Any) -> None:
    reference, fresh = halves
    report = check_against_profile(fresh, data_profile(reference), DRIFT)
    assert report["success"] and report["expectations"] == 7
    names = [e["type"] for suite in report["suites"] for e in suite["expectations"]]
    assert "expect_column_kl_divergence_to_be_less_than" in names  # generated, saved with the run


@pytest.mark.parametrize("damage, expected", [
    (lambda f: f.assign(label=f["label"] % 5), "label balance: KL divergence from the reference"),
    (lambda f: f.assign(f10=float("nan")), "no missing values"),
    (lambda f: f.assign(**{c: f[c] * 1.8 for c in f.columns if c.startswith("f")}),
     "share of values outside the reference ranges"),
    (lambda f: f.assign(extra=1.0), "columns differ: {'unexpected': ['extra']}"),
])
def test_drift_stops_with_a_readable_report(halves: Any, damage: Any, expected: str) -> None:
    reference, fresh = halves
    with pytest.raises(DataValidationError) as caught:
        check_against_profile(damage(fresh.copy()), data_profile(reference), DRIFT)
    message = str(caught.value)
    assert message.startswith("fresh data drifted from the reference profile") and expected in message
    assert "nothing was trained or promoted" in message
