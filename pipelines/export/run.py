"""Export step: .keras, SavedModel and TFLite variants, each checked on the test split.

Every TFLite variant is converted with builtin ops only, its op list is
checked, it gets LiteRT metadata (`pipelines.export.metadata`; image models take
RGB, `pipelines.export.rgb`), and it is run through the LiteRT interpreter on the test split:
accuracy and macro-F1 next to the Keras model's, label agreement, largest
probability difference, file size and batch-1 latency. A variant that loses
more than `tolerance` accuracy is flagged and never recommended.

Everything is written into a temporary folder beside the target and renamed
into place only when all of it is written and checked, so a failed export
leaves the last good one (or nothing) behind, never half a folder.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from pipelines.config import ExportOptions
from pipelines.errors import ExportError
from pipelines.export import model_card
from pipelines.export.calibration import Calibration
from pipelines.export.compress import compress
from pipelines.export.metadata import About, with_metadata
from pipelines.export.records import TRAINED_MODEL, ExportData, ExportResult, KerasReference, VariantReport
from pipelines.export.rgb import client_model, file_input_shape, file_samples
from pipelines.preprocess import REPLAY_ROWS, Preprocessing, Replay
from pipelines.export.tflite import (
    CHECK_THREADS,
    INT8_IO_TOKEN_IDS,
    Converter,
    LiteModel,
    check_builtin_ops,
    keras_latency,
    sparse_tensors,
    tflite_latency,
    variable_tensors,
    write_saved_model,
)
from pipelines.export.variant_plot import PLOT_FILE, plot_variants


@dataclass
class ExportSource:
    """The files a model is exported from: the model, its preprocessing, its check samples and its card facts.

    A run folder keeps them as `pipelines.runs.finish_candidate` wrote them; a
    registry version keeps copies (`pipelines.registry.RUN_FILES`).
    """

    model: Path
    preprocessing: Path
    export_inputs: Path
    card: Path

    @classmethod
    def run_folder(cls, run_dir: Path) -> "ExportSource":
        run_dir = Path(run_dir)
        return cls(run_dir / "finetuned.keras", run_dir / "preprocessing.json", run_dir / "export_inputs.npz",
                   run_dir / "card.json")

    @classmethod
    def version_folder(cls, path: Path) -> "ExportSource":
        path = Path(path)
        return cls(path / "export" / "model.keras", path / "export" / "preprocessing.json",
                   path / "export_inputs.npz", path / "card.json")

    @property
    def replay(self) -> Path:
        """The training sample beside the card (`pipelines.runs.save_training_memory`): what compression learns from."""
        return self.card.with_name("replay.npz")

    def missing(self) -> list[str]:
        return [p.name for p in (self.model, self.preprocessing, self.export_inputs, self.card) if not p.exists()]


# What a run folder must hold to be re-exported without retraining.
REEXPORT_FILES = tuple(p.name for p in vars(ExportSource.run_folder(Path("."))).values())


def export_model(model_path: Path, prep: Preprocessing, data: ExportData, export_dir: Path,
                 options: ExportOptions | None = None, card: model_card.CardFacts | None = None,
                 training: Path | None = None, test_probabilities: np.ndarray | None = None) -> ExportResult:
    """Write the model in every asked format to `export_dir` atomically, each checked on the test split against
    the Keras model's probabilities (`test_probabilities` when the caller has them, as the run's evaluation does).

    With `options.prune` / `options.distill`, a pruned model and a distilled student (`pipelines.export.compress`),
    trained on the sample in `training` (a `replay.npz`), are exported as int8 variants beside the others.
    """
    from models.saving import load_model

    options = options or ExportOptions()
    if options.int8_io and prep.text_columns:
        raise ExportError(INT8_IO_TOKEN_IDS)
    model = load_model(model_path)
    staging = export_dir.with_name(f".{export_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        model.save(staging / "model.keras")
        write_saved_model(client_model(model, prep), staging / "saved_model", file_input_shape(prep))
        keras_probabilities = (model.predict(data.x_test, verbose=0) if test_probabilities is None
                               else test_probabilities)
        reference = _keras_reference(model, keras_probabilities, data, staging / "model.keras", options)
        converter = Converter(staging / "saved_model")
        variants = [_export_variant(staging, converter, variant, keras_probabilities, reference, data, options, prep,
                                    card)
                    for variant in options.quantize]
        if options.compressing:
            variants += _compressed_variants(model_path, prep, data, staging, converter, options, keras_probabilities,
                                             reference, training, variants, card)
        _recommend(variants)
        result = ExportResult(export_dir, {}, reference, variants, options.quantization_tolerance, options.int8_io)
        plot_variants(result, staging / PLOT_FILE)
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
    """Export a finished run folder again (e.g. other quantize modes) into its `export/`; no retraining."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run folder {run_dir} does not exist")
    source = ExportSource.run_folder(run_dir)
    if source.missing():
        raise ExportError(f"run folder {run_dir} is incomplete, missing {', '.join(source.missing())}: only a run "
                          "that finished fine-tuning can be re-exported")
    return export_from(source, run_dir / "export", options)


