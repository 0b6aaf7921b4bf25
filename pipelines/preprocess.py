"""Preprocess step: statistics adapted on the training split, applied inside the model.

The exported model takes raw features: normalisation, missing-value
imputation and one-hot encoding are layers (see `models.layers`). Only what a
TFLite model cannot hold with builtin ops stays outside it: the string
vocabularies of categorical columns, saved in `preprocessing.json`, which map
a category to the integer code the model one-hot encodes (0 = unseen/missing),
and the tokenizer of text columns (`pipelines.text.tokenizer`: its rule and
vocabulary), which maps a text to the token ids the model embeds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.columns import ColumnRole, as_json, kept_categories
from pipelines.load import Dataset, Splits
from pipelines.text.tokenizer import Tokenizer

TEXT_KIND = "text"  # the search's kind for a table with a text column: its families read token ids
# A numeric column (or an image's or series' channel) that varies less than this on the training split is constant
# there, and is scaled by 1, as scikit-learn's StandardScaler scales it: divided by its square root, a value the
# column takes later (another split, a fold, the user's data) came out a million times its size. hepatic_injury_qsar
# (376 descriptors, 281 rows): two columns constant on its training split and not in the other rows sent the
# encoded values' variance to 1e7, RBF kernel ridge's similarities all to 1 and its predictions to one class.
CONSTANT_VARIANCE = 1e-12


@dataclass
class Preprocessing:
    """JSON-serialisable description of the model's input and its adapted statistics.

    Attributes:
        kind: table, image or sequence; input_shape: one sample's shape; class_names: the output order.
        mean, variance: per numeric column (tables) or per channel/feature (images, sequences).
        numeric_columns, categorical_columns: the table's input columns, numbers first.
        vocabularies: categorical column -> its values; a value's code is its index + 1 (0: unseen, missing or
            beyond the most frequent `pipelines.columns.MAX_CATEGORIES`).
        roles: each raw column's role and why (`pipelines.columns`); a prediction applies them to new rows.
        text_columns: text columns, after the categorical ones, each as `tokenizer["length"]` token ids.
        tokenizer: the one tokenizer of every text column (`pipelines.text.tokenizer.Tokenizer.to_json`).
    """

    kind: str
    input_shape: list[int]
    class_names: list[str]
    mean: list[float]
    variance: list[float]
    numeric_columns: list[str] = field(default_factory=list)
    categorical_columns: list[str] = field(default_factory=list)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, dict] = field(default_factory=dict)
    text_columns: list[str] = field(default_factory=list)
    tokenizer: dict | None = None

    @property
    def search_kind(self) -> str:
        """The kind whose families fit: `TEXT_KIND` for a table with text, else `kind`."""
        return TEXT_KIND if self.text_columns else self.kind

    @property
    def text_start(self) -> int:
        """Where the token ids begin in the model input: after the numbers and the category codes."""
        return len(self.numeric_columns) + len(self.categorical_columns)

    @property
    def token_ids_only(self) -> bool:
        """Whether the model input is token ids alone (text columns and nothing else): int32 in its TFLite file."""
        return bool(self.text_columns) and not self.text_start

    @property
    def text_tokenizer(self) -> Tokenizer | None:
        return Tokenizer.from_json(self.tokenizer) if self.tokenizer else None

    @property
    def cardinalities(self) -> list[int]:
        """One-hot depth per categorical column: its vocabulary plus the unknown code 0."""
        return [len(self.vocabularies[c]) + 1 for c in self.categorical_columns]

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "Preprocessing":
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class ModelInputs:
    """float32 arrays the model takes, and integer labels indexing `class_names`.

    Attributes:
        x_train, y_train, x_val, y_val, x_test, y_test: each split's inputs and labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def fit_preprocessing(splits: Splits) -> Preprocessing:
    """Adapt normalisation statistics and vocabularies on the training split only."""
    train = splits.train
    if train.kind == "table":
        return _fit_table(train.features, splits.class_names, as_json(train.roles or {}))
    values = np.asarray(train.features, dtype=np.float64)
    per_channel = values.reshape(-1, values.shape[-1])
    return Preprocessing(
        kind=train.kind,
        input_shape=list(values.shape[1:]),
        class_names=splits.class_names,
        mean=per_channel.mean(axis=0).tolist(),
        variance=scaling_variance(per_channel.var(axis=0)),
    )


