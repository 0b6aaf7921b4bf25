"""Benchmark: are the TFLite exports phone-ready? Size, accuracy and batch-1 latency per variant.

Trains a digits CNN and a GunPoint LSTM (the sequence demo) with kerasflow,
then reads their exports: int8 size against float32, int8 accuracy drop against
the Keras model, TFLite batch-1 latency against Keras `model(x)`. A third run
searches digits under a mobile budget (int8 <= --max-model-kb) to show what
the budget costs in accuracy. Prints a table and writes bench/results/mobile.csv.
Not a test: it reports, it does not assert.

    python bench/mobile.py [--budget-minutes 2] [--lstm-budget-minutes 4] [--max-model-kb 20]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd

from pipelines.config import TrainConfig
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"
TARGETS = {"int8 size / float32 size": 0.30, "int8 accuracy drop (points)": 0.5,
           "int8 TFLite latency / Keras latency": 0.2}


def run(name: str, **options):
    started = time.monotonic()
    result = train(TrainConfig(name=name, runs_root=Path("runs/bench"), **options))
    return result, time.monotonic() - started


def variant_rows(label: str, result, seconds: float) -> list[tuple]:
    export = result.export
    keras, float32, int8 = export.keras, export.variant("float32"), export.variant("int8")
    rows = [
        (label, "int8 size / float32 size", int8.bytes / 1024, seconds, float32.bytes / 1024, int8.bytes / float32.bytes),
        (label, "int8 accuracy drop (points)", 100 * int8.accuracy_drop, seconds, keras.accuracy,
         float("nan")),
        (label, "int8 TFLite latency / Keras latency", int8.latency_median_ms, seconds, keras.latency_median_ms,
         int8.latency_median_ms / keras.latency_median_ms),
    ]
    for v in export.variants:
        rows.append((label, f"{v.variant}: KiB / accuracy / median ms{' (recommended)' if v.recommended else ''}",
                     v.bytes / 1024, v.latency_median_ms, v.accuracy, v.bytes / float32.bytes))
    rows.append((label, "keras: test accuracy / batch-1 median ms", keras.accuracy, keras.latency_median_ms,
                 float("nan"), float("nan")))
    return rows


def with_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    def verdict(row):
        target = TARGETS.get(row["metric"])
        if target is None:
            return ""
        value = row["value"] if row["metric"].startswith("int8 accuracy") else row["ratio"]
        return f"<= {target}: {'met' if value <= target else 'MISSED'}"

    return table.assign(target=table.apply(verdict, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=2.0)
    parser.add_argument("--lstm-budget-minutes", type=float, default=4.0,
                        help="GunPoint's unrolled LSTM trials take ~15 s each on 2 cores")
    parser.add_argument("--max-model-kb", type=float, default=20.0)
    args = parser.parse_args()
    rows = []
    cnn, seconds = run("bench-digits-cnn", dataset="digits", families=["cnn"], budget_minutes=args.budget_minutes)
    rows += variant_rows("digits CNN", cnn, seconds)
    lstm, seconds = run("bench-gunpoint-lstm", dataset="gunpoint", families=["lstm"],
                       budget_minutes=args.lstm_budget_minutes)
    rows += variant_rows("GunPoint LSTM", lstm, seconds)
    budgeted, seconds = run("bench-digits-budget", dataset="digits", budget_minutes=args.budget_minutes,
                            max_model_kb=args.max_model_kb)
    chosen = budgeted.export.variant("int8")
    over = sum(t.status == "OVER_BUDGET" for t in budgeted.search.trials)
    rows.append((f"digits, budget {args.max_model_kb:g} KiB", f"test accuracy, chosen {budgeted.search.best_hyperparameters['family']}, "
                 f"{over}/{len(budgeted.search.trials)} trials over budget", budgeted.evaluation.accuracy, seconds,
                 cnn.evaluation.accuracy, budgeted.evaluation.accuracy / cnn.evaluation.accuracy))
    rows.append((f"digits, budget {args.max_model_kb:g} KiB", "int8 KiB of the exported model", chosen.bytes / 1024,
                 seconds, args.max_model_kb, chosen.bytes / 1024 / args.max_model_kb))
    table = with_verdicts(pd.DataFrame(rows, columns=["dataset", "metric", "value", "seconds", "baseline", "ratio"]))
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "mobile.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_colwidth", 90):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for result in (cnn, lstm, budgeted):
        print(f"report: {result.report_path}")


if __name__ == "__main__":
    main()
