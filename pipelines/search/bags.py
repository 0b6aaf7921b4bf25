"""A trial's bag: its k fold models, averaged, kept whole in its trial folder; chosen, the bag ships as it is.

Under k-fold selection (`.selection`) a trial's score comes from its k fold
models, each scored on the fold it never trained on. A trial trained by
epochs (as fold towers, `.towers`) and a trial of a solved family in
`models.BAGGED_SOLVED_FAMILIES` keep those models as their bag: if the trial is
chosen, the bag ships (`pipelines.finetune`) instead of a refit on every row,
so what ships is what the out-of-fold score measured (AutoGluon's k-fold
bagging).

A bag is saved as one whole Keras model (`average` of its fold models), as
the shipped model is: a solved member's data-fitted structure (a tree
ensemble's walk depth, a kernel's landmarks, a text head's vocabulary) differs
from fold to fold and is not rebuilt from the trial's values. Saving one took
0.05-0.10 s on breast_cancer (a weights file alone: 0.05-0.07 s).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras

from models import average

BAG_MODEL_FILE = "fold_bag.keras"
BAG_FILE = "fold_bag.json"  # the bag's fold count and curves


def save_bag(trial_dir: Path, members: list[keras.Model], curves: dict[str, list[float]]) -> None:
    """Keep a trial's fold models, averaged, in `trial_dir`, with the training curves the bag reports (a fold
    model's mean loss per epoch; a solved bag's, one point)."""
    average(members).save(Path(trial_dir) / BAG_MODEL_FILE)
    (Path(trial_dir) / BAG_FILE).write_text(json.dumps({"folds": len(members), "curves": curves}))


def has_bag(trial_dir: Path) -> bool:
    """Whether the trial in `trial_dir` kept a bag."""
    return (Path(trial_dir) / BAG_FILE).exists() and (Path(trial_dir) / BAG_MODEL_FILE).exists()


def load_bag(trial_dir: Path) -> tuple[keras.Model, dict[str, list[float]]]:
    """The bag `save_bag` kept in `trial_dir`, and its curves."""
    kept = json.loads((Path(trial_dir) / BAG_FILE).read_text())
    return keras.models.load_model(Path(trial_dir) / BAG_MODEL_FILE), kept["curves"]


def copy_bag(source_dir: Path, target_dir: Path) -> None:
    """Keep the bag of the trial in `source_dir`, if it kept one, as the trial in `target_dir`'s too."""
    if has_bag(source_dir):
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        for name in (BAG_MODEL_FILE, BAG_FILE):
            shutil.copyfile(Path(source_dir) / name, Path(target_dir) / name)