def export_from(source: ExportSource, export_dir: Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the model of `source` to `export_dir`, checked on the samples it was trained with."""
    prep = _read(source.preprocessing, Preprocessing.load)
    data = _read(source.export_inputs, ExportData.load)
    facts = _read(source.card, model_card.CardFacts.load)
    return export_model(source.model, prep, data, export_dir, options, facts, training=source.replay)


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


def _compressed_variants(model_path: Path, prep: Preprocessing, data: ExportData, staging: Path,
                         converter: Converter, options: ExportOptions, keras_probabilities: np.ndarray,
                         reference: KerasReference, training: Path | None, variants: list[VariantReport],
                         card: model_card.CardFacts | None) -> list[VariantReport]:
    """Prune and/or distil the model (`pipelines.export.compress`) and export each as an int8 variant."""
    if training is None or not Path(training).exists():
        raise ExportError(f"compression learns from the run's training sample, and {training or 'replay.npz'} is "
                          "missing: compress a run folder or registered version that has replay.npz")
    x, y = Replay.load(training).sample(REPLAY_ROWS, prep.class_names, seed=0)
    int8 = next((v for v in variants if v.variant == "int8"), None)
    teacher_kb = (int8.bytes if int8 else len(converter.convert(
        "int8", Calibration(file_samples(data.x_representative, prep))))) / 1024
    work = staging / ".compress"
    reports = []
    for made in compress(model_path, prep, x, y, options, teacher_kb, data.x_representative):
        made.model.save(staging / f"model_{made.kind}.keras")
        saved_model = write_saved_model(client_model(made.model, prep), work / made.kind, file_input_shape(prep))
        reports.append(_export_variant(staging, Converter(saved_model), made.variant, keras_probabilities, reference,
                                       data, options, prep, card, mode="int8", source=made.description,
                                       sparsity=made.sparsity))
    shutil.rmtree(work, ignore_errors=True)
    return reports


def _export_variant(staging: Path, converter: Converter, variant: str, keras_probabilities: np.ndarray,
                    reference: KerasReference, data: ExportData, options: ExportOptions, prep: Preprocessing,
                    card: model_card.CardFacts | None, *, mode: str | None = None, source: str = TRAINED_MODEL,
                    sparsity: float | None = None) -> VariantReport:
    """Convert one variant of `converter`'s SavedModel (`mode`: the quantize mode, default `variant`), write its
    metadata in and check it against the Keras model."""
    file = f"model_{variant}.tflite"
    calibration = Calibration(file_samples(data.x_representative, prep))
    try:
        tflite = converter.convert(mode or variant, calibration, options.int8_io, sparse=sparsity is not None)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{file}: conversion with builtin ops only failed: {_last_line(exc)}") from exc
    ops = check_builtin_ops(tflite, file)
    if sparsity is not None:
        source += ("; weights stored sparse" if sparse_tensors(tflite) else
                   "; weights stored dense (the sparse form was larger or LiteRT could not run it; gzip shows the "
                   "saving)")
    tflite = with_metadata(tflite, prep, data, About.of(prep, card, variant, source),
                           stateful=variable_tensors(tflite) > 0)
    (staging / file).write_bytes(tflite)
    lite = LiteModel(tflite, num_threads=CHECK_THREADS)
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
        within_tolerance=drop <= options.quantization_tolerance + 1e-9, stateful=lite.stateful,
        source=source, sparsity=sparsity, gzip_bytes=len(gzip.compress(tflite, compresslevel=9)),
        calibration_samples=calibration.used or None,
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
