"""Benchmark: kerasflow on digits against sklearn baselines, and the cost of Prefect + GX.

Prints a table (dataset, metric, value, seconds, baseline, ratio) and writes
it to bench/results/digits.csv. Not a test: it reports, it does not assert.

    python bench/digits.py [--budget-minutes 5] [--overhead-trials 6]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import SVC

from pipelines.config import TrainConfig
from pipelines.load import load_bundled, split_dataset
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"


def baselines(config: TrainConfig) -> dict[str, tuple[float, float, float]]:
    """SVC and HistGradientBoosting fitted on train+val of the very split kerasflow uses."""
    data, test = load_bundled("digits")
    splits = split_dataset(data, test, test_fraction=config.test_fraction, val_fraction=config.val_fraction,
                           seed=config.seed)
    flat = lambda d: np.asarray(d.features).reshape(len(d), -1)
    x_fit = np.concatenate([flat(splits.train), flat(splits.val)])
    y_fit = np.concatenate([splits.train.labels, splits.val.labels])
    scores = {}
    for name, model in [("SVC", SVC()), ("HistGradientBoosting", HistGradientBoostingClassifier(random_state=0))]:
        started = time.monotonic()
        predicted = model.fit(x_fit, y_fit).predict(flat(splits.test))
        scores[name] = (accuracy_score(splits.test.labels, predicted),
                        f1_score(splits.test.labels, predicted, average="macro"), time.monotonic() - started)
    return scores


def timed(function, *args):
    started = time.monotonic()
    result = function(*args)
    return result, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=5.0)
    parser.add_argument("--overhead-trials", type=int, default=6)
    args = parser.parse_args()
    from flows.train import train_flow

    root = Path("runs/bench")
    quality = TrainConfig(dataset="digits", budget_minutes=args.budget_minutes, runs_root=root)
    summary, flow_seconds = timed(train_flow, quality)
    base = baselines(quality)
    best_base = max(base.values())
    rows = [
        ("digits", "kerasflow test accuracy (flow, default budget)", summary["test"]["accuracy"], flow_seconds,
         best_base[0], summary["test"]["accuracy"] / best_base[0]),
        ("digits", "kerasflow test macro-F1", summary["test"]["macro_f1"], flow_seconds,
         best_base[1], summary["test"]["macro_f1"] / best_base[1]),
        ("digits", f"kerasflow chosen family: {summary['family']}", float("nan"), float("nan"), float("nan"), float("nan")),
        ("digits", "target: accuracy >= 0.985 within 300 s", 0.985, 300.0, float("nan"), float("nan")),
    ]
    rows += [("digits", f"{name} test accuracy / macro-F1", acc, secs, f1, float("nan"))
             for name, (acc, f1, secs) in base.items()]

    # Same fixed work both ways (random tuner, N trials, no budget cut) so the difference is orchestration.
    fixed = dict(dataset="digits", tuner="random", max_trials=args.overhead_trials, max_epochs=5,
                 finetune_epochs=10, budget_minutes=600, runs_root=root)
    _, direct_seconds = timed(train, TrainConfig(**fixed))
    _, flow_fixed_seconds = timed(train_flow, TrainConfig(**fixed))
    rows.append(("digits", f"Prefect+GX overhead, {args.overhead_trials} fixed trials (flow vs direct)",
                 flow_fixed_seconds - direct_seconds, flow_fixed_seconds, direct_seconds,
                 flow_fixed_seconds / direct_seconds))
    table = pd.DataFrame(rows, columns=["dataset", "metric", "value", "seconds", "baseline", "ratio"])
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "digits.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
