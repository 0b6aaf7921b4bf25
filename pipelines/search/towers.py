"""The fast k-fold: the k fold models of one trial trained at once, as the towers of one graph.

Under k-fold selection (`.selection`) a gradient-trained trial used to build,
compile, trace and fit its k fold models one after another. On a few hundred
rows that fixed cost, not arithmetic, was most of a trial: a dense trial on
breast_cancer's 455 rows took 18.6 s. Here the k models are joined under one
input and one `fit` trains them all. Every row goes through every tower, and
a tower's loss weighs only its own fold's training rows: a sample weight of
zero on its held-out rows, the class weights folded in. Adam's steps are per
weight, and the towers share none, so each tower trains as it would alone.
The weights are scaled so that a tower's share of the loss is the mean over
its own rows, as in a model trained alone: the L2 penalties in the graph keep
their strength.

Inputs of more than `MAX_TOWER_INPUT_VALUES` values a row are left to the one-after-another loop.

A trial keeps its k fold models, averaged, as its bag (`save_bag`): if it is
chosen, that bag ships (`pipelines.finetune`), so what ships is what the
out-of-fold score measured.

`FoldStopping` scores each tower on its held-out fold after every epoch. It
keeps each tower's best epoch, ends the fit when every tower has gone
`patience` epochs without a lower held-out loss, and puts each tower's best
weights back. The folds' rows stay apart: a tower's weights do not depend on
its held-out rows' labels (`tests/model/test_fold_towers.py`). Batch normalisation
does see their inputs, but never their labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from models import average
from models.inference import BATCH_ROWS, log_loss_and_accuracy
from models.training_state import build_training_state

Folds = list[tuple[np.ndarray, np.ndarray]]
# Values per input row up to which the fold models train as towers: tables, series, images up to 64x64 gray. On
# larger images a CNN trial is its arithmetic, which towers do not shrink (even a 251-step series' CNN trial took
# 26.9 s either way), and k towers would hold k times the activations: their fold models train one after another.
MAX_TOWER_INPUT_VALUES = 4096
BAG_WEIGHTS_FILE = "fold_bag.weights.h5"
BAG_FILE = "fold_bag.json"  # the bag's fold count and curves


def towers_pay(input_shape) -> bool:
    """Whether the k fold models of a trial on inputs of this shape train as towers of one graph."""
    return math.prod(input_shape) <= MAX_TOWER_INPUT_VALUES


def fold_towers(members: list[keras.Model]) -> keras.Model:
    """One model whose output stacks the members' outputs (rows x towers x classes), compiled as the first member
    is (optimizer, jit), with the loss per row and tower; `fit` it with `tower_weights`."""
    inputs = keras.Input(shape=tuple(members[0].input.shape[1:]), name="features")
    for tower, member in enumerate(members):  # a graph's operation names are unique
        member.name = f"{member.name}_fold{tower}"
    stacked = keras.ops.stack([member(inputs) for member in members], axis=1)
    towers = keras.Model(inputs, stacked, name=f"fold_towers_{len(members)}")
    optimizer = members[0].optimizer
    towers.compile(optimizer=type(optimizer).from_config(optimizer.get_config()),
                   loss="sparse_categorical_crossentropy", jit_compile=members[0].jit_compile)
    return build_training_state(towers)


def tower_weights(y: np.ndarray, folds: Folds, class_weight: dict[int, float] | None = None) -> np.ndarray:
    """Sample weights (rows x towers): tower t weighs fold t's training rows, by class weight, and none of its
    held-out rows. Keras averages the loss over rows x towers; each column's scale makes tower t's part of it the
    mean over its own training rows, as in a model fitted on them alone."""
    per_row = np.ones(len(y), np.float32) if not class_weight else \
        np.asarray([class_weight.get(int(label), 1.0) for label in y], np.float32)
    weights = np.zeros((len(y), len(folds)), np.float32)
    for tower, (train, _) in enumerate(folds):
        weights[train, tower] = per_row[train] * len(folds) * len(y) / len(train)
    return weights


def tower_outputs(towers: keras.Model, x: np.ndarray, folds: Folds) -> np.ndarray:
    """Out-of-fold probabilities (rows x classes): each row's from the tower that never trained on it."""
    outputs = np.concatenate([np.asarray(towers.predict_on_batch(x[i:i + BATCH_ROWS]), np.float32)
                              for i in range(0, len(x), BATCH_ROWS)])
    heldout = np.zeros((len(x), outputs.shape[-1]), np.float32)
    for tower, (_, val) in enumerate(folds):
        heldout[val] = outputs[val, tower]
    return heldout


