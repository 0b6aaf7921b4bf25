"""The training flow: each pipeline step is a Prefect task; the UI gets progress and reports.

The step order lives in `pipelines.train`; the Prefect side (tasks, retries,
Dask workers, artifacts) in `flows.prefect_kit`. Model objects never enter
Prefect results: steps pass paths and small records.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.prefect_kit import (
    SearchProgress,
    prefect_dask_workers,
    publish_columns,
    publish_export,
    publish_markdown,
    publish_picture,
    publish_trials,
    run_as_task,
    tag_this_run,
)
from pipelines.config import TrainConfig
from pipelines.errors import ValidationFailed
from pipelines.results import RunResult
from pipelines.search.anytime import ANYTIME_FILE
from pipelines.train import train


def _flow_run_name() -> str:
    config = flow_run.parameters["config"]
    config = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(config)
    return f"train-{config.model_name}-{config.tuner}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


@flow(name="kerasflow-train", flow_run_name=_flow_run_name, log_prints=True)
def train_flow(config: TrainConfig) -> dict:
    """Validate, search, fine-tune, evaluate and export a Keras model for `config`'s data."""
    logger = get_run_logger()
    tag_this_run(["kerasflow", "train", f"model:{config.model_name}"])
    progress = SearchProgress(config.budget_minutes)
    try:
        result = train(config, run_step=run_as_task, on_trial_end=progress.on_trial_end, launch=prefect_dask_workers)
    except ValidationFailed as failure:
        create_markdown_artifact(failure.report, key="validation-report", description="Why the run stopped")
        raise
    finally:
        progress.close()
    publish(result)
    summary = result.summary()
    if result.registered:
        tag_this_run([f"version:{result.registered.version}", *(["champion"] if summary["champion"] else [])])
    recommended = result.export.recommended
    logger.info("Done: test accuracy %.4f, macro-F1 %.4f (%s); ship %s; %s; run folder %s",
                result.evaluation.accuracy, result.evaluation.macro_f1, summary["family"],
                f"{recommended.file} ({recommended.bytes / 1024:.1f} KiB)" if recommended else "no variant",
                (f"registered {result.registered.ref}" + (" (champion)" if summary["champion"] else
                                                          " (candidate; champion unchanged)"))
                if result.registered else "not registered", result.run_dir)
    return summary


def publish(result: RunResult) -> None:
    """The run's story for the Prefect UI: the report, the table of trials and the TFLite variants."""
    publish_markdown(result.report_path, "train-report", f"kerasflow report for {result.config.model_name}")
    publish_columns(result.prep.roles)
    publish_trials(result.search)
    publish_export(result.export)
    publish_picture(result.run_dir / "confusion_matrix.png", "confusion-matrix", "Fine-tuned model on the test split")
    publish_picture(result.run_dir / ANYTIME_FILE, "search-anytime", "Search: best selection score so far")
