"""Benchmark: retraining on a shifted split of breast_cancer. Is drift caught, and what does each remedy cost?

The bundled breast_cancer table is split in two by `mean texture`: the "old"
part takes 70% of the low-texture half and 30% of the high-texture half, the
"new" part the rest. Both cover the whole value range (so the champion's
expectations still pass) but the mix moved, as it does when a clinic's
scanner or population changes. A champion is trained on the old part, then
the new part is retrained three ways on copies of the same registry:

- `auto`: must detect the drift and switch to a fresh search,
- `finetune` with drift checks off: warm start from the champion,
- `search`: a fresh search on the new data.

Prints a table (dataset, metric, value, seconds, baseline, ratio) and writes
bench/results/retrain.csv. Not a test: it reports, it does not assert.

    python bench/retrain.py [--budget-minutes 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from pipelines.config import RetrainConfig, TrainConfig
from pipelines.errors import DriftDetected
from pipelines.retrain import retrain
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"
WORK = Path("runs/bench/retrain")
SHIFT_COLUMN = "mean texture"


def shifted_halves(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.assign(diagnosis=[bunch.target_names[i] for i in bunch.target])
    rng = np.random.default_rng(seed)
    high = frame[SHIFT_COLUMN] >= frame[SHIFT_COLUMN].median()
    old = rng.random(len(frame)) < np.where(high, 0.3, 0.7)
    return frame[old].reset_index(drop=True), frame[~old].reset_index(drop=True)


def retrain_copy(name: str, registry: Path, data: Path, **options):
    copy = WORK / f"registry-{name}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(registry, copy)
    started = time.monotonic()
    result = retrain(RetrainConfig(name="breast_cancer", data=data, registry=copy, runs_root=WORK / f"runs-{name}",
                                   **options))
    return result, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=2.0)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    old, new = shifted_halves()
    old.to_csv(WORK / "old.csv", index=False)
    new.to_csv(WORK / "new.csv", index=False)

    started = time.monotonic()
    champion = train(TrainConfig(data=WORK / "old.csv", target="diagnosis", name="breast_cancer",
                                 budget_minutes=args.budget_minutes, runs_root=WORK / "runs",
                                 registry=WORK / "registry"))
    train_seconds = time.monotonic() - started
    rows = [("old part", "champion test accuracy (old data)", champion.evaluation.accuracy, train_seconds,
             float("nan"), float("nan"))]

    try:
        retrain_copy("strict", WORK / "registry", WORK / "new.csv", mode="finetune")
        rows.append(("new part", "finetune mode stopped by drift", 0.0, 0.0, float("nan"), float("nan")))
    except DriftDetected as stopped:
        moved = [line.split("|")[1].strip() for line in stopped.report.splitlines() if "**yes**" in line]
        rows.append(("new part", f"finetune mode stopped by drift in: {', '.join(moved)}", 1.0, 0.0,
                     float("nan"), float("nan")))

    for label, options in (("auto", {"mode": "auto"}),
                           ("finetune (drift checks off)", {"mode": "finetune", "psi_threshold": 1e9}),
                           ("search", {"mode": "search"})):
        result, seconds = retrain_copy(label.split()[0], WORK / "registry", WORK / "new.csv", **options)
        champion_acc = result.champion_evaluation.accuracy
        challenger_acc = result.challenger_evaluation.accuracy
        rows.append(("new part", f"{label}: challenger holdout accuracy ({result.mode}; "
                     f"{'promoted' if result.decision.promote else 'kept champion'})",
                     challenger_acc, seconds, champion_acc, challenger_acc / champion_acc))
        rows.append(("new part", f"{label}: challenger holdout macro-F1", result.challenger_evaluation.macro_f1,
                     seconds, result.champion_evaluation.macro_f1,
                     result.challenger_evaluation.macro_f1 / result.champion_evaluation.macro_f1))
        if label == "auto":
            shift = next(c for c in result.drift.columns if c.column == SHIFT_COLUMN)
            rows.append(("new part", f"drift: {result.drift.summary()}", shift.psi, 0.0, result.drift.psi_threshold,
                         shift.psi / result.drift.psi_threshold))
            print(f"auto decision: {result.decision.reason}\nreport: {result.report_path}")

    table = pd.DataFrame(rows, columns=["dataset", "metric", "value", "seconds", "baseline", "ratio"])
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "retrain.csv", index=False)
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
