"""How trials are scored when the validation split is too small to tell them apart: stratified k-fold.

A validation split of n rows moves in steps of 1/n: below
`SMALL_VALIDATION_ROWS` (300) one error is worth a third of a point of
accuracy or more, as much as the gaps between the strong families on small
data (digits, 216 validation rows: kernel ridge, a regularised MLP and a
small CNN all within one or two errors of each other, and the one picked by
a single error scored 0.967 to 0.989 on the test split), so many
architectures tie at the top and chance picks among them. Then every trial is trained on k folds of train+val and scored on
its out-of-fold predictions, which cover every one of those rows; the k-fold
cost is small exactly where it applies (a few hundred rows). Ties are broken
by the out-of-fold log loss: the score is the objective minus
`TIE_BREAK` x loss (loss capped at `MAX_TIE_LOSS`), at most 0.005, below
one error's worth on fewer than 200 rows. `--selection kfold` or `holdout`
overrides the rule either way. keras-tuner has no cross-validation
for Keras models; its documented way is a `run_trial` override
(keras-tuner issue #420), done in `pipelines.search.tuner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold

from pipelines.preprocess import ModelInputs

SMALL_VALIDATION_ROWS = 300
FOLDS = 5
TIE_BREAK = 1e-3
MAX_TIE_LOSS = 5.0
HELDOUT_FILE = "heldout_probabilities.npy"


@dataclass
class CrossValidation:
    """Train+val rows and their stratified folds (indices into `x`)."""

    x: np.ndarray
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def plan(cls, inputs: ModelInputs, seed: int, selection: str = "auto") -> "CrossValidation | None":
        """k-fold over train+val (`selection` kfold, or auto with a small validation split); None: holdout.

        Also None when a class has a single row: it cannot be trained on and held out.
        """
        if selection == "holdout" or (selection == "auto" and len(inputs.x_val) >= SMALL_VALIDATION_ROWS):
            return None
        x = np.concatenate([inputs.x_train, inputs.x_val])
        y = np.concatenate([inputs.y_train, inputs.y_val])
        counts = np.bincount(y)
        smallest = int(counts[counts > 0].min())
        if smallest < 2:
            return None
        folds = StratifiedKFold(n_splits=min(FOLDS, smallest), shuffle=True, random_state=seed).split(x, y)
        return cls(x, y, [(train, val) for train, val in folds])


def scores(y: np.ndarray, probabilities: np.ndarray, objective: str) -> dict[str, float]:
    """Held-out accuracy, macro-F1 and log loss of `probabilities`, and the tie-broken selection score."""
    predicted = probabilities.argmax(axis=1)
    values = {"accuracy": float(accuracy_score(y, predicted)),
              "macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
              "loss": float(log_loss(y, np.clip(probabilities, 1e-7, 1.0), labels=np.arange(probabilities.shape[1])))}
    values["selection"] = selection_score(values[objective.removeprefix("val_")], values["loss"])
    return values


def selection_score(value: float, loss: float) -> float:
    return value - TIE_BREAK * min(loss, MAX_TIE_LOSS)


def save_heldout(trial_dir: Path, probabilities: np.ndarray) -> None:
    np.save(Path(trial_dir) / HELDOUT_FILE, probabilities.astype(np.float32))


def load_heldout(trial_dir: Path) -> np.ndarray | None:
    path = Path(trial_dir) / HELDOUT_FILE
    return np.load(path) if path.exists() else None
