"""Which epoch a converging trial's fold towers go back to, and what that does to its out-of-fold score.

A trial under k-fold trains its fold models as towers (`pipelines.search.towers`) until every tower has
stopped improving on its held-out fold. Then each tower goes back to its own best epoch (`FoldStopping`), which
chooses that epoch on the rows that then score it: optimistic where folds are small. The other rule, tried at
ccec780 and reverted: every tower goes back to the one epoch whose held-out loss over all the folds is lowest
(as `xgboost.cv` chooses a round count). This measures both, against the test accuracy of the bag that ships.

Each row is one real fit of a portfolio network (`models.portfolio`), with the search's batch size, its
converging cap and patience: the held-out and test probabilities of every tower are kept after each epoch,
so both rules are read off the same training run. Tables and digits: a stratified 0.2 test split per seed;
series: the official UCR split. Not a test.

    python bench/fold_epochs.py [--seeds 0 1 2]

Prints the table and writes bench/results/fold_epochs.md and fold_epochs.csv.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import StratifiedKFold, train_test_split

from models import KerasflowHyperModel
from models.inference import log_loss_and_accuracy
from models.portfolio import PORTFOLIO, REGULARISED_MLP, SMALL_CNN
from pipelines.config import SearchOptions
from pipelines.preprocess import Preprocessing
from pipelines.search.fidelity import PATIENCE
from pipelines.search.run import fit_to_data
from pipelines.search.selection import FOLDS
from pipelines.search.towers import FoldStopping, fold_towers, tower_weights
from table import commit, write_results  # bench/table.py, next to this script (sys.path[0] when run as a script)

STEM = "fold_epochs"
FCN, RESNET = PORTFOLIO["sequence"][3], PORTFOLIO["sequence"][4]
# dataset, the portfolio network fitted on it
RUNS = [("ItalyPowerDemand", FCN), ("ItalyPowerDemand", RESNET), ("GunPoint", FCN), ("ArrowHead", FCN),
        ("breast_cancer", REGULARISED_MLP), ("wine", REGULARISED_MLP), ("digits", SMALL_CNN)]
UCR = {"ItalyPowerDemand", "GunPoint", "ArrowHead"}


def split(name: str, seed: int):
    """Training rows, test rows and the preprocessing kerasflow would fit on the training rows."""
    if name in UCR:
        from aeon.datasets import load_classification

        (x, y), (x_test, y_test) = [load_classification(name, split=s) for s in ("train", "test")]
        x, x_test = [np.transpose(a, (0, 2, 1)).astype("float32") for a in (x, x_test)]  # [N, time, channels]
        classes = sorted(set(y))
        y, y_test = [np.array([classes.index(v) for v in labels]) for labels in (y, y_test)]
        kind, mean, variance = "sequence", [float(x.mean())], [float(x.var())]
    else:
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        x = x.astype("float32").reshape(-1, 8, 8, 1) if name == "digits" else x.astype("float32")
        x, x_test, y, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
        classes = [str(c) for c in sorted(set(y))]
        kind = "image" if name == "digits" else "table"
        axes = (0, 1, 2) if kind == "image" else 0
        mean, variance = np.atleast_1d(x.mean(axes)).tolist(), np.atleast_1d(x.var(axes)).tolist()
    prep = Preprocessing(kind=kind, input_shape=list(x.shape[1:]), class_names=[str(c) for c in classes],
                         mean=mean, variance=variance)
    return x, y, x_test, y_test, prep


class EveryEpoch(keras.callbacks.Callback):
    """Each tower's probabilities on every training row and every test row, after each epoch."""

    def __init__(self, x: np.ndarray, x_test: np.ndarray):
        super().__init__()
        self.x, self.x_test, self.train, self.test = x, x_test, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.train.append(np.asarray(self.model.predict(self.x, verbose=0, batch_size=1024)))
        self.test.append(np.asarray(self.model.predict(self.x_test, verbose=0, batch_size=1024)))