def scaling_variance(variance: np.ndarray) -> list[float]:
    """The variances the model's inputs are standardised with: a column constant on the training split (or all
    missing there) gets 1 (`CONSTANT_VARIANCE`)."""
    variance = np.asarray(variance, dtype=np.float64)
    return np.where(variance > CONSTANT_VARIANCE, variance, 1.0).tolist()


def _fit_table(frame: pd.DataFrame, class_names: list[str], roles: dict[str, dict]) -> Preprocessing:
    text = [c for c in frame.columns if roles.get(str(c), {}).get("role") == ColumnRole.TEXT]
    numeric = [c for c in frame.columns if c not in text and pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric and c not in text]
    tokenizer = Tokenizer.fit([v for c in text for v in frame[c]]) if text else None
    values = frame[numeric].to_numpy(dtype=np.float64) if numeric else np.zeros((len(frame), 0))
    vocabularies = {str(c): kept_categories(frame[c]) for c in categorical}
    return Preprocessing(
        kind="table",
        input_shape=[len(numeric) + len(categorical) + len(text) * (tokenizer.length if tokenizer else 0)],
        class_names=class_names,
        mean=np.nanmean(values, axis=0).tolist() if numeric else [],
        variance=scaling_variance(np.nanvar(values, axis=0)) if numeric else [],
        numeric_columns=list(map(str, numeric)),
        categorical_columns=list(map(str, categorical)),
        vocabularies=vocabularies,
        roles=roles,
        text_columns=list(map(str, text)),
        tokenizer=tokenizer.to_json() if tokenizer else None,
    )


def encode_features(dataset: Dataset, prep: Preprocessing) -> np.ndarray:
    """Raw features as the model's float32 input (tables: numbers, then category codes, then each text column's
    token ids).

    Sequences of another length follow `pipelines.load.LENGTH_RULE` at the model's length (a retrain's new data).
    """
    if dataset.kind == "sequence" and dataset.features.shape[1] != prep.input_shape[0]:
        dataset = dataset.with_length(prep.input_shape[0])
    if dataset.kind != "table":
        return np.asarray(dataset.features, dtype=np.float32)
    frame = dataset.features
    frame = frame.rename(columns=str)
    parts = [frame[prep.numeric_columns].to_numpy(dtype=np.float32)] if prep.numeric_columns else []
    for column in prep.categorical_columns:
        codes = {value: i + 1 for i, value in enumerate(prep.vocabularies[column])}
        parts.append(frame[column].map(lambda v: codes.get(str(v), 0) if pd.notna(v) else 0)
                     .to_numpy(dtype=np.float32)[:, None])
    tokenizer = prep.text_tokenizer
    for column in prep.text_columns:
        parts.append(tokenizer.encode(frame[column].tolist()).astype(np.float32))
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)


def encode_labels(labels: np.ndarray, class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    return np.asarray([index[label] for label in labels], dtype=np.int32)


def model_inputs(splits: Splits, prep: Preprocessing) -> ModelInputs:
    def pair(dataset: Dataset):
        return encode_features(dataset, prep), encode_labels(dataset.labels, prep.class_names)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(pair, (splits.train, splits.val, splits.test))
    return ModelInputs(x_train, y_train, x_val, y_val, x_test, y_test)


REPLAY_ROWS = 2000


@dataclass
class Replay:
    """A seeded sample of the model inputs a version learnt from, mixed into the next fine-tune.

    Labels are kept as class names so the sample stays meaningful whatever
    class order the next model uses.
    """

    x: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray, class_names: list[str], seed: int) -> "Replay":
        picked = np.sort(np.random.default_rng(seed).choice(len(x), min(REPLAY_ROWS, len(x)), replace=False))
        return cls(x[picked], np.asarray(class_names, dtype=object)[y[picked]])

    def sample(self, rows: int, class_names: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `rows` samples as (x, y indexing `class_names`); classes the model does not know are left out."""
        known = np.isin(self.labels, class_names)
        index = np.flatnonzero(known)
        index = np.random.default_rng(seed).choice(index, min(rows, len(index)), replace=False)
        return self.x[index], encode_labels(self.labels[index], class_names)

    def save(self, path: Path) -> Path:
        np.savez_compressed(path, x=self.x, labels=self.labels.astype(str))
        return path

    @classmethod
    def load(cls, path: Path) -> "Replay":
        with np.load(path) as saved:
            return cls(saved["x"], saved["labels"].astype(object))
