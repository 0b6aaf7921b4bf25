"""The export flow: new TFLite variants for a finished run folder or a registered version, without retraining."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.prefect_kit import publish_export, run_as_task
from pipelines.config import ExportOptions
from pipelines.export.reexport import reexport_run, reexport_version
from pipelines.registry import Registry
from pipelines.runs import Step


@flow(name="kerasflow-export", flow_run_name="export-{run_dir}", log_prints=True)
def export_flow(run_dir: str, options: ExportOptions | None = None) -> dict:
    """Re-export a finished run folder (train or retrain): its export/ and its report's Export section."""
    result = run_as_task(Step.EXPORT, reexport_run, Path(run_dir), options or ExportOptions())
    publish_export(result)
    return result.summary()


@flow(name="kerasflow-export-version", flow_run_name="export-{ref}", log_prints=True)
def export_version_flow(ref: str, registry: str = "registry", out_dir: str | None = None, runs_root: str = "runs",
                        options: ExportOptions | None = None) -> dict:
    """Re-export registered version `ref` into its own folder; the version folder is never written."""
    result = run_as_task(Step.EXPORT, reexport_version, Registry(registry), ref, Path(out_dir) if out_dir else None,
                         Path(runs_root), options or ExportOptions())
    publish_export(result)
    return result.summary()
