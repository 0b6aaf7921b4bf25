"""Compression beyond quantization: a pruned copy and a distilled student of a trained model.

Both learn from the run's training sample (`replay.npz`: up to
`pipelines.preprocess.REPLAY_ROWS` rows of the model inputs that training
and validation held), so they run at training time (`--prune`, `--distill`)
or later from a run folder or a registered version alone (`kerasflow
compress`). The export step converts each to int8 and checks it on the test
split against the trained model, like any variant: its accuracy drop decides
its verdict, and the smallest model within tolerance is recommended.

- Pruning (`models.pruning.MagnitudePruning`): a copy of the model trains
  `compress_epochs` more epochs (at least `MIN_STEPS` steps) while
  its kernels' smallest weights are zeroed, up to the target sparsity.

On small data an epoch is a few batches, and Keras pays a fixed cost per
epoch (about 45 ms on 2 cores): 500 steps over 48 rows were 250 epochs of two
batches, 11-12 s of fit for 3.4-3.7 s of steps. So an epoch here holds at
least `MIN_EPOCH_BATCHES` batches (`training_passes`: the rows repeated,
shuffled each epoch as before), and the number of steps is unchanged.
- Distillation (`keras.distillation.Distiller`, `LogitsDistillation`): the
  largest student of `models.hypermodel.student_ladder` whose int8 file fits
  the budget (`--max-model-kb`, `--max-latency-ms`; without one, half the
  trained model's int8 size) learns from the labels and from the trained
  model's temperature-softened predictions (Hinton et al. 2015). The models
  end in softmax and the distiller wants logits: the log of the
  probabilities is the logits up to a per-sample constant, which softmax
  ignores, so both are wrapped in a log for training.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras
import numpy as np

from models.hypermodel import student_ladder
from models.pruning import MagnitudePruning, prunable_weights, sparsity
from models.saving import load_model
from models.training_state import build_training_state
from pipelines.config import ExportOptions
from pipelines.devices import float32_policy
from pipelines.export.tflite import int8_footprint
from pipelines.finetune import build_from_hyperparameters
from pipelines.preprocess import Preprocessing

RECOVERY_LEARNING_RATE = 1e-3  # Adam's default: at 1e-4 a small table model lost 5 points at 50% sparsity
MIN_STEPS = 500  # small data: more epochs, so that sparsity rises gently and a student sees enough batches
MIN_EPOCH_BATCHES = 20  # batches an epoch holds at least: the rows repeated (see the module docstring)
DISTILL_TEMPERATURE = 3.0
STUDENT_LOSS_WEIGHT = 0.5  # labels and teacher weigh the same
BATCH_SIZE = 32
LOG_FLOOR = 1e-7


class Compression:
    """Kinds of compressed model; each becomes the export variant `<kind>_int8`."""

    PRUNED = "pruned"
    DISTILLED = "distilled"


@dataclass
class CompressedModel:
    """A compressed Keras model and what it is, for the variant table."""

    kind: str
    model: keras.Model
    description: str
    seconds: float
    sparsity: float | None = None

    @property
    def variant(self) -> str:
        return f"{self.kind}_int8"


def compress(model_path, prep: Preprocessing, x: np.ndarray, y: np.ndarray, options: ExportOptions,
             teacher_int8_kb: float, representative: np.ndarray, seed: int = 0) -> list[CompressedModel]:
    """The compressed models `options` asks for (pruned, distilled), each trained on (x, y)."""
    made = []
    if options.prune is not None:
        made.append(prune(load_model(model_path), x, y, options.prune, options.compress_epochs, seed))
    if options.distill:
        made.append(distill(load_model(model_path), prep, x, y, options, teacher_int8_kb,
                            representative, seed))
    return made


def prune(model: keras.Model, x: np.ndarray, y: np.ndarray, target: float, epochs: int,
          seed: int = 0) -> CompressedModel:
    """`model` trained `epochs` more epochs (at least `MIN_STEPS` steps) while `target` of each kernel's weights
    go to zero."""
    started = time.monotonic()
    keras.utils.set_random_seed(seed)
    count = sum(int(np.prod(w.shape)) for w in prunable_weights(model))
    if not count:  # closed-form families (MiniRocket, trees) hold no trainable kernel
        return CompressedModel(Compression.PRUNED, model, "nothing to prune: no trainable kernels",
                               time.monotonic() - started, 0.0)
    model.compile(optimizer=keras.optimizers.Adam(RECOVERY_LEARNING_RATE), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y, epochs = training_passes(x, y, epochs)
    steps = epochs * math.ceil(len(x) / BATCH_SIZE)
    build_training_state(model, x, y)
    model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0,
              callbacks=[MagnitudePruning(target, steps)])
    reached = sparsity(model)
    return CompressedModel(Compression.PRUNED, model, f"{100 * reached:.0f}% of {count:,} kernel weights zeroed",
                           time.monotonic() - started, reached)


def distill(teacher: keras.Model, prep: Preprocessing, x: np.ndarray, y: np.ndarray, options: ExportOptions,
            teacher_int8_kb: float, representative: np.ndarray, seed: int = 0) -> CompressedModel:
    """The largest student that fits the budget, trained on the labels and the teacher's predictions.

    The ladder rung is picked by the int8 size of an untrained student (`int8_footprint`); the trained
    student's own int8 file decides, and a student over the budget gives way to the next smaller rung.
    """
    started = time.monotonic()
    target_kb = student_budget_kb(options, teacher_int8_kb)
    ladder = student_ladder(prep.search_kind)
    rung = first_fitting_rung(prep, ladder, target_kb, options.max_latency_ms, representative)
    for values in ladder[rung:]:
        student = _distilled(teacher, prep, values, x, y, options.compress_epochs, seed)
        kb = int8_footprint(student, prep.input_shape, representative, runs=1).int8_kb
        if kb <= target_kb:
            break
    fit = f"fits {target_kb:.1f} KiB" if kb <= target_kb else f"the smallest student; none fits {target_kb:.1f} KiB"
    return CompressedModel(Compression.DISTILLED, student, f"{describe_student(values)}, {kb:.1f} KiB int8 ({fit})",
                           time.monotonic() - started)


def student_budget_kb(options: ExportOptions, teacher_int8_kb: float) -> float:
    """The student's int8 size budget: --max-model-kb, else half the trained model's int8 file."""
    return options.max_model_kb if options.max_model_kb is not None else teacher_int8_kb / 2


def first_fitting_rung(prep: Preprocessing, ladder: list[dict], target_kb: float, max_latency_ms: float | None,
                       representative: np.ndarray) -> int:
    """Index of the largest rung whose untrained int8 file and latency are within budget (else the last)."""
    for index, values in enumerate(ladder):
        with float32_policy():
            footprint = int8_footprint(build_from_hyperparameters(prep, values), prep.input_shape,
                                       representative[:50], runs=10)
        if footprint.int8_kb <= target_kb and (max_latency_ms is None or footprint.latency_ms <= max_latency_ms):
            return index
    return len(ladder) - 1


def _distilled(teacher: keras.Model, prep: Preprocessing, values: dict, x: np.ndarray, y: np.ndarray, epochs: int,
               seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    with float32_policy():
        student = build_from_hyperparameters(prep, values)
    distiller = keras.distillation.Distiller(
        teacher=_logits(teacher), student=_logits(student),
        distillation_losses=keras.distillation.LogitsDistillation(temperature=DISTILL_TEMPERATURE),
        student_loss_weight=STUDENT_LOSS_WEIGHT)
    distiller.compile(optimizer=keras.optimizers.Adam(values["learning_rate"]),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y, epochs = training_passes(x, y, epochs)
    build_training_state(distiller, x, y)
    distiller.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)])
    return student


def training_passes(x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, y) repeated so that an epoch holds at least `MIN_EPOCH_BATCHES` batches, and the epochs that take as many
    steps as `epochs` passes over (x, y), or `MIN_STEPS` when those would be fewer."""
    steps = max(epochs * math.ceil(len(x) / BATCH_SIZE), MIN_STEPS)
    repeats = math.ceil(MIN_EPOCH_BATCHES * BATCH_SIZE / len(x))
    if repeats > 1:
        x, y = np.concatenate([x] * repeats), np.concatenate([y] * repeats)
    return x, y, math.ceil(steps / math.ceil(len(x) / BATCH_SIZE))


def describe_student(values: dict) -> str:
    widths = {k: v for k, v in values.items() if k.endswith(("_units", "_filters", "_layers", "_blocks"))}
    return f"{values['family']} student ({', '.join(f'{k} {v}' for k, v in widths.items())})"


def _logits(model: keras.Model) -> keras.Model:
    """The model with the log of its probabilities as output, sharing its layers."""
    return keras.Model(model.inputs, keras.ops.log(keras.ops.maximum(model.outputs[0], LOG_FLOOR)))
