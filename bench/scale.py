"""Scale benchmark: synthetic tables of 10k, 100k and 1M rows under one budget; does the budget bound the run?

Each table has 20 numeric columns (2% missing), 2 categorical columns and 3
classes that depend on both, written as a CSV. Each size is trained in a
process of its own (so its peak RSS is its own) with `--budget-minutes`
bounding search and fine-tune together; the other steps (load, split,
validation, preprocessing, evaluation, export) are the fixed steps. For each:
wall seconds per step, trials run and the rows they saw, peak RSS, test
accuracy, and HistGradientBoosting fitted on the same training rows as the
baseline. Not a test.

    python bench/scale.py [--budget-minutes 10] [--rows 10000 100000 1000000]

Prints the table and writes bench/results/scale.md and scale.csv.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

SEARCH_STEPS = ("search", "fine_tune")
OVERRUN = 0.10  # the target: wall <= budget x 1.1 + the fixed steps


def synthetic_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """20 numbers and 2 categories; the class is the argmax of a linear score, a product term, a category effect
    and Gumbel noise (a Bayes accuracy well below 1, so models can differ). The class function is the same at
    every size, so accuracies compare across sizes."""
    task = np.random.default_rng(seed)  # the class function: the same at every size
    weights = task.normal(size=(20, 3)) / np.sqrt(5)
    region_effect, segment_effect = task.normal(size=(12, 3)) * 0.7, task.normal(size=(4, 3)) * 0.5
    rng = np.random.default_rng([seed, rows])  # the rows
    x = rng.normal(size=(rows, 20)).astype(np.float32)
    region = rng.integers(0, 12, rows)
    segment = rng.integers(0, 4, rows)
    score = x @ weights + 0.8 * np.stack([x[:, 0] * x[:, 1], -x[:, 2] * x[:, 3], np.abs(x[:, 4])], axis=1)
    score += region_effect[region] + segment_effect[segment]
    label = np.argmax(score + rng.gumbel(size=score.shape) * 0.6, axis=1)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(20)])
    frame.iloc[rng.random(frame.shape) < 0.02] = np.nan
    frame["region"] = np.array([f"r{i:02d}" for i in range(12)])[region]
    frame["segment"] = np.array(["retail", "smb", "enterprise", "public"])[segment]
    frame["label"] = np.array(["churn", "stay", "upgrade"])[label]
    return frame


def one_run(csv: Path, budget_minutes: float, workdir: Path) -> dict:
    """Train on `csv` in this process; what the table needs, as JSON-able values."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score

    from pipelines.config import TrainConfig
    from pipelines.load import load_dataset, split_dataset
    from pipelines.train import train

    config = TrainConfig(data=csv, target="label", budget_minutes=budget_minutes, runs_root=workdir / "runs",
                         quantize=["float32", "int8"])
    started = time.monotonic()
    result = train(config)
    wall = time.monotonic() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trials = result.search.trials
    seen = [t.rows for t in trials if t.rows]
    data, test = load_dataset(config)  # the same split, for the baseline
    splits = split_dataset(data, test, test_fraction=config.test_fraction, val_fraction=config.val_fraction,
                           seed=config.seed)
    fit = pd.concat([splits.train.features, splits.val.features])
    categorical = [c for c in fit.columns if not pd.api.types.is_numeric_dtype(fit[c])]
    encode = lambda frame: frame.astype({c: "category" for c in categorical})
    baseline_started = time.monotonic()
    hgb = HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype").fit(
        encode(fit), np.concatenate([splits.train.labels, splits.val.labels]).astype(str))
    hgb_accuracy = accuracy_score(splits.test.labels.astype(str), hgb.predict(encode(splits.test.features)))
    return {
        "step_seconds": {str(k): round(v, 1) for k, v in result.step_seconds.items()},
        "wall": round(wall, 1),
        "trials": len(trials),
        "completed": sum(t.status == "COMPLETED" for t in trials),
        "by_status": dict(Counter(str(t.status) for t in trials)),
        "rows_seen": [min(seen), max(seen)] if seen else None,
        "train_rows": result.splits["train"],
        "peak_rss": peak_rss,
        "accuracy": result.evaluation.headline()["accuracy"],
        "family": result.search.best_hyperparameters.get("family"),
        "budget": result.budget.to_dict() if result.budget else None,
        "hgb": hgb_accuracy,
        "hgb_seconds": round(time.monotonic() - baseline_started, 1),
    }


def row(rows: int, budget_minutes: float, run: dict, csv_mb: float) -> dict:
    steps = run["step_seconds"]
    searched = sum(v for k, v in steps.items() if k in SEARCH_STEPS)
    fixed = sum(v for k, v in steps.items() if k not in SEARCH_STEPS)
    budget = budget_minutes * 60
    return {
        "rows": f"{rows:,}",
        "CSV MB": round(csv_mb, 1),
        "budget s": round(budget),
        "search s": steps.get("search"),
        "fine-tune s": steps.get("fine_tune"),
        "fixed steps s": round(fixed, 1),
        "wall s": run["wall"],
        "steps": ", ".join(f"{k} {v:.0f}" for k, v in steps.items()),
        "within budget": searched <= budget * (1 + OVERRUN),
        "trials": run["trials"],
        "by status": ", ".join(f"{k} {v}" for k, v in run.get("by_status", {}).items()),
        "rows per trial": "{:,}-{:,}".format(*run["rows_seen"]) if run["rows_seen"] else "",
        "peak RSS GB": round(run["peak_rss"] / 2**30, 2),
        "family": run["family"],
        "test accuracy": round(run["accuracy"], 4),
        "HGB": round(run["hgb"], 4),
        "ratio": round(run["accuracy"] / run["hgb"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: train on this CSV, print JSON
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_run(args.one, args.budget_minutes, args.workdir)), flush=True)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from table import commit, write_results  # bench/table.py

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.rows:
            csv = work / f"table_{n}.csv"
            synthetic_table(n).to_csv(csv, index=False, float_format="%.4f")
            child = subprocess.run([sys.executable, __file__, "--one", str(csv), "--workdir", str(work),
                                    "--budget-minutes", str(args.budget_minutes)], capture_output=True, text=True)
            result = next((line for line in child.stdout.splitlines() if line.startswith("RESULT ")), None)
            if result is None:
                raise SystemExit(f"{n} rows: the run failed:\n{child.stderr[-3000:]}")
            rows.append(row(n, args.budget_minutes, json.loads(result.removeprefix("RESULT ")),
                            csv.stat().st_size / 1e6))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
            # written after every size: a long run leaves what it measured
            text = write_results("scale", [f"# Scale benchmark ({os.cpu_count()} CPU cores, budget "
                                           f"{args.budget_minutes:g} min, commit {commit()})", ""], pd.DataFrame(rows))
    print(text)


if __name__ == "__main__":
    main()