class FoldStopping(keras.callbacks.Callback):
    """Early stopping per tower on its held-out fold's log loss, each tower's best epoch restored at the end.

    Ends the fit when every tower has gone `patience` epochs without improving (Keras's `EarlyStopping`, with
    `restore_best_weights`, for each tower). `epochs_to_best` holds each tower's best epoch (1-based).
    """

    def __init__(self, members: list[keras.Model], x: np.ndarray, y: np.ndarray, folds: Folds, patience: int):
        super().__init__()
        self.members, self.x, self.y, self.folds, self.patience = members, x, y, folds, patience
        self.best = [np.inf] * len(members)
        self.waits = [0] * len(members)
        self.best_weights: list[list | None] = [None] * len(members)
        self.epochs_to_best = [0] * len(members)

    def on_epoch_end(self, epoch, logs=None):
        heldout = tower_outputs(self.model, self.x, self.folds)
        losses, accuracies = [], []
        for tower, (_, val) in enumerate(self.folds):
            scored = log_loss_and_accuracy(heldout[val], self.y[val])
            loss = scored["loss"]
            losses.append(loss)
            accuracies.append(scored["accuracy"])
            if loss < self.best[tower]:
                self.best[tower], self.waits[tower], self.epochs_to_best[tower] = loss, 0, epoch + 1
                self.best_weights[tower] = self.members[tower].get_weights()
            else:
                self.waits[tower] += 1
        if logs is not None:
            logs["val_loss"], logs["val_accuracy"] = float(np.mean(losses)), float(np.mean(accuracies))
        if min(self.waits) >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for member, weights in zip(self.members, self.best_weights):
            if weights is not None:
                member.set_weights(weights)


def fit_towers(members: list[keras.Model], x: np.ndarray, y: np.ndarray, folds: Folds, *, epochs: int,
               batch_size: int | None, class_weight: dict[int, float] | None = None, patience: int | None = None,
               callbacks: list | None = None) -> tuple[np.ndarray, keras.callbacks.History]:
    """Train the k fold `members` (compiled, not trained) together; their out-of-fold probabilities and the fit's
    history (`loss`: the towers' mean losses summed; with `patience`, `val_loss` and `val_accuracy`: the folds'
    held-out means). With `patience`, each member is trained to convergence on its fold (`FoldStopping`)."""
    towers = fold_towers(members)
    stopping = [FoldStopping(members, x, y, folds, patience)] if patience is not None else []
    targets = np.repeat(y[:, None], len(folds), axis=1)  # every tower's label for every row
    history = towers.fit(x, targets, sample_weight=tower_weights(y, folds, class_weight),
                         epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                         callbacks=[*stopping, *(callbacks or [])])
    return tower_outputs(towers, x, folds), history


def save_bag(trial_dir: Path, members: list[keras.Model], history: keras.callbacks.History) -> None:
    """Keep a trial's fold models, averaged (a bag), in `trial_dir`: their weights, as keras-tuner keeps a
    checkpoint (the bag is rebuilt from the trial's values), and the fit's curves, a fold model's mean loss."""
    average(members).save_weights(Path(trial_dir) / BAG_WEIGHTS_FILE)
    curves = {key: [float(v) / (len(members) if key == "loss" else 1) for v in values]
              for key, values in history.history.items()}
    (Path(trial_dir) / BAG_FILE).write_text(json.dumps({"folds": len(members), "curves": curves}))


def has_bag(trial_dir: Path) -> bool:
    """Whether the trial in `trial_dir` kept a bag (it trained as fold towers)."""
    return (Path(trial_dir) / BAG_FILE).exists() and (Path(trial_dir) / BAG_WEIGHTS_FILE).exists()


def load_bag(trial_dir: Path, build: Callable[[], keras.Model]) -> tuple[keras.Model, dict[str, list[float]]]:
    """The bag `save_bag` kept in `trial_dir`, its fold models built by `build` (the trial's architecture), and
    its curves."""
    kept = json.loads((Path(trial_dir) / BAG_FILE).read_text())
    bag = average([build() for _ in range(kept["folds"])])
    bag.load_weights(Path(trial_dir) / BAG_WEIGHTS_FILE)
    return bag, kept["curves"]
