"""Benchmark table: kerasflow on six datasets against the strongest cheap baselines, on the same splits.

For each dataset kerasflow runs under the same fixed search budget, and
SVC, HistGradientBoosting, logistic regression and (for sequences) aeon's
MiniRocket are fitted on the same training rows and scored on the same test
rows: for digits, breast_cancer and wine, the split kerasflow itself makes
(baselines fit train+val, as kerasflow's fine-tune does); for the UCR sets,
their official train/test split. "gap" is kerasflow's test accuracy minus
the best baseline's; "ratio" is their quotient. The UCR column is the best
deep-learning accuracy in Fawaz et al. 2019, "Deep learning for time series
classification: a review". With --workers-budget > 0, a second table gives
search trials/hour with 1 and 2 parallel workers.

Prints the tables and writes bench/results/table.md and table.csv; a run on
some of the datasets replaces their rows and keeps the others (each row
names the commit it was measured at). Not a test.

    python bench/table.py [--budget-minutes 10] [--datasets digits GunPoint] [--workers-budget 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from models import describe
from pipelines.config import TrainConfig
from pipelines.load import load_dataset, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs
from pipelines.search import SearchOptions, run_search
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"
UCR = {"GunPoint": 100.0, "ItalyPowerDemand": 96.5, "ArrowHead": 84.5}  # Fawaz et al. 2019, best DL model
DATASETS = ["digits", "breast_cancer", "wine", *UCR]
BASELINES = {
    "SVC": lambda: SVC(),
    "HGB": lambda: HistGradientBoostingClassifier(random_state=0),
    "LogReg": lambda: LogisticRegression(max_iter=5000),
}


def config_for(name: str, budget_minutes: float, workdir: Path, **overrides) -> TrainConfig:
    common = dict(budget_minutes=budget_minutes, runs_root=workdir / "runs", name=f"bench-{name}",
                  quantize=["float32", "int8"], **overrides)
    if name in UCR:
        train_path, test_path = ucr_files(name, workdir)
        return TrainConfig(data=train_path, test_data=test_path, **common)
    return TrainConfig(dataset=name, **common)


def ucr_files(name: str, workdir: Path) -> tuple[Path, Path]:
    """The official UCR train and test splits as kerasflow sequence files (x [N, T, 1], y [N])."""
    from aeon.datasets import load_classification

    paths = []
    for split in ("train", "test"):
        x, y = load_classification(name, split=split)  # [N, channels, time]
        path = workdir / f"{name}_{split}.npz"
        np.savez(path, x=np.transpose(x, (0, 2, 1)).astype(np.float32), y=np.asarray(y).astype(str))
        paths.append(path)
    return paths[0], paths[1]


def minirocket():
    from aeon.classification.convolution_based import MiniRocketClassifier

    return MiniRocketClassifier(random_state=0)


def baseline_scores(config: TrainConfig) -> dict[str, float]:
    """Each baseline's test accuracy on the split kerasflow used (features flattened; MiniRocket: [N, channels, T])."""
    data, test = load_dataset(config)
    splits = split_dataset(data, test, test_fraction=config.test_fraction, val_fraction=config.val_fraction,
                           seed=config.seed)
    flat = lambda d: np.asarray(d.features, dtype=np.float64).reshape(len(d), -1)
    x_fit = np.concatenate([flat(splits.train), flat(splits.val)])
    y_fit = np.concatenate([splits.train.labels, splits.val.labels]).astype(str)
    # Table columns come in different units, so SVC and LogReg see them standardised; pixels and
    # time steps share one unit and are used as they are (standardising digits' pixels costs SVC 1.7 points).
    scaled = data.kind == "table"
    y_test = splits.test.labels.astype(str)
    results = {name: accuracy_score(y_test, (make_pipeline(StandardScaler(), make()) if scaled and name != "HGB"
                                             else make()).fit(x_fit, y_fit).predict(flat(splits.test)))
               for name, make in BASELINES.items()}
    if data.kind == "sequence":
        series = lambda d: np.transpose(np.asarray(d.features, dtype=np.float64), (0, 2, 1))
        x_series = np.concatenate([series(splits.train), series(splits.val)])
        results["MiniRocket"] = accuracy_score(y_test, minirocket().fit(x_series, y_fit).predict(series(splits.test)))
    return results


