"""AutoGluon as a peer of bench/table.py: fit a TabularPredictor on a training CSV, score it on a test CSV.

Runs in its own virtual environment, bench/.venv-autogluon (`make bench-peers` creates it): AutoGluon pins
pandas < 2.4 and the project uses pandas 3, so the project's venv never imports autogluon. bench/table.py
runs this script there in a subprocess and reads the JSON it writes: the preset, test accuracy and
macro-F1 (every training class counts, as in kerasflow's evaluation), fit seconds and the best model.

    bench/.venv-autogluon/bin/python bench/autogluon_peer.py TRAIN.csv TEST.csv --label L \\
        --preset medium_quality --time-limit 300 --out result.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from autogluon.tabular import TabularPredictor, __version__
from sklearn.metrics import accuracy_score, f1_score

EVAL_METRIC = "accuracy"  # what the predictor optimises: kerasflow's default search objective is accuracy too
VERBOSITY = 1  # warnings and the leaderboard's winner only


def read(path: Path, label: str) -> pd.DataFrame:
    """The CSV as kerasflow reads it (pandas' default missing values), its labels as text."""
    frame = pd.read_csv(path)
    frame[label] = frame[label].astype(str)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--preset", required=True, help="AutoGluon preset, e.g. medium_quality or best_quality")
    parser.add_argument("--time-limit", type=float, required=True, help="fit time limit in seconds")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    train, test = read(args.train, args.label), read(args.test, args.label)
    classes = sorted(train[args.label].unique())
    with tempfile.TemporaryDirectory() as folder:
        predictor = TabularPredictor(label=args.label, eval_metric=EVAL_METRIC, path=folder, verbosity=VERBOSITY)
        started = time.monotonic()
        predictor.fit(train, presets=args.preset, time_limit=args.time_limit)
        fit_seconds = time.monotonic() - started
        predicted = predictor.predict(test.drop(columns=[args.label])).astype(str)
        best_model = predictor.model_best
    truth = test[args.label]
    args.out.write_text(json.dumps({
        "preset": args.preset,
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
        "fit_seconds": round(fit_seconds, 1),
        "best_model": best_model,
        "autogluon": __version__,
    }, indent=2))


if __name__ == "__main__":
    main()
