"""Fine-tune step: rebuild the best architecture and train it longer on train+val.

Validation data was spent choosing the architecture, so the final model
learns from it too; early stopping and learning-rate reduction watch the
training loss, and the test split stays untouched for evaluation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

from models import KerasflowHyperModel
from pipelines.preprocess import ModelInputs, Preprocessing


@dataclass
class FineTuneResult:
    model_path: Path
    history: dict[str, list[float]]
    epochs: int
    seconds: float


def fine_tune(
    inputs: ModelInputs,
    prep: Preprocessing,
    hyperparameters: dict,
    output_path: Path,
    *,
    max_epochs: int,
    batch_size: int,
    seed: int,
) -> FineTuneResult:
    """Train the chosen architecture from scratch on train+val; save it to `output_path`."""
    keras.utils.set_random_seed(seed)
    model = build_from_hyperparameters(prep, hyperparameters)
    x = np.concatenate([inputs.x_train, inputs.x_val])
    y = np.concatenate([inputs.y_train, inputs.y_val])
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_lr=1e-6),
        keras.callbacks.EarlyStopping(monitor="loss", patience=6, restore_best_weights=True),
    ]
    started = time.monotonic()
    history = model.fit(x, y, epochs=max_epochs, batch_size=batch_size, callbacks=callbacks, shuffle=True, verbose=0)
    model.save(output_path)
    curves = {k: [float(v) for v in values] for k, values in history.history.items()}
    return FineTuneResult(output_path, curves, len(curves["loss"]), time.monotonic() - started)


def build_from_hyperparameters(prep: Preprocessing, values: dict) -> keras.Model:
    """keras-tuner takes values already in `hp.values` over each hyperparameter's default."""
    hp = kt.HyperParameters()
    hp.values.update(values)
    return KerasflowHyperModel(prep, [values["family"]]).build(hp)


def save_history(result: FineTuneResult, path: Path) -> Path:
    path.write_text(json.dumps(result.history))
    return path