def kerasflow_row(name: str, budget_minutes: float, workdir: Path, **overrides) -> dict:
    config = config_for(name, budget_minutes, workdir, **overrides)
    started = time.monotonic()
    result = train(config)
    seconds = time.monotonic() - started
    int8 = next((v for v in result.export.variants if v.variant == "int8"), None)
    baselines = baseline_scores(config)
    best_name = max(baselines, key=baselines.get)
    accuracy = result.evaluation.headline()["accuracy"]
    return {
        "dataset": name,
        "test accuracy": round(accuracy, 4),
        "macro-F1": round(result.evaluation.headline()["macro_f1"], 4),
        "seconds": round(seconds, 1),
        "family": describe(result.search.best_hyperparameters),
        "trials": len(result.search.trials),
        "selection": "5-fold" if result.search.cross_validated else "holdout",
        "int8 KiB": round(int8.bytes / 1024, 1) if int8 else None,
        **{baseline: round(score, 4) for baseline, score in baselines.items()},
        "MiniRocket": round(baselines["MiniRocket"], 4) if "MiniRocket" in baselines else None,
        "best baseline": f"{best_name} {baselines[best_name]:.4f}",
        "gap": round(accuracy - baselines[best_name], 4),
        "ratio": round(accuracy / baselines[best_name], 4),
        "published DL": UCR.get(name),
        "commit": commit(),
    }


def write_results(stem: str, header: list[str], table: pd.DataFrame) -> str:
    """bench/results/<stem>.md (the header lines, then the table) and <stem>.csv; returns the markdown."""
    text = "\n".join([*header, markdown(table)]) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text)
    table.to_csv(RESULTS / f"{stem}.csv", index=False)
    return text


def commit() -> str:
    """The checkout's short commit hash, '+' when it has uncommitted changes."""
    run = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
    head = run("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    return head + ("+" if run("status", "--porcelain", "--untracked-files=no").stdout.strip() else "")


def merged(rows: list[dict]) -> pd.DataFrame:
    """These rows, and the saved table's rows of the other datasets, in `DATASETS` order."""
    table = pd.DataFrame(rows)
    saved = RESULTS / "table.csv"
    if saved.exists():
        kept = pd.read_csv(saved)
        table = pd.concat([kept[~kept["dataset"].isin(table["dataset"])], table], ignore_index=True)
    order = {name: i for i, name in enumerate(DATASETS)}
    return table.sort_values("dataset", key=lambda names: names.map(order)).reset_index(drop=True)


def trials_per_hour(budget_minutes: float, workdir: Path) -> list[dict]:
    """Search only, digits, random tuner with a fixed epoch count so trials cost about the same."""
    config = TrainConfig(dataset="digits")
    data, test = load_dataset(config)
    splits = split_dataset(data, test, test_fraction=0.2, val_fraction=0.15, seed=42)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    rows = []
    for workers in (1, 2):
        options = SearchOptions(tuner="random", max_trials=1000, max_epochs=5, budget_minutes=budget_minutes,
                                workers=workers)
        started = time.monotonic()
        result = run_search(inputs, prep, workdir / f"workers{workers}" / "search", options)
        seconds = time.monotonic() - started
        done = sum(t.status == "COMPLETED" for t in result.trials)
        rows.append({"dataset": "digits", "workers": workers, "completed trials": done, "seconds": round(seconds, 1),
                     "trials/hour": round(3600 * done / seconds, 1), "best val accuracy": round(result.best_val_score, 4)})
    base = rows[0]["trials/hour"]
    for row in rows:
        row["ratio"] = round(row["trials/hour"] / base, 2)
    return rows


def markdown(frame: pd.DataFrame) -> str:
    cells = frame.astype(object).where(frame.notna(), "")
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=10.0, help="search budget per dataset")
    parser.add_argument("--datasets", nargs="*", default=DATASETS, choices=DATASETS)
    parser.add_argument("--workers-budget", type=float, default=0.0,
                        help="search budget of each trials/hour run (0: skip)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = []
        for name in args.datasets:
            rows.append(kerasflow_row(name, args.budget_minutes, workdir))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        table = merged(rows)
        scaling = pd.DataFrame(trials_per_hour(args.workers_budget, workdir)) if args.workers_budget else None
    text = [f"# kerasflow benchmark ({os.cpu_count()} CPU cores, search budget {args.budget_minutes:g} min per dataset)",
            "", markdown(table)]
    if scaling is not None:
        text += ["", f"## Search trials/hour, 1 vs 2 workers (budget {args.workers_budget:g} min)", "",
                 markdown(scaling)]
    (RESULTS / "table.md").write_text("\n".join(text) + "\n")
    table.to_csv(RESULTS / "table.csv", index=False)
    print("\n".join(text))


if __name__ == "__main__":
    main()
