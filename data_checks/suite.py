"""Great Expectations suites built from a dataset's profile.

A suite is made once from the training split (column set and types, null
fractions, value ranges, label set), saved as JSON in the run folder, and
re-run on any data that must look like it: the whole loaded dataset, a given
test set, or next month's retraining data.

Images and sequences are checked through a per-sample profile table (value
range, mean, non-finite count, true length) rather than raw pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

LABEL_COLUMN = "__label__"
NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "Int64", "Float64", "bool", "boolean"]
# Small splits vary; a column going from 5% to 80% empty is what we catch. A column more than 1 - NULL_SLACK empty in
# training gets no such rule: sparse columns are data (ames's Misc_Feature is 97% empty: most houses have none), and a
# column with no value at all is refused when the table is read (`pipelines.load.check_not_empty`).
NULL_SLACK = 0.25
RANGE_MARGIN = 0.25  # of the observed span, so unseen-but-plausible values pass
RANGE_MOSTLY = 0.9  # a few outliers are data; a shifted column (new units, broken sensor) is not
# fewer training values than this draw no range: medicaldata's opt had 4 drinks-per-day values in 420 rows, and a
# retrain on the next 394 rows stopped at one value of 35 among their 6 (17% outside, where 10% may be)
RANGE_MIN_VALUES = 20
FLOAT32_MAX = 3.4028235e38  # the model computes in float32: anything beyond, inf included, is broken
COLUMNS_PER_BATCH = 100  # a wider frame is validated this many columns at a time (`_batches`)


@dataclass
class ValidationReport:
    """What a suite found: `failures` holds one readable line per broken expectation."""

    suite_name: str
    checked: int
    failures: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def to_markdown(self) -> str:
        head = f"**{self.suite_name}**: {self.checked - len(self.failures)}/{self.checked} expectations passed"
        return "\n".join([head, *(f"- {line}" for line in self.failures)])


def profile_frame(kind: str, features, labels: np.ndarray) -> pd.DataFrame:
    """One row per sample: the table itself, or a summary of each image/sequence."""
    if kind == "table":
        frame = features.reset_index(drop=True).copy()
    else:
        flat = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        finite = np.where(np.isfinite(flat), flat, np.nan)
        frame = pd.DataFrame({
            "value_min": np.nanmin(finite, axis=1),
            "value_max": np.nanmax(finite, axis=1),
            "value_mean": np.nanmean(finite, axis=1),
            "non_finite": (~np.isfinite(flat)).sum(axis=1),
        })
        if kind == "sequence":
            frame["length"] = _true_lengths(np.asarray(features))
    frame[LABEL_COLUMN] = np.asarray(labels, dtype=object)
    return frame


def _true_lengths(sequences: np.ndarray) -> np.ndarray:
    nonzero = np.any(sequences != 0, axis=2)
    last = sequences.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0)


def build_suite(frame: pd.DataFrame, name: str, classes: list[str] | None = None):
    """Expectations that the profiled training data defines for all later data."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    _pandas_asset()  # suites need an active GX context
    # One list into the constructor: `add_expectation` compares each new expectation with all before it, which
    # took 75 s for a table of 370 columns (1,507 expectations).
    expectations = [gxe.ExpectTableColumnsToMatchSet(column_set=list(map(str, frame.columns)), exact_match=True)]
    for column in frame.columns:
        if column == LABEL_COLUMN:
            continue
        values = frame[column]
        filled = round(1 - float(values.isna().mean()) - NULL_SLACK, 4)
        if filled > 0:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=filled))
        if column == "non_finite":
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=0))
        elif pd.api.types.is_numeric_dtype(values):
            expectations.append(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPES))
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX))
            bounds = _range_with_margin(values)
            if bounds:
                expectations.append(gxe.ExpectColumnValuesToBeBetween(
                    column=column, min_value=bounds[0], max_value=bounds[1], mostly=RANGE_MOSTLY))
    classes = sorted(set(frame[LABEL_COLUMN].unique().tolist()) | set(classes or []))
    expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=LABEL_COLUMN))
    expectations.append(gxe.ExpectColumnValuesToBeInSet(column=LABEL_COLUMN, value_set=classes))
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    suite.meta = {"rows": len(frame), "rows_per_class": frame[LABEL_COLUMN].value_counts().sort_index().to_dict()}
    return suite


def without_labels(suite):
    """The same suite for data without labels (scoring new rows): label expectations dropped, column set without it."""
    import great_expectations as gx

    _pandas_asset()
    kept = []
    for kwargs, expectation in _copies(suite):
        if kwargs.get("column") == LABEL_COLUMN:
            continue
        if "column_set" in kwargs:
            kwargs["column_set"] = [c for c in kwargs["column_set"] if c != LABEL_COLUMN]
        kept.append(type(expectation)(**kwargs))
    return gx.ExpectationSuite(name=f"{suite.name} (features)", meta=dict(suite.meta or {}), expectations=kept)


