"""Export step: .keras, SavedModel and TFLite variants, each checked on the test split.

Every TFLite variant is converted with builtin ops only, its op list is
checked, and it is run through the LiteRT interpreter on the test split:
accuracy and macro-F1 next to the Keras model's, label agreement, largest
probability difference, file size and batch-1 latency. A variant that loses
more than `tolerance` accuracy is flagged and never recommended.

Everything is written into a temporary folder beside the target and renamed
into place only when all of it is written and checked, so a failed export
leaves the last good one (or nothing) behind, never half a folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from pipelines import model_card
from pipelines.errors import ExportError
from pipelines.preprocess import ModelInputs, Preprocessing
from pipelines.tflite import (
    VARIANTS,
    LiteModel,
    TensorSpec,
    check_builtin_ops,
    convert,
    keras_latency,
    tflite_latency,
    write_saved_model,
)

REPRESENTATIVE_SAMPLES = 200
DEFAULT_TOLERANCE = 0.01
# What a run folder must hold to be re-exported without retraining (written by pipelines.train).
REEXPORT_FILES = ("finetuned.keras", "preprocessing.json", "export_inputs.npz", "card.json")


@dataclass
class ExportOptions:
    """Which variants to write and how strict the parity check is."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    int8_io: bool = False
    tolerance: float = DEFAULT_TOLERANCE
    latency_runs: int = 100

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ExportError(f"unknown quantize mode {', '.join(map(repr, unknown)) or '(none given)'}; "
                              f"choose from {', '.join(VARIANTS)}")
        self.variants = [v for v in VARIANTS if v in self.variants]


@dataclass
class ExportData:
    """The samples an export is checked and calibrated on, kept in the run folder for re-exports."""

    x_test: np.ndarray
    y_test: np.ndarray
    x_representative: np.ndarray
    feature_min: np.ndarray
    feature_max: np.ndarray

    @classmethod
    def from_inputs(cls, inputs: ModelInputs, seed: int = 0) -> "ExportData":
        """Representative samples are drawn from the training split only."""
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(inputs.x_train), min(REPRESENTATIVE_SAMPLES, len(inputs.x_train)), replace=False)
        per_feature = inputs.x_train.reshape(-1, inputs.x_train.shape[-1])
        return cls(inputs.x_test, inputs.y_test, inputs.x_train[np.sort(picked)],
                   np.nanmin(per_feature, axis=0), np.nanmax(per_feature, axis=0))

    def save(self, path: Path) -> Path:
        np.savez_compressed(path, **asdict(self))
        return path

    @classmethod
    def load(cls, path: Path) -> "ExportData":
        with np.load(path) as saved:
            return cls(**{name: saved[name] for name in cls.__dataclass_fields__})


@dataclass
class VariantReport:
    """One TFLite variant: file, tensors, parity on the test split, latency, verdict."""

    variant: str
    file: str
    bytes: int
    sha256: str
    operators: list[str]
    input: TensorSpec
    output: TensorSpec
    accuracy: float
    macro_f1: float
    accuracy_drop: float
    label_agreement: float
    max_probability_difference: float
    latency_median_ms: float
    latency_p95_ms: float
    within_tolerance: bool
    recommended: bool = False


@dataclass
class KerasReference:
    accuracy: float
    macro_f1: float
    latency_median_ms: float
    latency_p95_ms: float
    bytes: int


@dataclass
class ExportResult:
    directory: Path
    files: dict[str, str]
    keras: KerasReference
    variants: list[VariantReport]
    tolerance: float
    int8_io: bool

    @property
    def recommended(self) -> VariantReport | None:
        return next((v for v in self.variants if v.recommended), None)

    def variant(self, name: str) -> VariantReport:
        return next(v for v in self.variants if v.variant == name)


