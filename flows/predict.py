"""The batch-scoring flow `kerasflow-predict`: score a file with a registered model, write a dated predictions file.

Schedule it like retraining (`kerasflow schedule NAME --predict --data ... --out-dir ...`): each run checks
the new data against the model's suite and training data, writes OUT_DIR/NAME-<UTC time>.csv and a summary
artifact (rows scored, label counts, drift status).
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.prefect_kit import run_as_task, tag_this_run
from pipelines.predict import Predictions, open_model, predict
from pipelines.runs import Step


@flow(name="kerasflow-predict", flow_run_name="predict-{source}", log_prints=True)
def predict_flow(source: str, data: str, out_dir: str = "predictions", registry: str = "registry",
                 variant: str | None = None, keep: str | None = None) -> dict:
    """Score `data` with `source` (NAME[@vNNNN] or a run folder) into a dated CSV in `out_dir`."""
    model = run_as_task(Step.LOAD, open_model, source, registry)
    predictions: Predictions = run_as_task(Step.PREDICT, predict, model, data, variant, keep)
    name = model.ref.replace("@", "-").replace("/", "_").strip("_.")
    path = predictions.write_csv(Path(out_dir) / f"{Path(name).name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.csv")
    summary = {**predictions.summary(), "file": str(path)}
    publish_predictions(summary, predictions)
    tag_this_run(["kerasflow", "predict", f"model:{model.ref.partition('@')[0]}",
                  "drift" if summary["drifted"] else "no-drift"])
    get_run_logger().info("Done: %d rows scored with %s (%s); %s; wrote %s", summary["rows"], model.ref,
                          summary["variant"], summary["drift"], path)
    return summary


def publish_predictions(summary: dict, predictions: Predictions) -> None:
    lines = [f"# Predictions: {summary['model']} ({summary['variant']})", "",
             f"- {summary['rows']} rows scored into `{summary['file']}`",
             f"- Drift: {'**' + summary['drift'] + '**' if summary['drifted'] else summary['drift']}",
             *[f"- {note}" for note in summary["notes"]], "",
             "| label | rows | share |", "|---|---|---|",
             *[f"| {label} | {count} | {count / max(summary['rows'], 1):.1%} |"
               for label, count in summary["labels"].items()]]
    create_markdown_artifact("\n".join(lines), key="predictions", description=f"{summary['rows']} rows scored")
    if predictions.drift is not None:
        create_table_artifact(predictions.drift.to_rows(), key="drift",
                              description="Per-column drift of the scored data against the training data")
