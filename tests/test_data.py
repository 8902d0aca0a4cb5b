from __future__ import annotations

import pandas as pd
import pytest

from modelpress.core.errors import DataValidationError
from modelpress.datasets.base import Split, dataset_config
from modelpress.datasets.shipped import SHIPPED
from modelpress.datasets.splits import assign_splits
from modelpress.datasets.validation import validate_frame

DIGITS = dataset_config("digits", {"source": "digits"}).describe()


def test_splits_are_disjoint_seeded_and_sized() -> None:
    frame = SHIPPED["digits"].load()
    a = assign_splits(frame, Split(train=0.7, eval=0.3, calibration=64), seed=1, limit=None)
    b = assign_splits(frame, Split(train=0.7, eval=0.3, calibration=64), seed=1, limit=None)
    pd.testing.assert_frame_equal(a, b)
    counts = a["split"].value_counts()
    assert counts["eval"] == round(0.3 * len(frame))
    assert counts["calibration"] == 64
    assert counts["train"] + counts["calibration"] + counts["eval"] == len(frame)


def test_limit_and_counts() -> None:
    frame = SHIPPED["digits"].load()
    marked = assign_splits(frame, Split(train=300, eval=100, calibration=32), seed=0, limit=500)
    assert len(marked) == 400 and (marked["split"] == "eval").sum() == 100


@pytest.mark.parametrize("source, columns, rows", [("digits", 65, 1797), ("mnist-5k", 785, 5000),
                                                    ("rotten-tomatoes", 2, 12808)])
def test_shipped_datasets_load(source: str, columns: int, rows: int) -> None:
    frame = SHIPPED[source].load()
    assert frame.shape == (rows, columns)
    assert set(frame["label"].unique()) <= set(SHIPPED[source].labels)


def test_validation_passes_shipped_data() -> None:
    frame = SHIPPED["digits"].load()
    report = validate_frame(frame, DIGITS)
    assert report["success"] and report["rows"] == len(frame)


def test_validation_shows_failing_rows_for_nulls_and_unknown_labels() -> None:
    frame = SHIPPED["digits"].load().iloc[:50].copy()
    frame.loc[7, "label"] = None
    frame.loc[11, "label"] = 42
    frame.loc[13, "f5"] = None
    with pytest.raises(DataValidationError) as info:
        validate_frame(frame, DIGITS)
    message = str(info.value)
    assert "expect_column_values_to_not_be_null" in message and "\n      7 " in message
    assert "expect_column_values_to_be_in_set" in message and "42" in message
    assert "n_missing_features" in message and "\n      13 " in message


def test_validation_requires_enough_rows() -> None:
    frame = SHIPPED["digits"].load().iloc[:5]
    with pytest.raises(DataValidationError, match="row_count"):
        validate_frame(frame, DIGITS, min_rows=20)
