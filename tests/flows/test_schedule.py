"""Scheduled retraining that really fires: the server's scheduler creates runs, a worker executes one.

The session's Prefect server is a real `prefect server start` with its scheduler on a 2-second loop.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.schedule import scheduled  # imported here, not first inside CliRunner: prefect's runner binds its streams
from pipelines.registry import Registry
from tests.conftest import make_table

pytestmark = [pytest.mark.e2e]
PREFECT = str(Path(sys.executable).with_name("prefect"))
SCHEDULER_ERRORS = ("Can't evaluate bulk DML statement", "Unexpected error in: SchedulerService",
                    "Error in scheduler")


def _states(deployment: str) -> list[str]:
    """States of the flow runs of one retrain deployment, through the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))
    return [run.state.type.value for run in runs if run.state]


def _stop(worker: subprocess.Popen) -> None:
    """The worker and the flow run it started (same process group): politely, then for sure."""
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)


def _wait(condition, seconds: float, what: str, process=None):
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the worker exited early ({process.returncode})")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


@pytest.mark.timeout(600)
def test_the_scheduler_creates_runs_and_a_worker_runs_one_to_a_registry_decision(prefect_server, registry_root,
                                                                                   tmp_path):
    data = tmp_path / "new.csv"
    make_table(90, seed=1).to_csv(data, index=False)
    created = CliRunner().invoke(app, ["schedule", "tab", "--data", str(data), "--registry", str(registry_root),
                                       "--runs-root", str(tmp_path / "runs"), "--mode", "finetune",
                                       "--interval", "30"])
    assert created.exit_code == 0, created.output
    assert "kerasflow-retrain/retrain-tab" in created.output and "work pool kerasflow" in created.output

    def upcoming():
        return [s for s in scheduled() if s.deployment == "kerasflow-retrain/retrain-tab" and s.next_runs]

    _wait(upcoming, 60, "the scheduler to create runs")
    assert upcoming()[0].schedule == "every 30 s" and upcoming()[0].pool == "kerasflow"
    listed = CliRunner().invoke(app, ["schedule", "--list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "retrain-tab" in listed.output and "every 30 s" in listed.output

    env = {**os.environ, "PREFECT_API_URL": prefect_server.url}
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "kerasflow", "--limit", "1"], env=env,
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    registry = Registry(registry_root)
    try:
        _wait(lambda: len(registry.versions("tab")) >= 2, 420, "a scheduled retrain to register a version", worker)
        _wait(lambda: "COMPLETED" in _states("retrain-tab"), 120, "the scheduled run to complete", worker)
        removed = CliRunner().invoke(app, ["schedule", "tab", "--remove"])  # no further runs
    finally:
        _stop(worker)
    challenger = registry.version("tab", "v0002")
    assert challenger.record["mode"] == "finetune" and challenger.record["parent"] == "v0001"
    assert challenger.record["decision"]["compared_with"] == "tab@v0001"
    assert "reason" in challenger.record["decision"]

    assert removed.exit_code == 0 and "removed" in removed.output
    assert not [s for s in scheduled() if s.deployment == "kerasflow-retrain/retrain-tab"]
    log = prefect_server.log.read_text()
    assert not [line for line in log.splitlines() if any(error in line for error in SCHEDULER_ERRORS)], log[-3000:]


def test_scheduling_a_model_without_a_champion_is_one_line(prefect_server, tmp_path):
    result = CliRunner().invoke(app, ["schedule", "nobody", "--dataset", "wine", "--registry",
                                      str(tmp_path / "registry"), "--cron", "0 2 * * *"])
    assert result.exit_code == 2 and "'nobody' has no champion" in result.output
    both = CliRunner().invoke(app, ["schedule", "nobody", "--dataset", "wine", "--cron", "0 2 * * *",
                                    "--interval", "60"])
    assert both.exit_code == 2 and "exactly one of --cron" in both.output


def test_batch_scoring_flow_writes_a_dated_file_and_a_summary_and_can_be_scheduled(prefect_server, registry_root,
                                                                                    tmp_path):
    import asyncio

    import pandas as pd

    from flows.predict import predict_flow
    from tests.conftest import run_artifacts

    data = tmp_path / "new.csv"
    make_table(30, seed=5).drop(columns=["label"]).to_csv(data, index=False)
    summary = predict_flow("tab", str(data), out_dir=str(tmp_path / "scored"), registry=str(registry_root))
    written = pd.read_csv(summary["file"])
    assert Path(summary["file"]).parent == tmp_path / "scored" and Path(summary["file"]).name.startswith("tab-v0001-")
    assert len(written) == 30 == summary["rows"] and sum(summary["labels"].values()) == 30
    artifacts = asyncio.run(run_artifacts("predict-tab"))
    assert "30 rows scored into" in artifacts["predictions"].data and "| label | rows | share |" in \
        artifacts["predictions"].data
    assert {"drift", "predictions"} <= set(artifacts)

    created = CliRunner().invoke(app, ["schedule", "tab", "--predict", "--data", str(data), "--out-dir",
                                       str(tmp_path / "scored"), "--registry", str(registry_root), "--cron",
                                       "0 3 * * *"])
    assert created.exit_code == 0 and "kerasflow-predict/predict-tab" in created.output, created.output
    listed = CliRunner().invoke(app, ["schedule", "--list"], env={"COLUMNS": "200"})
    assert "kerasflow-predict/predict-tab" in listed.output and "cron 0 3 * * *" in listed.output
    removed = CliRunner().invoke(app, ["schedule", "tab", "--predict", "--remove"])
    assert removed.exit_code == 0 and "removed" in removed.output
