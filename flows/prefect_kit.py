"""What every kerasflow flow shares on the Prefect side: steps as tasks, search workers on Dask, artifacts, tags.

The pipelines (`pipelines/`) know nothing of Prefect; a flow hands them
`run_as_task` as their step runner, `prefect_dask_workers` as the launcher
of parallel search workers, and `SearchProgress.on_trial_end` as the trial
hook, then publishes the result with the `publish_*` functions.
"""

from __future__ import annotations

import base64
import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from pipelines.errors import KerasflowError
from pipelines.export_records import ExportResult
from pipelines.model_card import variant_table
from pipelines.runs import Step
from pipelines.search.parallel import (
    CONNECT_TIMEOUT,
    WorkerHandle,
    WorkerSpec,
    local_cluster_options,
    search_worker,
    unreachable_scheduler_is_an_error,
)
from pipelines.search.records import SearchResult, TrialRecord


def retry_unless_user_error(task, task_run, state) -> bool:
    """Transient failures (a flaky mount, a busy disk) are retried; bad data is not."""
    try:
        state.result()
    except KerasflowError:
        return False
    except Exception:
        return True
    return False


# Steps whose failure can be transient: reading the data (network mounts), writing the export (disk).
TASK_OPTIONS = {
    Step.LOAD: {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": retry_unless_user_error},
    Step.EXPORT: {"retries": 1, "retry_delay_seconds": 5, "retry_condition_fn": retry_unless_user_error},
}


def run_as_task(name: Step, function, *args, **kwargs):
    """Run one pipeline step as a Prefect task; results stay in memory, never cached or persisted."""
    options = {"name": str(name), "cache_policy": NO_CACHE, "persist_result": False, **TASK_OPTIONS.get(name, {})}
    return task(function, **options)(*args, **kwargs)


@contextlib.contextmanager
def prefect_dask_workers(specs: list[WorkerSpec], address: str | None = None) -> Iterator[list[WorkerHandle]]:
    """Parallel search workers as Prefect tasks on prefect-dask's task runner, one Dask worker process each.

    Each worker is a task run in the UI with its own logs. Without `address`
    the runner starts a local Dask cluster for the search and closes it after.
    """
    from prefect_dask import DaskTaskRunner

    runner = (DaskTaskRunner(address=address, client_kwargs={"timeout": CONNECT_TIMEOUT}) if address else
              DaskTaskRunner(cluster_kwargs=local_cluster_options(len(specs))))
    worker = task(search_worker, name="search-worker", task_run_name="search-{spec.tuner_id}",
                  cache_policy=NO_CACHE, persist_result=False, log_prints=False)
    with runner:
        with unreachable_scheduler_is_an_error(address) if address else contextlib.nullcontext():
            submitted = [runner.submit(worker, parameters={"spec": spec}) for spec in specs]
        yield [WorkerHandle(spec, future.wrapped_future, unwrap=_state_result)
               for spec, future in zip(specs, submitted)]


def _state_result(state):
    """The worker's report; raises the worker's error if its task run failed."""
    return state.result()


class SearchProgress:
    """A progress artifact (share of the budget spent) and one log line per finished trial."""

    def __init__(self, budget_minutes: float):
        self.budget_seconds = budget_minutes * 60
        self.started = time.monotonic()
        self.artifact_id = None

    def on_trial_end(self, record: TrialRecord, n_trials: int) -> None:
        elapsed = time.monotonic() - self.started
        share = min(100.0, 100 * elapsed / self.budget_seconds)
        score = "n/a" if record.val_score is None else f"{record.val_score:.4f}"
        get_run_logger().info("trial %s (%d so far): %s %s, score %s, %.1f s%s", record.trial_id, n_trials,
                              record.family, record.status, score, record.seconds or 0,
                              f" — {record.message}" if record.message else "")
        description = f"Search: {n_trials} trials, last {record.family} {score}"
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(share, key="search-progress", description=description)
        else:
            update_progress_artifact(self.artifact_id, share, description=description)


def publish_image(path: Path, key: str, description: str) -> None:
    """An image artifact the UI shows inline: the PNG travels as a data URL, no file server needed."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    create_image_artifact(f"data:image/png;base64,{encoded}", key=key, description=f"{description} — {path}")


def publish_trials(search: SearchResult) -> None:
    rows = [{**asdict(t), "hyperparameters": str(t.hyperparameters)} for t in search.trials]
    create_table_artifact(rows, key="search-trials", description="Every search trial")


def publish_export(export: ExportResult) -> None:
    create_markdown_artifact("\n".join(["# TFLite variants", "", *variant_table(export)]), key="tflite-variants",
                             description="Size, parity and batch-1 latency of every exported TFLite variant")


def tag_this_run(tags: list[str]) -> None:
    """Add tags to the current flow run, so runs filter by model, mode, version and outcome in the UI."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.get_id())
        client.update_flow_run(run.id, tags=list(dict.fromkeys([*run.tags, *tags])))
