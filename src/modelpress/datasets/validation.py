"""Data validation with great-expectations: a suite generated from the recipe's data spec.

The suite is derived, never hand-written per dataset: inputs present, labels present and in
the declared set, enough rows for every split; for image files, every file decodes and has a
size (the sizes and modes seen are reported). A failure raises
:class:`~modelpress.core.errors.DataValidationError` showing the failing rows, before any model
is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelpress.core.errors import DataValidationError
from modelpress.datasets.pixels import image_facts
from modelpress.datasets.profile import row_stat

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.datasets.base import DataSchema

MISSING_FEATURES = "n_missing_features"
DECODE_ERROR = "decode_error"  # why an image file does not decode (null when it does)
MAX_ROWS_SHOWN = 5


def build_suite(schema: DataSchema, min_rows: int) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"modelpress-{schema.source}")
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="label"))
    if schema.labels is not None:
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(schema.labels)))
    if schema.kind == "text":
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="text"))
        suite.add_expectation(gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1))
    elif schema.kind == "image":  # per-file facts decoded once (_validation_view)
        suite.add_expectation(gxe.ExpectColumnValuesToBeNull(column=DECODE_ERROR))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="width", min_value=1))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="height", min_value=1))
    else:
        # One derived column instead of one expectation per pixel keeps validation ~0.1 s
        # on 784-feature images while still pointing at the failing rows.
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=MISSING_FEATURES, min_value=0, max_value=0))
    return suite


#: documents every split a corpus is packed from must hold (eval and calibration always exist)
MIN_DOCUMENTS = 2
CORPUS_SPLITS = ("calibration", "eval")


def corpus_suites(schema: DataSchema, min_documents: int) -> tuple[Any, Any]:
    """(per-document suite, per-split suite) for a corpus: texts present and not blank, and
    enough documents in every split that is packed on its own."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    documents = gx.ExpectationSuite(name=f"modelpress-{schema.source}-documents")
    documents.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="text"))
    documents.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"))
    splits = gx.ExpectationSuite(name=f"modelpress-{schema.source}-splits")
    splits.add_expectation(gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(CORPUS_SPLITS)))
    splits.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="documents", min_value=min_documents))
    return documents, splits


def validate_corpus(frame: pd.DataFrame, schema: DataSchema,
                    min_documents: int = MIN_DOCUMENTS) -> dict[str, Any]:
    """Run the corpus suites on ``frame`` (one row per document, with ``split``); raise with the
    failing documents or splits."""
    import pandas as pd

    counts = frame["split"].value_counts()
    per_split = pd.DataFrame({"split": list(CORPUS_SPLITS) + [s for s in counts.index if s not in CORPUS_SPLITS]})
    per_split["documents"] = [int(counts.get(s, 0)) for s in per_split["split"]]
    context = _ephemeral_context()
    doc_suite, split_suite = corpus_suites(schema, min_documents)
    failures = []
    for name, suite, view in (("documents", doc_suite, frame[["text"]]), ("splits", split_suite, per_split)):
        results = _run_suite(context, name, suite, view, result_format="COMPLETE")
        failures += [_describe_failure(r, view) for r in results if not r.success]
    if failures:
        raise DataValidationError(f"data from {schema.source} failed validation:\n" + "\n".join(failures))
    return {"success": True, "expectations": len(doc_suite.expectations) + len(split_suite.expectations),
            "rows": len(frame)}


