"""Score new data with a trained model: the training checks, the same encoding, Keras or any exported TFLite variant.

New data goes through what a training run's data went through, in the
model's own terms: the columns, image size and sequence length it was
trained on (`preprocessing.json`), its great-expectations suite and its
drift reference. Schema problems (a missing column, text in a numeric
column, a different number of sequence features) stop scoring with one line;
what training tolerates is applied and said: images are resized to the
model's size, sequences zero-padded or cut at the end to its length,
categories never seen in training encoded as unknown (code 0), value-range
expectations and drift become warnings.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_checks import LABEL_COLUMN, load_suite, validate_frame, without_labels
from data_checks.drift import DriftReport, read_reference
from pipelines.columns import ColumnRole, apply_roles, examples, from_json, source_columns
from pipelines.errors import DataError, ExportError, names, shown
from pipelines.load import (
    IMAGE_SUFFIXES,
    SEQUENCE_SUFFIXES,
    TABLE_SUFFIXES,
    Dataset,
    as_series,
    check_not_mixed,
    fit_length,
    image_array,
    read_image,
    read_sequences,
    read_table,
)
from pipelines.preprocess import Preprocessing, encode_features
from pipelines.text.folder import read_unlabelled_folder
from pipelines.text.profile import drift_against, for_expectations, profile
from pipelines.registry import MODEL_FILE, PREPROCESSING_FILE, Registry, atomic_write

KERAS = "keras"
ID_NAMES = {"table": "row", "image": "file", "sequence": "sample"}
FOLDER_ID = "file"  # a folder of texts is scored per file
MODEL_LENGTH = "the model's length"  # how sequence notes name the length they are fitted to


@dataclass
class TrainedModel:
    """A model ready to score, read from a run folder or a registry version.

    Attributes:
        ref: NAME@vNNNN, or the run folder.
        model_path: the Keras model; export_dir: its TFLite variants.
        prep: its preprocessing (input columns, shape, classes); target: the label column of a table.
        suite_path, reference_path: its great-expectations suite and drift reference (None if absent).
    """

    ref: str
    model_path: Path
    export_dir: Path
    prep: Preprocessing
    target: str | None
    suite_path: Path | None
    reference_path: Path | None

    @classmethod
    def from_run_folder(cls, run_dir: Path) -> "TrainedModel":
        run_dir = Path(run_dir)
        config = json.loads((run_dir / "run.json").read_text()).get("config", {}) if (run_dir / "run.json").exists() else {}
        return cls(str(run_dir), run_dir / "finetuned.keras", run_dir / "export",
                   Preprocessing.load(run_dir / "preprocessing.json"), config.get("target"),
                   _existing(run_dir / "expectations.json"), _existing(run_dir / "reference.parquet"))

    @classmethod
    def from_version(cls, version) -> "TrainedModel":
        return cls(version.ref, version.file(MODEL_FILE), version.file("export"),
                   Preprocessing.load(version.file(PREPROCESSING_FILE)),
                   version.record.get("config", {}).get("target"), _existing(version.file("expectations.json")),
                   _existing(version.file("reference.parquet")))

    def variants(self) -> list[str]:
        return sorted(p.stem.removeprefix("model_") for p in self.export_dir.glob("model_*.tflite"))


def open_model(source: str | Path, registry: Path | str = "registry") -> TrainedModel:
    """A run folder (train or retrain), or NAME[@vNNNN] in `registry` (checksums verified)."""
    path = Path(source)
    if path.is_dir():
        if not (path / "finetuned.keras").exists() or not (path / "preprocessing.json").exists():
            raise DataError(f"{path}: not a finished run folder (no finetuned.keras / preprocessing.json)")
        return TrainedModel.from_run_folder(path)
    return TrainedModel.from_version(Registry(registry).resolve(str(source), verify=True))


@dataclass
class Predictions:
    """Labels and probabilities for new data, in its own order, with what was checked.

    Attributes:
        ref: the model scored with; variant: keras or a TFLite variant.
        ids: file names (images), sample numbers (sequences) or row numbers (tables); id_name says which.
        labels: predicted class names; probabilities: [rows, classes] in `class_names` order.
        notes: what scoring did to the data (resizing, padding, unseen categories, expectation warnings).
        drift: the new data against the model's training data (None without a reference).
        kept: a column copied through from the input (`keep`), or None.
    """

    ref: str
    variant: str
    ids: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]
    notes: list[str] = field(default_factory=list)
    drift: DriftReport | None = None
    kept: pd.Series | None = None
    id_name: str = "row"

    def to_frame(self) -> pd.DataFrame:
        """[kept column], row / file / sample, label, p_<class> for each class."""
        columns = {} if self.kept is None else {str(self.kept.name): self.kept.to_numpy()}
        columns.setdefault(self.id_name, self.ids)
        columns["label"] = self.labels
        for i, name in enumerate(self.class_names):
            columns[f"p_{name}"] = np.round(self.probabilities[:, i].astype(np.float64), 6)
        return pd.DataFrame(columns)

    def write_csv(self, path: Path) -> Path:
        """Written beside the target and renamed into place: readers never see half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.to_frame().to_csv(index=False))
        return path

    def summary(self) -> dict:
        counts = collections.Counter(self.labels.tolist())
        return {"model": self.ref, "variant": self.variant, "rows": len(self.labels),
                "labels": {name: counts.get(name, 0) for name in self.class_names},
                "drift": self.drift.summary() if self.drift else "no drift reference",
                "drifted": [c.column for c in self.drift.drifted] if self.drift else [], "notes": self.notes}


