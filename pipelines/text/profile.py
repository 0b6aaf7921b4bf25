"""Text columns in the data's profile (`data_checks.profile_frame`): what checks and drift compare of a text.

A text column is not a category: its values are (nearly) all distinct. Its
profile is per row `NAME.tokens`, the number of tokens under the tokenizer's
rule (missing when the text is empty or missing: the great-expectations
suite's missing-share expectation is then the empty share, and its range
expectation the length range), and, once a vocabulary exists (the drift
reference of a trained model, new data scored or retrained on),
`NAME.unknown`, the share of its tokens outside the vocabulary (for the rows
the vocabulary was counted from, the share a vocabulary counted without the
row would leave: `Tokenizer.unknown_shares`). Drift compares
both as numbers (KS test and PSI): token-length distributions and
out-of-vocabulary shares. The suite is built before any vocabulary, so
`for_expectations` leaves `NAME.unknown` out of what it checks. A reference
a run writes is marked as holding held-out shares (`HELD_OUT_MARK`); one
written before them holds each training text's own share, which every new
batch exceeds, and `drift_against` leaves its `NAME.unknown` untested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import data_checks
from data_checks.drift import DriftReport, compare_profiles
from pipelines.text.tokenizer import HeldOut, Tokenizer, tokens

TOKENS_SUFFIX = ".tokens"
UNKNOWN_SUFFIX = ".unknown"
HELD_OUT_MARK = "unknown_shares_held_out"  # in a drift reference's attrs (kept in its parquet file)


def profile(kind: str, features, labels: np.ndarray, text_columns: list[str],
            tokenizer: Tokenizer | None = None, counted_rows: int = 0) -> pd.DataFrame:
    """`data_checks.profile_frame` of the data, each text column replaced by its token count (and unknown share).

    The first `counted_rows` rows are those `tokenizer`'s vocabulary was
    counted from (a new model's training split, ahead of its validation rows).
    """
    if kind == "table" and text_columns:
        features = features.rename(columns=str).copy()
        counted = None
        if tokenizer is not None and counted_rows:
            present = [c for c in text_columns if c in features.columns]
            counted = HeldOut.of(tokenizer, [v for c in present for v in features[c].iloc[:counted_rows]])
        for column in text_columns:
            if column not in features.columns:
                continue
            texts = features.pop(column).tolist()
            counts = np.asarray([len(tokens(t)) for t in texts], dtype=np.float64)
            features[f"{column}{TOKENS_SUFFIX}"] = np.where(counts > 0, counts, np.nan)
            if tokenizer is not None:
                features[f"{column}{UNKNOWN_SUFFIX}"] = tokenizer.unknown_shares(texts, counted, counted_rows)
    return data_checks.profile_frame(kind, features, labels)


def for_expectations(frame: pd.DataFrame) -> pd.DataFrame:
    """The profile the great-expectations suite checks: without the unknown shares (the suite predates the
    vocabulary)."""
    return frame.drop(columns=unknown_columns(frame))


def unknown_columns(frame: pd.DataFrame) -> list:
    """A profile's `NAME.unknown` columns."""
    return [c for c in frame.columns if str(c).endswith(UNKNOWN_SUFFIX)]


def marked(reference: pd.DataFrame) -> pd.DataFrame:
    """`reference` (a profile of the data a model learnt from) marked as holding held-out unknown-word shares."""
    reference.attrs[HELD_OUT_MARK] = True
    return reference


def drift_against(reference: pd.DataFrame, current: pd.DataFrame, **thresholds) -> DriftReport:
    """`data_checks.drift.compare_profiles` of `current` against a model's `reference`; the unknown-word shares of
    a reference written before they were held out are not tested, and the report says so."""
    plain = [] if reference.attrs.get(HELD_OUT_MARK) else unknown_columns(reference)
    report = compare_profiles(reference.drop(columns=plain), current, **thresholds)
    if plain:
        report.notes.append(f"{', '.join(map(str, plain))} not tested: this model's reference holds each training "
                            "text's own unknown-word share (written before kerasflow held them out), which any new "
                            "texts exceed; models trained since keep held-out shares")
    return report
