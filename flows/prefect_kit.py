"""What every kerasflow flow shares on the Prefect side: steps as tasks, search workers on Dask, artifacts, tags.

The pipelines (`pipelines/`) know nothing of Prefect; a flow hands them
`run_as_task` as their step runner, `prefect_dask_workers` as the launcher
of parallel search workers, and `SearchProgress.on_trial_end` as the trial
hook, then publishes the result with the `publish_*` functions.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import time
from pathlib import Path
from typing import Iterator

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.output import prefect_console_handlers
from pipelines.errors import KerasflowError
from pipelines.export.model_card import variant_table
from pipelines.export.records import ExportResult
from pipelines.export.variant_plot import PLOT_FILE
from pipelines.report import compact
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
    Step.PREDICT: {"retries": 1, "retry_delay_seconds": 5, "retry_condition_fn": retry_unless_user_error},
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
    """Search progress where people look: a progress artifact (best so far, time left), a log line per trial,
    and on a terminal a progress bar."""

    def __init__(self, budget_minutes: float, bar: bool | None = None):
        self.budget_seconds = budget_minutes * 60
        self.started = time.monotonic()
        self.artifact_id = None
        self.best: TrialRecord | None = None
        self._bar = self._task = self._console = None
        if bar if bar is not None else _terminal():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            from rich.default_styles import DEFAULT_STYLES
            from rich.theme import Theme

            # Prefect's log lines must go through the bar's console, or the two overwrite each other; that
            # console's theme lacks the progress styles.
            consoles = [h.console for h in prefect_console_handlers()]
            self._console = consoles[0] if consoles else None
            if self._console is not None:
                self._console.push_theme(Theme({name: style for name, style in DEFAULT_STYLES.items()
                                                if name.startswith(("bar.", "progress."))}))
            self._bar = Progress(TextColumn("[bold]search[/bold] {task.description}"), BarColumn(),
                                 TimeElapsedColumn(), TextColumn("of {task.fields[budget]}"), transient=True,
                                 **({"console": self._console} if self._console else {}))
            self._task = self._bar.add_task("starting", total=self.budget_seconds,
                                            budget=f"{budget_minutes:g} min")
            self._bar.start()

    def on_trial_end(self, record: TrialRecord, n_trials: int) -> None:
        elapsed = time.monotonic() - self.started
        if record.val_score is not None and (self.best is None or record.val_score > self.best.val_score):
            self.best = record
        score = "n/a" if record.val_score is None else f"{record.val_score:.4f}"
        best = (f"best {self.best.val_score:.4f} ({self.best.family}, trial {self.best.trial_id})" if self.best
                else "no score yet")
        get_run_logger().info("trial %s (%d so far): %s %s, score %s, %.1f s; %s so far%s", record.trial_id, n_trials,
                              record.family, record.status, score, record.seconds or 0, best,
                              f" — {record.message}" if record.message else "")
        left = max(0.0, self.budget_seconds - elapsed) / 60
        description = f"Search: {n_trials} trials, {best}; {left:.1f} of {self.budget_seconds / 60:g} min left"
        share = min(100.0, 100 * elapsed / self.budget_seconds)
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(share, key="search-progress", description=description)
        else:
            update_progress_artifact(self.artifact_id, share, description=description)
        if self._bar is not None:
            self._bar.update(self._task, completed=min(elapsed, self.budget_seconds),
                             description=f"{n_trials} trials, {best}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            if self._console is not None:
                self._console.pop_theme()


def _terminal() -> bool:
    from rich.console import Console

    return Console(stderr=True).is_terminal


def png_data_url(path: Path, max_width: int = 720) -> str:
    """A PNG as a data URL, scaled down to `max_width` pixels so the artifact stays small."""
    from PIL import Image

    with Image.open(path) as image:
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def embed_images(markdown: str, folder: Path) -> str:
    """Markdown whose relative PNG links become embedded images: the Prefect UI cannot reach the run folder."""
    def embed(match: re.Match) -> str:
        path = Path(folder) / match.group(2)
        if not path.is_file():
            return f"*({match.group(1)}: {match.group(2)} is missing)*"
        return f"![{match.group(1)}]({png_data_url(path)})"

    return IMAGE_LINK.sub(embed, markdown)


def publish_markdown(path: Path, key: str, description: str) -> None:
    """A report file as a markdown artifact, its pictures embedded."""
    create_markdown_artifact(embed_images(Path(path).read_text(), Path(path).parent), key=key,
                             description=description)


def publish_picture(path: Path, key: str, title: str) -> None:
    """One picture as a markdown artifact: shown inline, never printed as a data URL."""
    create_markdown_artifact(f"### {title}\n\n![{title}]({png_data_url(path)})\n\n`{path}`", key=key,
                             description=title)


def publish_trials(search: SearchResult) -> None:
    """Every trial, best first; scores rounded and hyperparameters compact, so the table fits a window."""
    ranked = sorted(search.trials, key=lambda t: (t.val_score is None, -(t.val_score or 0), t.trial_id))
    messages = any(t.message for t in ranked)
    rows = [{"best": "★" if t.trial_id == search.best_trial_id else "", "trial": t.trial_id, "status": str(t.status),
             "family": t.family, search.objective: None if t.val_score is None else round(t.val_score, 4),
             "seconds": None if t.seconds is None else round(t.seconds, 1), "epochs": t.epochs, "rows": t.rows,
             "params": t.params, **({"int8 KiB": t.int8_kb, "latency ms": t.latency_ms} if search.mobile_budget else {}),
             **({"message": t.message[:60]} if messages else {}),
             "hyperparameters": compact(t.hyperparameters).partition(": ")[2]} for t in ranked]
    create_table_artifact(rows, key="search-trials", description=f"Every search trial, best first "
                          f"(★ trial {search.best_trial_id})")


def publish_columns(roles: dict[str, dict]) -> None:
    """A table's columns with the role each took and why (nothing for images and sequences)."""
    if roles:
        create_table_artifact([{"column": name, "role": r["role"], "why": r["why"]} for name, r in roles.items()],
                              key="columns", description="What each column is to the model "
                              "(--column-role NAME=ROLE overrides)")


def publish_export(export: ExportResult) -> None:
    plot = Path(export.directory) / PLOT_FILE
    picture = [f"![accuracy against size]({png_data_url(plot)})", ""] if plot.exists() else []
    create_markdown_artifact("\n".join(["# TFLite variants", "", *picture, *variant_table(export)]),
                             key="tflite-variants",
                             description="Which TFLite variant to ship: size, parity and batch-1 latency")


def tag_this_run(tags: list[str]) -> None:
    """Add tags to the current flow run, so runs filter by model, mode, version and outcome in the UI."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.get_id())
        client.update_flow_run(run.id, tags=list(dict.fromkeys([*run.tags, *tags])))
