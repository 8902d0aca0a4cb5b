"""Data validation with great-expectations: a suite generated from the recipe's data spec.

The suite is derived, never hand-written per dataset: inputs present, labels present and in
the declared set, enough rows for every split. A failure raises
:class:`~modelpress.errors.DataValidationError` showing the failing rows, before any model
is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from .data import DataSchema

MISSING_FEATURES = "n_missing_features"
MAX_ROWS_SHOWN = 5


def build_suite(schema: "DataSchema", min_rows: int) -> Any:
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
    else:
        # One derived column instead of one expectation per pixel keeps validation ~0.1 s
        # on 784-feature images while still pointing at the failing rows.
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=MISSING_FEATURES, min_value=0, max_value=0))
    return suite


def validate_frame(frame: "pd.DataFrame", schema: "DataSchema", min_rows: int = 20) -> dict[str, Any]:
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
    return {"success": True, "expectations": len(result.results), "rows": len(view)}


def _validation_view(frame: "pd.DataFrame", schema: "DataSchema") -> "pd.DataFrame":
    if schema.kind == "text":
        return frame[["text", "label"]]
    features = [c for c in frame.columns if c.startswith("f") and c[1:].isdigit()]
    view = frame[["label"]].copy()
    view[MISSING_FEATURES] = frame[features].isna().sum(axis=1)
    return view


def _describe_failure(result: Any, view: "pd.DataFrame") -> str:
    config = result.expectation_config
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