def predict(model: TrainedModel, data, variant: str | None = None, keep: str | None = None) -> Predictions:
    """Score `data` (a path, a DataFrame, or an array of samples) with `model` or its TFLite `variant`."""
    dataset, ids, kept, notes = read_new_data(model, data, keep)
    prep = model.prep
    profiled = profile(dataset.kind, dataset.features, dataset.labels, prep.text_columns,
                       prep.text_tokenizer).drop(columns=[LABEL_COLUMN])
    if model.suite_path is not None:
        report = validate_frame(for_expectations(profiled), without_labels(load_suite(model.suite_path)))
        notes += [f"expectation warning: {line}" for line in report.failures]
    drift = None
    if model.reference_path is not None:
        drift = drift_against(read_reference(model.reference_path).drop(columns=[LABEL_COLUMN], errors="ignore"),
                              profiled)
        notes += drift.notes
    x = encode_features(dataset, model.prep)
    probabilities = _score(model, x, variant or KERAS)
    labels = np.asarray(model.prep.class_names, dtype=object)[np.argmax(probabilities, axis=1)]
    return Predictions(model.ref, variant or KERAS, ids, labels, probabilities, model.prep.class_names, notes, drift,
                       kept, FOLDER_ID if _is_folder(data) and dataset.kind == "table" else ID_NAMES[dataset.kind])


def read_new_data(model: TrainedModel, data, keep: str | None = None):
    """(unlabelled Dataset, ids, kept column, notes) in the model's input terms, or a `DataError` naming the problem."""
    source = str(data) if isinstance(data, (str, Path)) else type(data).__name__
    kind = model.prep.kind
    if kind == "table":
        frame, ids = _table_frame(model.prep, data)
        features, kept, notes = _table(frame, model, source, keep)
        ids = ids or [str(i) for i in range(len(features))]
        return _unlabelled("table", features, source), ids, kept, notes
    if keep:
        raise DataError(f"--keep {keep!r}: only tables have columns to copy through")
    if kind == "image":
        images, ids, notes = _images(data, model.prep, source)
        return _unlabelled("image", images, source), ids, None, notes
    sequences, notes = _sequences(data, model.prep, source)
    return _unlabelled("sequence", sequences, source), [str(i) for i in range(len(sequences))], None, notes


def _table_frame(prep: Preprocessing, data) -> tuple[pd.DataFrame, list[str] | None]:
    """New rows as a frame (and, for a folder of texts, the files' names): a frame, a table file, a folder of .txt
    files or raw strings (a model of one text column and nothing else), or an array of the model's columns."""
    only_text = prep.text_columns if len(prep.text_columns) == 1 and not prep.text_start else None
    if isinstance(data, pd.DataFrame):
        return data, None
    if isinstance(data, (str, Path)) and Path(data).is_dir() and only_text:
        frame, files = read_unlabelled_folder(Path(data))
        return frame.set_axis(only_text, axis=1), files
    if isinstance(data, (str, Path)):
        return _table_file(Path(data)), None
    if only_text and all(isinstance(v, str) for v in data):
        return pd.DataFrame({only_text[0]: list(data)}), None
    return pd.DataFrame(np.asarray(data), columns=prep.numeric_columns + prep.categorical_columns + prep.text_columns), \
        None


def _table_file(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"{path}: the model takes a table; give a .csv, .tsv or .parquet file")
    return read_table(path)