def row_rules_only(suite):
    """The suite without its statistical expectations (those that allow a share of rows, `mostly` < 1): what a
    random part of the very data the suite was built from must meet. Whether 10% of a 34-row sample falls
    outside the training rows' range is chance there, not a fault of the data; the schema, types, finite values
    and label set are not."""
    return _kept(suite, lambda kwargs, expectation: _row_by_row(kwargs))


def _kept(suite, keep):
    """A new suite of the expectations of `suite` that `keep(kwargs, expectation)` keeps (one belongs to one suite)."""
    import great_expectations as gx

    _pandas_asset()
    return gx.ExpectationSuite(name=suite.name, meta=dict(suite.meta or {}), expectations=[
        type(expectation)(**kwargs) for kwargs, expectation in _copies(suite) if keep(kwargs, expectation)])


def _row_by_row(kwargs: dict) -> bool:
    """Whether an expectation holds for a frame exactly when it holds for each of its rows (none allows a share)."""
    return kwargs.get("mostly", 1) >= 1


def _copies(suite) -> list[tuple[dict, object]]:
    """Each expectation of `suite` with its arguments, to make a new one from (one belongs to one suite)."""
    return [({k: v for k, v in expectation.configuration.kwargs.items() if k != "batch_id"}, expectation)
            for expectation in suite.expectations]


def _range_with_margin(values: pd.Series) -> tuple[float, float] | None:
    """The training values' span widened by `RANGE_MARGIN` of it each side; None under `RANGE_MIN_VALUES` values."""
    finite = pd.to_numeric(values, errors="coerce").astype("float64")
    finite = finite[np.isfinite(finite)]
    if len(finite) < RANGE_MIN_VALUES:
        return None
    low, high = float(finite.min()), float(finite.max())
    margin = RANGE_MARGIN * (high - low)
    return low - margin, high + margin


def validate_frame(frame: pd.DataFrame, suite) -> ValidationReport:
    """Run a suite on a frame; each failure becomes one line naming its column.

    Pass or fail first (GX's `BOOLEAN_ONLY`, half the time of a full result on a table of 370 columns); then the
    failed expectations alone again, for the counts and examples their lines give. A frame of more than
    `COLUMNS_PER_BATCH` columns is checked that many columns at a time (`_batches`).
    """
    checked, failed = 0, []
    for part, expectations in _batches(frame, suite):
        count, results = _failed_results(part, suite.name, expectations)
        checked, failed = checked + count, failed + results
    return ValidationReport(suite.name, checked, [describe_failure(r) for r in causes(failed, frame)])


def _failed_results(frame: pd.DataFrame, name: str, expectations) -> tuple[int, list]:
    """How many of `expectations` (a suite, or a list of expectations of no suite) were checked on `frame`, and the
    full results of those that failed."""
    import great_expectations as gx

    suite = expectations if isinstance(expectations, gx.ExpectationSuite) else \
        gx.ExpectationSuite(name=name, expectations=expectations)
    batch = _whole_frame_batches().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format=PASS_OR_FAIL)
    if result.success:
        return len(result.results), []
    failed = gx.ExpectationSuite(name=name, expectations=[
        r.expectation_config.to_domain_obj() for r in result.results if not r.success])
    return len(result.results), batch.validate(failed).results


def _batches(frame: pd.DataFrame, suite) -> list[tuple[pd.DataFrame, object]]:
    """(frame, expectations) pairs to validate: the frame and its suite, or, for a frame of more than
    `COLUMNS_PER_BATCH` columns, the table's expectations on the whole frame, then the columns' that many columns at
    a time, each on those columns alone. Great-expectations looks over every column of a batch for each expectation
    (the column types for a type check, the column names for any column's), so one batch takes time that grows
    with columns times expectations: a 1,504-column table's three splits took 77 s to validate, 55 s in batches."""
    if frame.shape[1] <= COLUMNS_PER_BATCH:
        return [(frame, suite)]
    table, by_column = [], {}
    for kwargs, expectation in _copies(suite):
        copy = type(expectation)(**kwargs)
        if "column" in kwargs:
            by_column.setdefault(kwargs["column"], []).append(copy)
        else:
            table.append(copy)
    columns = list(by_column)
    batches = [(frame, table)] if table else []
    for start in range(0, len(columns), COLUMNS_PER_BATCH):
        chunk = columns[start:start + COLUMNS_PER_BATCH]  # a column the frame lacks fails its checks, as in one batch
        batches.append((frame[[c for c in chunk if c in frame.columns]], [e for c in chunk for e in by_column[c]]))
    return batches


