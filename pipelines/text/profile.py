"""Text columns in the data's profile (`data_checks.profile_frame`): what checks and drift compare of a text.

A text column is not a category: its values are (nearly) all distinct. Its
profile is per row `NAME.tokens`, the number of tokens under the tokenizer's
rule (missing when the text is empty or missing: the great-expectations
suite's missing-share expectation is then the empty share, and its range
expectation the length range), and, once a vocabulary exists (the drift
reference of a trained model, new data scored or retrained on),
`NAME.unknown`, the share of its tokens outside the vocabulary. Drift compares
both as numbers (KS test and PSI): token-length distributions and
out-of-vocabulary shares. The suite is built before any vocabulary, so
`for_expectations` leaves `NAME.unknown` out of what it checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import data_checks
from pipelines.text.tokenizer import Tokenizer, tokens

TOKENS_SUFFIX = ".tokens"
UNKNOWN_SUFFIX = ".unknown"


def profile(kind: str, features, labels: np.ndarray, text_columns: list[str],
            tokenizer: Tokenizer | None = None) -> pd.DataFrame:
    """`data_checks.profile_frame` of the data, each text column replaced by its token count (and unknown share)."""
    if kind == "table" and text_columns:
        features = features.rename(columns=str).copy()
        for column in text_columns:
            if column not in features.columns:
                continue
            texts = features.pop(column).tolist()
            counts = np.asarray([len(tokens(t)) for t in texts], dtype=np.float64)
            features[f"{column}{TOKENS_SUFFIX}"] = np.where(counts > 0, counts, np.nan)
            if tokenizer is not None:
                features[f"{column}{UNKNOWN_SUFFIX}"] = tokenizer.unknown_shares(texts)
    return data_checks.profile_frame(kind, features, labels)


def for_expectations(frame: pd.DataFrame) -> pd.DataFrame:
    """The profile the great-expectations suite checks: without the unknown shares (the suite predates the
    vocabulary)."""
    return frame.drop(columns=[c for c in frame.columns if str(c).endswith(UNKNOWN_SUFFIX)])
