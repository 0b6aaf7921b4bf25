"""The retraining flow: what the nightly deployment runs, and `kerasflow retrain`.

Steps come from `pipelines.retrain`; this module adds the Prefect side:
tasks with retries for transient errors only, a run name with the model and
the champion it challenges, tags to filter on, and artifacts that tell the
run's story in the UI (report, drift table, trials, confusion matrix).
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from flows.prefect_kit import (
    SearchProgress,
    prefect_dask_workers,
    publish_export,
    publish_markdown,
    publish_picture,
    publish_trials,
    run_as_task,
    tag_this_run,
)
from pipelines.config import RetrainConfig
from pipelines.errors import DriftDetected, KerasflowError, ValidationFailed
from pipelines.registry import Registry
from pipelines.results import RetrainResult
from pipelines.retrain import retrain


def _config() -> RetrainConfig:
    config = flow_run.parameters["config"]
    return config if isinstance(config, RetrainConfig) else RetrainConfig.model_validate(config)


def _retrain_run_name() -> str:
    """e.g. retrain-digits-from-v0003-auto-20261122-020000: the model and the champion it challenges."""
    config = _config()
    try:
        champion = Registry(config.registry).champion(config.name, verify=False)
        against = champion.version if champion else "none"
    except KerasflowError:
        against = "unreadable-registry"
    return f"retrain-{config.name}-from-{against}-{config.mode}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


@flow(name="kerasflow-retrain", flow_run_name=_retrain_run_name, log_prints=True)
def retrain_flow(config: RetrainConfig) -> dict:
    """Check new data against the champion, build a challenger, promote it only if it wins on a fresh holdout."""
    logger = get_run_logger()
    tag_this_run(["kerasflow", "retrain", f"model:{config.name}", f"mode:{config.mode}"])
    progress = SearchProgress(config.budget_minutes or 5.0)
    try:
        result = retrain(config, run_step=run_as_task, on_trial_end=progress.on_trial_end,
                         launch=prefect_dask_workers)
    except (ValidationFailed, DriftDetected) as stopped:
        create_markdown_artifact(stopped.report, key="retrain-stopped",
                                 description=f"Why the retrain of {config.name} stopped; nothing was promoted")
        raise
    finally:
        progress.close()
    publish_retrain(result)
    promoted = result.decision.promote
    tag_this_run(["promoted" if promoted else "rejected", f"version:{result.version.version}",
                  *(["champion"] if promoted else [])])
    model = result.challenger.candidate
    logger.info("Done: %s %s (holdout %s %.4f vs champion %.4f); challenger test accuracy %.4f, ship %s; "
                "champion now %s@%s", result.version.ref, "promoted" if promoted else "rejected",
                result.decision.metric, result.decision.challenger_score, result.decision.champion_score,
                model.evaluation.accuracy, model.export.recommended.file if model.export.recommended else "no variant",
                config.name, result.champion_now)
    return result.summary()


def publish_retrain(result: RetrainResult) -> None:
    """Report, drift table, trials (search mode), TFLite variants and the challenger's confusion matrix."""
    publish_markdown(result.report_path, "retrain-report",
                     f"{result.config.name}: champion vs challenger, drift, decision")
    create_table_artifact(result.drift.to_rows(), key="drift", description="Per-column drift against the "
                          "champion's training data")
    if result.challenger.search is not None:
        publish_trials(result.challenger.search)
    publish_export(result.challenger.candidate.export)
    publish_picture(result.run_dir / "confusion_matrix.png", "confusion-matrix",
                    f"Challenger on the holdout ({'promoted' if result.decision.promote else 'rejected'})")