def validate_frames(frames: list[pd.DataFrame], suite) -> list[ValidationReport]:
    """`validate_frame` for each of `frames`. When every expectation of `suite` holds row by row and the frames have
    the same columns and types, their rows are checked in one batch (great-expectations' time goes on each
    expectation, not on each row); only a failure checks them one by one, to say which frame broke which rule."""
    if len(frames) > 1 and all(_row_by_row(kwargs) for kwargs, _ in _copies(suite)) and \
            all(frame.dtypes.equals(frames[0].dtypes) for frame in frames):
        joined = validate_frame(pd.concat(frames, ignore_index=True), suite)
        if joined.success:
            return [ValidationReport(suite.name, joined.checked) for _ in frames]
    return [validate_frame(frame, suite) for frame in frames]


PASS_OR_FAIL = "BOOLEAN_ONLY"  # GX's result format without counts or examples

# Which failures are told first: the schema, then types, then the values they explain.
CAUSE_ORDER = ("expect_table_columns_to_match_set", "expect_column_values_to_be_in_type_list")


def causes(results, frame: pd.DataFrame) -> list:
    """Failed results, causes first; a missing column's checks, and the range checks of a column of the wrong
    type, follow from the first failures and are left out."""
    failed = [r for r in results if not r.success]
    retyped = {r.expectation_config.kwargs.get("column") for r in failed
               if r.expectation_config.type == CAUSE_ORDER[1]}
    kept = []
    for r in failed:
        column = r.expectation_config.kwargs.get("column")
        if column is not None and (column not in frame.columns or
                                   (column in retyped and r.expectation_config.type != CAUSE_ORDER[1])):
            continue
        kept.append(r)
    rank = lambda r: CAUSE_ORDER.index(r.expectation_config.type) if r.expectation_config.type in CAUSE_ORDER \
        else len(CAUSE_ORDER)
    return sorted(kept, key=rank)


@lru_cache(maxsize=1)
def _whole_frame_batches():
    """One batch definition serves every frame: the frame is passed per batch."""
    return _pandas_asset().add_batch_definition_whole_dataframe("whole-frame")


@lru_cache(maxsize=1)
def _pandas_asset():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context.data_sources.add_pandas("kerasflow").add_dataframe_asset("frame")


def describe_failure(result) -> str:
    """Say in one line which column broke which rule and with what values."""
    config = result.expectation_config
    column = config.kwargs.get("column")
    where = f"column {_display(column)!r}" if column else "table"
    detail = result.result or {}
    rule = {
        "expect_column_values_to_not_be_null": f"too many missing values (allowed {1 - config.kwargs.get('mostly', 1):.0%})",
        "expect_column_values_to_be_between": _range_rule(config.kwargs),
        "expect_column_values_to_be_in_set": "values outside the known set",
        "expect_column_values_to_be_in_type_list": f"type {detail.get('observed_value')} is not numeric",
        "expect_table_columns_to_match_set": "columns differ from the training data",
    }.get(config.type, config.type)
    if result.exception_info and result.exception_info.get("raised_exception"):
        rule += f" (check raised: {result.exception_info.get('exception_message')})"
    parts = [f"{where}: {rule}"]
    if "unexpected_count" in detail and detail.get("element_count"):
        empty = detail.get("missing_count") or 0  # a share of values (`mostly`) is of the filled ones
        parts.append(f"{detail['unexpected_count']} of {detail['element_count'] - empty} values ({empty} rows empty)"
                     if empty and config.type != "expect_column_values_to_not_be_null"
                     else f"{detail['unexpected_count']} of {detail['element_count']} rows")
        examples = [v for v in detail.get("partial_unexpected_list") or []][:3]
        if examples:
            parts.append(f"e.g. {examples}")
    if config.type == "expect_table_columns_to_match_set":
        observed = set(detail.get("observed_value") or [])
        expected = set(config.kwargs["column_set"])
        parts.append(f"missing {sorted(expected - observed)}, unexpected {sorted(observed - expected)}")
    return "; ".join(parts)


def _range_rule(kwargs: dict) -> str:
    if kwargs.get("max_value") == FLOAT32_MAX:
        return "values are not finite float32 numbers (inf or overflow)"
    allowed = 1 - kwargs.get("mostly", 1)
    return (f"values outside [{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
            + (f" in more than {allowed:.0%} of its values" if allowed else ""))


def _display(column: str) -> str:
    return "label" if column == LABEL_COLUMN else column


def _num(value) -> str:
    return "-inf" if value is None else f"{value:.4g}"


def save_suite(suite, path: Path) -> Path:
    path.write_text(json.dumps(suite.to_json_dict(), indent=2, default=str))
    return path


def load_suite(path: Path):
    import great_expectations as gx

    _pandas_asset()
    return gx.ExpectationSuite(**json.loads(Path(path).read_text()))