def validate_frame(frame: pd.DataFrame, schema: DataSchema, min_rows: int = 20) -> dict[str, Any]:
    """Run the generated suite on ``frame``; return the result summary or raise with failing rows."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    view = _validation_view(frame, schema)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("modelpress")
             .add_dataframe_asset("data")
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": view}))
    result = batch.validate(build_suite(schema, min_rows), result_format={"result_format": "COMPLETE"})
    failures = [_describe_failure(r, view) for r in result.results if not r.success]
    if failures:
        raise DataValidationError(f"data from {schema.source} failed validation:\n" + "\n".join(failures))
    summary: dict[str, Any] = {"success": True, "expectations": len(result.results), "rows": len(view)}
    if schema.kind == "image":
        summary["images"] = image_sizes(view)
    return summary


def image_sizes(view: pd.DataFrame) -> dict[str, Any]:
    """What the files hold: their count, smallest and largest width and height, modes seen."""
    return {"files": len(view), "min_width": int(view["width"].min()), "max_width": int(view["width"].max()),
            "min_height": int(view["height"].min()), "max_height": int(view["height"].max()),
            "modes": {str(k): int(v) for k, v in view["mode"].value_counts().sort_index().items()}}


def _validation_view(frame: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    if schema.kind == "text":
        return frame[["text", "label"]]
    if schema.kind == "image":

        facts = image_facts(frame["image"]).set_axis(frame.index)
        view = frame[["image_file", "label"]].copy()
        view[["width", "height"]] = facts[["width", "height"]].astype("float64")  # NaN where it fails
        view[["mode", DECODE_ERROR]] = facts[["mode", DECODE_ERROR]]
        return view
    features = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
    view = frame[["label"]].copy()
    view[MISSING_FEATURES] = frame[features].isna().sum(axis=1)
    return view


def _describe_failure(result: Any, view: pd.DataFrame) -> str:
    config = result.expectation_config
    if config.kwargs.get("column") == DECODE_ERROR:  # one line naming the first bad file
        bad = view[view[DECODE_ERROR].notna()].sort_values("image_file")
        first = bad.iloc[0]
        return (f"  - {len(bad)} of {len(view)} image files do not decode; the first: {first['image_file']} "
                f"({first[DECODE_ERROR]})")
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    detail = result.result or {}
    rows = detail.get("unexpected_index_list") or []
    line = f"  - {config.type}({kwargs})"
    if "observed_value" in detail:
        line += f": observed {detail['observed_value']}"
    if rows:
        index = [r if isinstance(r, int) else next(iter(r.values())) for r in rows]
        shown = view.loc[index[:MAX_ROWS_SHOWN]]
        line += (f": {detail.get('unexpected_count', len(rows))} failing row(s), first ones:\n"
                 + _indent(shown.to_string(max_colwidth=60)))
    return line


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


# --- drift: fresh data against the reference (champion's) data profile ----------------------
# The profile (modelpress.datasets.profile) is a few numbers per column recorded with every
# published model; the retraining pipeline turns it into a great-expectations suite (schema,
# value ranges, label balance, the shift of row means) and runs it on the fresh data before any
# training happens. A corpus has no labels, so its suite has no label checks.

ROW_STAT = "row_stat"          # mean of the features (or text length) per row
OUT_OF_RANGE = "out_of_range"  # share of a row's features outside the reference range
RANGE_SLACK = 1e-6


def drift_suite(profile: dict[str, Any], drift: dict[str, float]) -> tuple[Any, Any]:
    """(schema suite for the raw columns, drift suite for the per-row view), from ``profile``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    schema = gx.ExpectationSuite(name="modelpress-reference-schema")
    schema.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=profile["columns"], exact_match=True))
    suite = gx.ExpectationSuite(name="modelpress-reference-drift")
    if "label" in profile["columns"]:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="label"))
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=profile["labels"]))
        suite.add_expectation(gxe.ExpectColumnKLDivergenceToBeLessThan(
            column="label", threshold=drift["max_label_kl"],
            partition_object={"values": profile["labels"], "weights": profile["label_shares"]}))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=MISSING_FEATURES, min_value=0, max_value=0))
    suite.add_expectation(gxe.ExpectColumnMeanToBeBetween(column=OUT_OF_RANGE, max_value=drift["max_out_of_range"]))
    ref, shift = profile["row_stat"], drift["max_mean_shift"] * profile["row_stat"]["std"]
    suite.add_expectation(gxe.ExpectColumnMeanToBeBetween(
        column=ROW_STAT, min_value=ref["mean"] - shift, max_value=ref["mean"] + shift))
    return schema, suite