def fit(name: str, entry: dict, seed: int) -> dict:
    x, y, x_test, y_test, prep = split(name, seed)
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y))
    hypermodel = KerasflowHyperModel(prep, [entry["family"]])
    keras.utils.set_random_seed(seed)
    members = []
    for _ in folds:
        hp = kt.HyperParameters()
        hp.values.update(entry)
        members.append(hypermodel.build(hp))
    towers = fold_towers(members)
    options, _ = fit_to_data(SearchOptions(), len(y))  # the search's batch size and converging cap for these rows
    stopping, every = FoldStopping(members, x, y, folds, PATIENCE), EveryEpoch(x, x_test)
    started = time.monotonic()
    towers.fit(x, np.repeat(y[:, None], len(folds), axis=1), sample_weight=tower_weights(y, folds),
               epochs=options.max_epochs, batch_size=options.batch_size, shuffle=True, verbose=0,
               callbacks=[stopping, every])
    seconds = time.monotonic() - started
    losses = np.array([[log_loss_and_accuracy(epoch[val, t], y[val])["loss"] for t, (_, val) in enumerate(folds)]
                       for epoch in every.train])  # epochs x towers, each on its held-out fold
    own = losses.argmin(axis=0)  # each tower's own best epoch (0-based)
    one = int(losses.mean(axis=1).argmin())
    assert [e + 1 for e in own] == stopping.epochs_to_best, (own, stopping.epochs_to_best)

    def scored(epochs) -> tuple[float, float]:
        heldout = np.zeros(every.train[0].shape[::2], np.float32)
        for t, (_, val) in enumerate(folds):
            heldout[val] = every.train[epochs[t]][val, t]
        bag = np.mean([every.test[epochs[t]][:, t] for t in range(len(folds))], axis=0)
        return float((heldout.argmax(1) == y).mean()), float((bag.argmax(1) == y_test).mean())

    (own_oof, own_test), (one_oof, one_test) = scored(own), scored([one] * len(folds))
    family = entry.get("cnn_block", entry["family"]) if entry["family"] == "cnn" else entry["family"]
    return {"dataset": name, "network": family, "training rows": len(y), "seed": seed,
            "epochs run": len(every.train), "own epochs": " ".join(str(e + 1) for e in own), "one epoch": one + 1,
            "own: out-of-fold": round(own_oof, 4), "own: bag test": round(own_test, 4),
            "one: out-of-fold": round(one_oof, 4), "one: bag test": round(one_test, 4),
            "own: optimism": round(own_oof - own_test, 4), "one: optimism": round(one_oof - one_test, 4),
            "seconds": round(seconds, 1)}


def with_means(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    numbers = ["own: out-of-fold", "own: bag test", "one: out-of-fold", "one: bag test", "own: optimism",
               "one: optimism", "seconds"]
    means = table.groupby(["dataset", "network", "training rows"], sort=False)[numbers].mean().round(4).reset_index()
    means["seed"] = "mean"
    return pd.concat([table, means]).sort_values(["dataset", "network"], kind="stable").fillna("")


def header() -> list[str]:
    return [f"# Fold towers: each tower's own best epoch against one epoch for all (2 CPU cores, {commit()})", "",
            "own: each tower back to its own lowest held-out loss (`FoldStopping`); one: every tower back to the "
            "epoch of the lowest held-out loss over the folds (tried at ccec780, reverted). out-of-fold: the "
            "accuracy the search scores the trial by; bag test: the test accuracy of the fold models averaged, as "
            "it ships; optimism: their difference. Both rules are read off the same fit, which ends when every "
            "tower has stopped improving.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="each seed draws the folds, the initial weights and a table's test split")
    args = parser.parse_args()
    rows = []
    for name, entry in RUNS:
        for seed in args.seeds:
            rows.append(fit(name, entry, seed))
            print(rows[-1], flush=True)
    table = with_means(rows)
    print(write_results(STEM, header(), table))


if __name__ == "__main__":
    main()
