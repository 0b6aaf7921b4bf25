"""Export step: .keras, SavedModel and a builtin-ops-only float32 TFLite model, checked for parity.

Everything is written into a temporary folder beside the target and renamed
into place only when every file is written and the TFLite model agrees with
the Keras model on the test split, so a failed export leaves the last good
one (or nothing) behind, never half a folder.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.preprocess import Preprocessing

PARITY_BATCH = 256


@dataclass
class Parity:
    """How closely the TFLite model follows the Keras model on the same inputs."""

    n: int
    label_agreement: float
    max_probability_difference: float
    accuracy: float


@dataclass
class ExportResult:
    directory: Path
    files: dict[str, str]
    tflite_parity: Parity
    tflite_bytes: int


def export_model(model_path: Path, prep: Preprocessing, x_test: np.ndarray, y_test: np.ndarray,
                 export_dir: Path) -> ExportResult:
    """Write all model formats to `export_dir` atomically and check the TFLite one on the test split."""
    import keras

    model = keras.models.load_model(model_path)
    staging = export_dir.with_name(f".{export_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        model.save(staging / "model.keras")
        write_saved_model(model, staging / "saved_model", prep.input_shape)
        tflite = convert_to_tflite(staging / "saved_model")
        (staging / "model.tflite").write_bytes(tflite)
        parity = tflite_parity(tflite, model.predict(x_test, verbose=0), x_test, y_test)
        (staging / "labels.json").write_text(json.dumps(prep.class_names, indent=2))
        prep.save(staging / "preprocessing.json")
        files = sorted(p.name for p in staging.iterdir())
        replace_dir(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(export_dir, {name: str(export_dir / name) for name in files}, parity, len(tflite))


def write_saved_model(model, path: Path, input_shape: list[int]) -> Path:
    """An inference-only endpoint (training=False): what TFLite converts reliably (keras#19108)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda features: model(features, training=False),
        input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="features")],
    )
    archive.write_out(str(path), verbose=False)
    return path


def convert_to_tflite(saved_model: Path) -> bytes:
    """Float32 TFLite with TFLite builtin ops only; conversion fails loudly on anything else."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def tflite_predict(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Run the LiteRT interpreter over `x` in batches."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = []
    for start in range(0, len(x), PARITY_BATCH):
        batch = np.ascontiguousarray(x[start:start + PARITY_BATCH], dtype=np.float32)
        interpreter.resize_tensor_input(input_index, list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return np.concatenate(outputs)


def tflite_parity(tflite: bytes, keras_probabilities: np.ndarray, x: np.ndarray, y: np.ndarray) -> Parity:
    probabilities = tflite_predict(tflite, x)
    labels = np.argmax(probabilities, axis=1)
    return Parity(
        n=int(len(x)),
        label_agreement=float(np.mean(labels == np.argmax(keras_probabilities, axis=1))),
        max_probability_difference=float(np.max(np.abs(probabilities - keras_probabilities))),
        accuracy=float(np.mean(labels == y)),
    )


def replace_dir(source: Path, target: Path) -> None:
    """Swap `source` in for `target` with renames, so readers see the old or the new folder whole."""
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)