def _drift_view(frame: pd.DataFrame, profile: dict[str, Any]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    features = [c for c in profile["ranges"] if c in frame.columns]
    view = pd.DataFrame({"label": frame["label"].to_numpy()} if "label" in frame else {}, index=range(len(frame)))
    values = frame[features].to_numpy(dtype="float64") if features else np.zeros((len(frame), 0))
    low = np.array([profile["ranges"][c][0] for c in features]) - RANGE_SLACK
    high = np.array([profile["ranges"][c][1] for c in features]) + RANGE_SLACK
    outside = ((values < low) | (values > high)).mean(axis=1) if features else np.zeros(len(frame))
    inputs = "text" if "text" in frame else "image"
    view[MISSING_FEATURES] = np.isnan(values).sum(axis=1) if features else frame[inputs].isna().astype(int).to_numpy()
    view[OUT_OF_RANGE] = outside
    view[ROW_STAT] = row_stat(frame, features).to_numpy()
    return view


def check_against_profile(frame: pd.DataFrame, profile: dict[str, Any],
                          drift: dict[str, float]) -> dict[str, Any]:
    """Validate fresh ``frame`` against a reference ``profile``; raise a readable report on drift."""
    data = frame.drop(columns=[c for c in ("split",) if c in frame.columns])
    context = _ephemeral_context()  # suites need a context to exist when they are built
    schema_suite, drift_suite_ = drift_suite(profile, drift)
    results = _run_suite(context, "schema", schema_suite, data.head(5))
    if all(r.success for r in results):  # per-row drift needs the reference's columns
        results += _run_suite(context, "drift", drift_suite_, _drift_view(data, profile))
    report: dict[str, Any] = {"success": all(r.success for r in results), "expectations": len(results),
                              "rows": len(data), "suites": [schema_suite.to_json_dict(), drift_suite_.to_json_dict()],
                              "checks": [_summary(r) for r in results]}
    if not report["success"]:
        failed = [c for c in report["checks"] if not c["success"]]
        lines = [f"  - {c['check']} ({c['expectation']}): {c['detail']}" for c in failed]
        raise DataValidationError(f"fresh data drifted from the reference profile ({len(failed)} of "
                                  f"{len(results)} checks failed; nothing was trained or promoted):\n"
                                  + "\n".join(lines))
    return report


def _ephemeral_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _run_suite(context: Any, name: str, suite: Any, view: pd.DataFrame,
               result_format: str = "SUMMARY") -> list[Any]:
    batch = (context.data_sources.add_pandas(f"modelpress-{name}")
             .add_dataframe_asset("data")
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": view}))
    return list(batch.validate(suite, result_format={"result_format": result_format}).results)


# What each generated expectation guards, for the report a person reads.
CHECK_NAMES = {
    ("expect_table_columns_to_match_set", None): "schema: columns as in the reference",
    ("expect_column_values_to_not_be_null", "label"): "labels present",
    ("expect_column_values_to_be_in_set", "label"): "labels within the reference label set",
    ("expect_column_kl_divergence_to_be_less_than", "label"): "label balance: KL divergence from the reference",
    ("expect_column_values_to_be_between", MISSING_FEATURES): "no missing values",
    ("expect_column_mean_to_be_between", OUT_OF_RANGE): "share of values outside the reference ranges",
    ("expect_column_mean_to_be_between", ROW_STAT): "drift: mean of row means vs reference mean ± max_mean_shift·std",
}


def _summary(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    what = CHECK_NAMES.get((config.type, config.kwargs.get("column")), config.type)
    kwargs = {k: v for k, v in config.kwargs.items()
              if k not in ("batch_id", "result_format", "partition_object", "column_set")}
    detail = result.result or {}
    observed = detail.get("observed_value")
    if isinstance(observed, dict):  # KL divergence reports {"observed_value": kl, "details": ...}
        observed = observed.get("observed_value", observed)
    text = f"{kwargs}"
    if observed is not None:
        text += f", observed {observed if not isinstance(observed, float) else round(observed, 4)}"
    if detail.get("unexpected_count"):
        text += f", {detail['unexpected_count']} row(s) fail ({detail.get('unexpected_percent', 0):.1f}%)"
    mismatched = (detail.get("details") or {}).get("mismatched")
    if mismatched:  # the full observed column list is noise next to what differs
        text = f"columns differ: {mismatched}"
    return {"expectation": config.type, "check": what, "success": bool(result.success), "detail": text}