def _table(frame: pd.DataFrame, model: TrainedModel, source: str, keep: str | None):
    frame = frame.rename(columns=str).reset_index(drop=True)
    prep, notes = model.prep, []
    roles = from_json(prep.roles)
    expected = [*prep.numeric_columns, *prep.categorical_columns, *prep.text_columns]
    given = source_columns(roles) if roles else expected  # dates come as dates, not as their parts
    missing = [c for c in given if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} that {model.ref} was trained on; "
                        f"columns are {names(frame.columns)}")
    if keep is not None and keep not in frame.columns:
        raise DataError(f"{source}: --keep {shown(keep)} is not a column; columns are {names(frame.columns)}")
    ignored = [c for c in frame.columns if c not in given and c not in (model.target, keep)]
    if ignored:
        notes.append(f"columns the model does not use were ignored: {', '.join(ignored)}")
    kept = frame[keep] if keep else None
    numbers = [c for c, role in roles.items() if role.role == ColumnRole.NUMERIC] if roles else prep.numeric_columns
    for column in numbers:  # a clock's or a date's text is read as its role says, below
        if column in frame.columns:
            stray = check_not_mixed(source, frame[column])
            if len(stray):
                notes.append(f"column {column!r}: text in {len(stray)} of {len(frame)} rows read as missing (e.g. "
                             f"{examples(stray)})")
    frame = apply_roles(frame, roles) if roles else frame
    for column in prep.numeric_columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in prep.categorical_columns:
        known = set(prep.vocabularies[column])
        values = frame[column].dropna().astype(str)
        unseen = values[~values.isin(known)]
        if len(unseen):
            notes.append(f"column {column!r}: {len(unseen)} rows with categories outside the model's vocabulary "
                         f"(e.g. {', '.join(map(repr, unseen.unique()[:3]))}) are encoded as unknown")
    return frame[expected], kept, notes


def _images(data, prep: Preprocessing, source: str) -> tuple[np.ndarray, list[str], list[str]]:
    height, width, channels = prep.input_shape
    if not isinstance(data, (str, Path)):
        array = np.asarray(data, dtype=np.float32)
        if array.shape[1:] != (height, width, channels):
            raise DataError(f"{source}: images have shape {array.shape[1:]}; the model takes {(height, width, channels)}")
        return array, [str(i) for i in range(len(array))], []
    folder = Path(data)
    if not folder.is_dir():
        raise DataError(f"{folder}: the model takes images; give a folder of image files")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or its subfolders")
    arrays, resized, bad = [], 0, []
    for file in files:
        try:
            image = read_image(file)
            resized += (image.height, image.width) != (height, width)
            arrays.append(image_array(image, "L" if channels == 1 else "RGB", height, width, file))
        except DataError as exc:
            bad.append(str(exc))
    if bad:
        raise DataError(f"{folder}: {len(bad)} file(s) cannot be read as images: {'; '.join(bad[:3])}"
                        + (f"; and {len(bad) - 3} more" if len(bad) > 3 else ""))
    notes = [f"{resized} images resized to the model's {height}x{width}"] if resized else []
    return np.stack(arrays), [str(f.relative_to(folder)) for f in files], notes


def _sequences(data, prep: Preprocessing, source: str) -> tuple[np.ndarray, list[str]]:
    length, features = prep.input_shape
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.suffix.lower() not in SEQUENCE_SUFFIXES or not path.is_file():
            raise DataError(f"{path}: the model takes sequences; give an .npz file with x, or a .ts file")
        data, _ = read_sequences(path, labelled=False)
    sequences = as_series(data)
    wrong = [i for i, s in enumerate(sequences) if s.ndim != 2 or s.shape[1] != features]
    if wrong:
        raise DataError(f"{source}: sequences {wrong[:5]} do not have {features} feature(s) per step as the model's "
                        "training data had")
    if not sequences:
        raise DataError(f"{source}: no sequences to score")
    return fit_length(sequences, length, MODEL_LENGTH)


def _score(model: TrainedModel, x: np.ndarray, variant: str) -> np.ndarray:
    if variant == KERAS:
        from models.saving import load_model

        return load_model(model.model_path).predict(x, verbose=0)
    from pipelines.export.tflite import LiteModel

    path = model.export_dir / f"model_{variant}.tflite"
    if not path.is_file():
        raise ExportError(f"{model.ref} has no TFLite variant {variant!r}; exported: "
                          f"{', '.join(model.variants()) or 'none'} (or keras)")
    return LiteModel(path.read_bytes()).predict(x)


def _unlabelled(kind: str, features, source: str) -> Dataset:
    return Dataset(kind, features, np.full(len(features), "", dtype=object), source)


def _is_folder(data) -> bool:
    return isinstance(data, (str, Path)) and Path(data).is_dir()


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None