def export_model(model_path: Path, prep: Preprocessing, data: ExportData, export_dir: Path,
                 options: ExportOptions | None = None, card: model_card.CardFacts | None = None) -> ExportResult:
    """Write the model in every asked format to `export_dir` atomically, each checked on the test split."""
    import keras

    options = options or ExportOptions()
    model = keras.models.load_model(model_path)
    staging = export_dir.with_name(f".{export_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        model.save(staging / "model.keras")
        write_saved_model(model, staging / "saved_model", prep.input_shape)
        keras_probabilities = model.predict(data.x_test, verbose=0)
        reference = _keras_reference(model, keras_probabilities, data, staging / "model.keras", options)
        variants = [_export_variant(staging, variant, keras_probabilities, reference, data, options)
                    for variant in options.variants]
        _recommend(variants)
        result = ExportResult(export_dir, {}, reference, variants, options.tolerance, options.int8_io)
        (staging / "labels.json").write_text(json.dumps(prep.class_names, indent=2))
        prep.save(staging / "preprocessing.json")
        model_card.write_spec(result, prep, data, staging / "model_spec.json")
        model_card.write_card(result, prep, card, staging / "MODEL_CARD.md")
        result.files = {p.name: str(export_dir / p.name) for p in sorted(staging.iterdir())}
        replace_dir(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def reexport(run_dir: Path, options: ExportOptions | None = None) -> ExportResult:
    """Export again from a finished run folder, e.g. with other quantize modes; no retraining."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run folder {run_dir} does not exist")
    missing = [name for name in REEXPORT_FILES if not (run_dir / name).exists()]
    if missing:
        raise ExportError(f"run folder {run_dir} is incomplete, missing {', '.join(missing)}: only a run that "
                          "finished fine-tuning can be re-exported")
    options = options or ExportOptions()
    prep = _read(run_dir / "preprocessing.json", Preprocessing.load)
    data = _read(run_dir / "export_inputs.npz", ExportData.load)
    facts = _read(run_dir / "card.json", model_card.CardFacts.load)
    return export_model(run_dir / "finetuned.keras", prep, data, run_dir / "export", options, facts)


def _read(path: Path, loader):
    try:
        return loader(path)
    except Exception as exc:
        raise ExportError(f"{path} cannot be read ({type(exc).__name__}: {exc}); re-run training to rebuild it") from exc


def _keras_reference(model, probabilities, data: ExportData, keras_file: Path, options) -> KerasReference:
    accuracy, macro_f1 = _scores(data.y_test, probabilities)
    latency = keras_latency(model, data.x_test, runs=options.latency_runs)
    return KerasReference(accuracy=accuracy, macro_f1=macro_f1, latency_median_ms=latency.median_ms,
                          latency_p95_ms=latency.p95_ms, bytes=keras_file.stat().st_size)


def _scores(y: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro-F1 of the argmax labels: the two numbers every variant is compared on."""
    predicted = np.argmax(probabilities, axis=1)
    return float(accuracy_score(y, predicted)), float(f1_score(y, predicted, average="macro", zero_division=0))


def _export_variant(staging: Path, variant: str, keras_probabilities: np.ndarray, reference: KerasReference,
                    data: ExportData, options: ExportOptions) -> VariantReport:
    file = f"model_{variant}.tflite"
    try:
        tflite = convert(staging / "saved_model", variant, data.x_representative, options.int8_io)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{file}: conversion with builtin ops only failed: {_last_line(exc)}") from exc
    ops = check_builtin_ops(tflite, file)
    (staging / file).write_bytes(tflite)
    lite = LiteModel(tflite)
    probabilities = lite.predict(data.x_test)
    accuracy, macro_f1 = _scores(data.y_test, probabilities)
    latency = tflite_latency(tflite, data.x_test, runs=options.latency_runs)
    drop = reference.accuracy - accuracy
    return VariantReport(
        variant=variant, file=file, bytes=len(tflite), sha256=hashlib.sha256(tflite).hexdigest(), operators=ops,
        input=lite.input, output=lite.output, accuracy=accuracy, macro_f1=macro_f1, accuracy_drop=drop,
        label_agreement=float(np.mean(np.argmax(probabilities, axis=1) == np.argmax(keras_probabilities, axis=1))),
        max_probability_difference=float(np.max(np.abs(probabilities - keras_probabilities))),
        latency_median_ms=latency.median_ms, latency_p95_ms=latency.p95_ms,
        within_tolerance=drop <= options.tolerance + 1e-9,
    )


def _recommend(variants: list[VariantReport]) -> None:
    """The smallest variant within tolerance (the faster one on a tie); none if all lose too much."""
    passing = [v for v in variants if v.within_tolerance]
    if passing:
        min(passing, key=lambda v: (v.bytes, v.latency_median_ms)).recommended = True


def _last_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def replace_dir(source: Path, target: Path) -> None:
    """Swap `source` in for `target` with renames, so readers see the old or the new folder whole."""
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)
