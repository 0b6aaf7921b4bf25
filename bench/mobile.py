"""Benchmark: are the exports phone-ready? Size, accuracy and batch-1 latency of every compressed model.

Trains four models with kerasflow, each with `--prune 0.5 --distill`: a digits
CNN, wine and breast_cancer (the search's choice) and a GunPoint LSTM, then
reads their exports: float32, int8, the pruned model (int8) and the distilled
student (int8), each against the Keras model on the test split. A fifth run
searches digits under a mobile budget (int8 <= --max-model-kb). Prints one
table (dataset, metric, value, seconds, baseline, ratio, target) and writes
bench/results/mobile.csv. Not a test: it reports, it does not assert.

    python bench/mobile.py [--budget-minutes 2] [--lstm-budget-minutes 4] [--max-model-kb 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd

from models.lstm import FUSED_OP
from pipelines.config import TrainConfig
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"
SHOWN = ("float32", "int8", "pruned_int8", "distilled_int8")
# The targets, per (dataset, metric); `value` or `ratio` is compared.
TARGETS = {
    ("digits CNN", "int8 accuracy drop (points)"): ("value", 1.0),
    ("wine", "int8 accuracy drop (points)"): ("value", 1.0),
    ("breast_cancer", "int8 accuracy drop (points)"): ("value", 1.0),
    ("digits CNN", "int8 KiB / float32 KiB"): ("ratio", 0.30),
    ("GunPoint LSTM", "int8 KiB / float32 KiB"): ("ratio", 0.30),
    ("GunPoint LSTM", "int8 label agreement with Keras"): ("ratio", -0.99),  # negative: at least
    ("GunPoint LSTM", "FUSED"): ("ratio", -1.0),
    ("digits CNN", "pruned_int8 accuracy drop (points)"): ("value", 1.0),
    ("digits CNN", "pruned_int8 sparsity"): ("ratio", -0.50),
    ("digits CNN", "distilled_int8 accuracy drop (points)"): ("value", 1.0),
    ("digits CNN", "distilled_int8 KiB / int8 KiB"): ("ratio", 0.50),
}
COMPRESSION = dict(prune=0.5, distill=True)
FUSED = f"every LSTM variant uses {FUSED_OP} (the distilled student is a CNN)"


def run(name: str, **options):
    started = time.monotonic()
    result = train(TrainConfig(name=name, runs_root=Path("runs/bench"), **options))
    return result, time.monotonic() - started


def variant_rows(label: str, result, seconds: float) -> list[tuple]:
    export = result.export
    keras, float32, int8 = export.keras, export.variant("float32"), export.variant("int8")
    rows = [(label, f"family: {result.search.best_hyperparameters.get('family')}", keras.accuracy, seconds,
             float("nan"), float("nan")),
            (label, "int8 KiB / float32 KiB", int8.bytes / 1024, seconds, float32.bytes / 1024,
             int8.bytes / float32.bytes)]
    for v in export.variants:
        if v.variant not in SHOWN:
            continue
        rows += [(label, f"{v.variant} accuracy drop (points)", 100 * v.accuracy_drop, seconds, keras.accuracy,
                  float("nan")),
                 (label, f"{v.variant} KiB (gzip) / ms", v.bytes / 1024, v.latency_median_ms,
                  (v.gzip_bytes or 0) / 1024, v.bytes / float32.bytes)]
    pruned = next((v for v in export.variants if v.variant == "pruned_int8"), None)
    distilled = next((v for v in export.variants if v.variant == "distilled_int8"), None)
    if pruned:
        rows.append((label, "pruned_int8 sparsity", pruned.sparsity or 0.0, seconds, pruned.gzip_bytes / 1024,
                     pruned.sparsity or 0.0))
    if distilled:
        rows.append((label, "distilled_int8 KiB / int8 KiB", distilled.bytes / 1024, seconds, int8.bytes / 1024,
                     distilled.bytes / int8.bytes))
    if "lstm" in label.lower():
        spec = json.loads((export.directory / "model_spec.json").read_text())
        lstm_variants = [v for v in spec["variants"].values() if not v["variant"].startswith("distilled")]
        fused = all(FUSED_OP in v["operators"] for v in lstm_variants)
        rows += [(label, FUSED, float(fused), seconds, 1.0, float(fused)),
                 (label, "int8 label agreement with Keras", int8.label_agreement, seconds, 1.0, int8.label_agreement)]
    rows.append((label, "keras: test accuracy / batch-1 median ms", keras.accuracy, keras.latency_median_ms,
                 float("nan"), float("nan")))
    return rows


def with_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    def verdict(row):
        target = TARGETS.get((row["dataset"], "FUSED" if row["metric"] == FUSED else row["metric"]))
        if target is None:
            return ""
        column, limit = target
        value = row[column]
        if limit < 0:
            return f">= {-limit}: {'met' if value >= -limit else 'MISSED'}"
        return f"<= {limit}: {'met' if value <= limit else 'MISSED'}"

    return table.assign(target=table.apply(verdict, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=2.0)
    parser.add_argument("--lstm-budget-minutes", type=float, default=4.0)
    parser.add_argument("--max-model-kb", type=float, default=20.0)
    args = parser.parse_args()
    rows, results = [], []
    for label, options in [
        ("digits CNN", dict(dataset="digits", families=["cnn"], budget_minutes=args.budget_minutes)),
        ("wine", dict(dataset="wine", budget_minutes=args.budget_minutes)),
        ("breast_cancer", dict(dataset="breast_cancer", budget_minutes=args.budget_minutes)),
        ("GunPoint LSTM", dict(dataset="gunpoint", families=["lstm"], budget_minutes=args.lstm_budget_minutes)),
    ]:
        result, seconds = run(f"bench-{label.split()[0].lower()}", **options, **COMPRESSION)
        rows += variant_rows(label, result, seconds)
        results.append(result)
    cnn = results[0]
    budgeted, seconds = run("bench-digits-budget", dataset="digits", budget_minutes=args.budget_minutes,
                            max_model_kb=args.max_model_kb)
    chosen = budgeted.export.variant("int8")
    over = sum(t.status == "OVER_BUDGET" for t in budgeted.search.trials)
    label = f"digits, budget {args.max_model_kb:g} KiB"
    rows.append((label, f"test accuracy, chosen {budgeted.search.best_hyperparameters['family']}, "
                 f"{over}/{len(budgeted.search.trials)} trials over budget", budgeted.evaluation.accuracy, seconds,
                 cnn.evaluation.accuracy, budgeted.evaluation.accuracy / cnn.evaluation.accuracy))
    rows.append((label, "int8 KiB of the exported model", chosen.bytes / 1024, seconds, args.max_model_kb,
                 chosen.bytes / 1024 / args.max_model_kb))
    table = with_verdicts(pd.DataFrame(rows, columns=["dataset", "metric", "value", "seconds", "baseline", "ratio"]))
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "mobile.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_colwidth", 90, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for result in (*results, budgeted):
        print(f"report: {result.report_path}")


if __name__ == "__main__":
    main()
