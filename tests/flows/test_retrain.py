"""Scheduled retraining end to end on a real Prefect server: decisions, drift, faults, deployments, the UI."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.retrain import retrain_flow
from pipelines.config import RetrainConfig
from pipelines.errors import DataError, DriftDetected, RegistryBusy, RegistryError, ValidationFailed
from pipelines.registry import Registry, checksums
from tests.conftest import make_table, run_and_artifact_keys

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
ROOT = Path(__file__).resolve().parents[2]
KERASFLOW = str(Path(sys.executable).with_name("kerasflow"))


def _config(registry_root, data, tmp_path, **overrides) -> RetrainConfig:
    options = dict(name="tab", data=data, registry=registry_root, runs_root=tmp_path / "runs", finetune_epochs=3)
    # the tiny table's holdout has 6 rows per class: one sample is 0.17 recall, so tests that need a
    # promotion accept any challenger explicitly (min_improvement=-1, max_recall_drop=1)
    return RetrainConfig(**{**options, **overrides})


def _new_table(tmp_path, name="new.csv", seed=1, **changes) -> Path:
    frame = make_table(90, seed=seed)
    for column, change in changes.items():
        frame = change(frame) if callable(change) else frame.assign(**{column: change})
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _snapshot(root: Path) -> dict:
    """Every file of the registry but the lock: what must not change when a retrain stops."""
    return {k: v for k, v in checksums(root).items() if not k.endswith(".lock")}


def test_finetune_retrain_promotes_and_tells_its_story_in_the_ui(registry_root, tmp_path):
    summary = retrain_flow(_config(registry_root, _new_table(tmp_path), tmp_path, mode="finetune",
                                   min_improvement=-1.0, max_recall_drop=1.0))
    assert summary["mode"] == "finetune" and summary["promoted"]
    registry = Registry(registry_root)
    champion = registry.champion("tab")
    assert champion.version == "v0002" and summary["champion"] == "tab@v0002"
    record = champion.record
    assert record["parent"] == "v0001" and record["mode"] == "finetune"
    assert record["data"]["rows"] > 0 and record["data"]["sha256"] and record["code"]["tensorflow"]
    assert record["decision"]["compared_with"] == "tab@v0001"
    assert {"export/model_int8.tflite", "export/saved_model/saved_model.pb", "expectations.json",
            "reference.parquet", "replay.npz", "retrain_report.md"} <= set(record["files"])
    report = Path(summary["report"]).read_text()
    for section in ("## Decision", "## Champion vs challenger", "## Drift against", "| label | label | chi-square",
                    "replayed earlier samples", "Registered as **tab@v0002**"):
        assert section in report

    run, keys = asyncio.run(run_and_artifact_keys("retrain-tab-from-v0001-finetune"))
    assert run.state.is_completed()
    assert {"kerasflow", "retrain", "model:tab", "mode:finetune", "promoted", "version:v0002",
            "champion"} <= set(run.tags)
    assert {"retrain-report", "drift", "tflite-variants", "confusion-matrix"} <= keys


def test_a_finetune_challenger_re_exports_from_its_run_folder_and_from_its_version(registry_root, tmp_path):
    summary = retrain_flow(_config(registry_root, _new_table(tmp_path), tmp_path, mode="finetune",
                                   min_improvement=-1.0, max_recall_drop=1.0))
    run_dir = Path(summary["run_dir"])
    version = Registry(registry_root).version("tab", "v0002")
    frozen = checksums(version.path)

    from_run = CliRunner().invoke(app, ["export", str(run_dir), "--quantize", "float32", "--quantize", "int8"])
    assert from_run.exit_code == 0, from_run.output
    spec = json.loads((run_dir / "export" / "model_spec.json").read_text())
    assert set(spec["variants"]) == {"float32", "int8"}
    assert spec["variants"]["float32"]["label_agreement"] == 1.0
    assert spec["variants"]["float32"]["max_probability_difference"] < 1e-4
    report = (run_dir / "retrain_report.md").read_text()
    assert "model_int8.tflite" in report and "model_dynamic.tflite" not in report, "Export section rewritten"

    out = tmp_path / "v0002-export"
    from_version = CliRunner().invoke(app, ["export", "tab@v0002", "--registry", str(registry_root), "--out",
                                            str(out), "--quantize", "float32"])
    assert from_version.exit_code == 0, from_version.output
    again = json.loads((out / "model_spec.json").read_text())["variants"]["float32"]
    assert again["label_agreement"] == 1.0 and again["max_probability_difference"] < 1e-4
    assert again["accuracy"] == spec["variants"]["float32"]["accuracy"], "same model, same test split"
    assert checksums(version.path) == frozen, "a registered version never changes"

    champion = CliRunner().invoke(app, ["export", "tab", "--registry", str(registry_root), "--runs-root",
                                        str(tmp_path / "runs"), "--quantize", "dynamic"])
    assert champion.exit_code == 0, champion.output
    assert (tmp_path / "runs" / "tab" / "export-v0002" / "model_dynamic.tflite").exists()
    unknown = CliRunner().invoke(app, ["export", "tab@v0042", "--registry", str(registry_root)])
    assert unknown.exit_code == 2 and "tab@v0042: no such version" in unknown.output


def test_a_challenger_that_is_not_better_is_recorded_and_the_champion_kept(registry_root, tmp_path):
    summary = retrain_flow(_config(registry_root, _new_table(tmp_path), tmp_path, mode="finetune",
                                   min_improvement=1.0))
    assert not summary["promoted"] and "champion kept" in summary["reason"]
    registry = Registry(registry_root)
    assert registry.champion("tab").version == "v0001"
    rejected = registry.version("tab", "v0002")
    assert rejected.record["decision"]["promoted"] is False
    assert "needs +1.0000" in rejected.record["decision"]["reason"]


def test_drift_stops_a_finetune_and_switches_auto_to_a_fresh_search(registry_root, tmp_path):
    shifted = _new_table(tmp_path, x1=lambda f: f.assign(x1=f["x1"] + 2.5))
    before = _snapshot(registry_root)
    with pytest.raises(DriftDetected, match=r"\| x1 \| numeric \| KS \|"):
        retrain_flow(_config(registry_root, shifted, tmp_path, mode="finetune"))
    assert _snapshot(registry_root) == before
    assert not (tmp_path / "runs").exists()

    summary = retrain_flow(_config(registry_root, shifted, tmp_path, mode="auto", min_improvement=-1.0,
                                   max_recall_drop=1.0))
    assert summary["mode"] == "search" and "switched to a fresh search" in summary["mode_reason"]
    assert "x1" in summary["drifted"]
    report = Path(summary["report"]).read_text()
    assert "| x1 | numeric | KS |" in report and "**yes**" in report and "- Search: " in report
    assert Registry(registry_root).version("tab", "v0002").record["mode"] == "search"


@pytest.mark.parametrize("problem, expected", [
    ("missing column", (ValidationFailed, "missing ['colour']")),
    ("unseen label", (ValidationFailed, "column 'label': values outside the known set")),
    ("empty file", (DataError, "new.csv: the file is empty")),
])
def test_bad_new_data_stops_before_anything_changes(registry_root, tmp_path, problem, expected):
    path = tmp_path / "new.csv"
    frame = make_table(90, seed=1)
    if problem == "missing column":
        frame.drop(columns=["colour"]).to_csv(path, index=False)
    elif problem == "unseen label":
        frame.assign(label=np.where(frame.index % 9 == 0, "extreme", frame["label"])).to_csv(path, index=False)
    else:
        path.write_text("")
    before = _snapshot(registry_root)
    error, message = expected
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        retrain_flow(_config(registry_root, path, tmp_path))
    assert _snapshot(registry_root) == before
    assert not (tmp_path / "runs").exists()


def _text_in_x1() -> pd.DataFrame:
    frame = make_table(90, seed=1).astype({"x1": object})
    frame.loc[3:12, "x1"] = "twelve"  # 10 of 90: more than stray text (a stray value is read as missing)
    return frame


NEW_DATA_FAULTS = {  # each was found after Prefect's server started
    "text in a column the champion takes as numbers": (
        _text_in_x1, "new.csv: column 'x1' is numeric but 10 of 90 values are text (e.g. 'twelve')"),
    "a column of the champion's missing": (
        lambda: make_table(90, seed=1).drop(columns="colour"),
        "new.csv: no column colour, which the champion tab@v0001 was trained on and the model takes"),
}


@pytest.mark.parametrize("fault", list(NEW_DATA_FAULTS))
def test_new_data_is_checked_in_the_champions_terms_before_the_flow_starts(registry_root, tmp_path, monkeypatch,
                                                                          fault):
    monkeypatch.setattr("flows.retrain.retrain_flow", lambda *args, **kwargs: pytest.fail("the flow was started"))
    frame, message = NEW_DATA_FAULTS[fault]
    frame().to_csv(tmp_path / "new.csv", index=False)
    before = _snapshot(registry_root)
    cli = CliRunner().invoke(app, ["retrain", "tab", "--data", str(tmp_path / "new.csv"), "--registry",
                                   str(registry_root), "--runs-root", str(tmp_path / "runs")])
    lines = cli.output.strip().splitlines()
    assert cli.exit_code == 2 and len(lines) == 1, cli.output
    assert message in lines[0]
    assert _snapshot(registry_root) == before and not (tmp_path / "runs").exists()


def test_a_corrupt_registry_fails_fast_with_the_file_named(registry_root, tmp_path):
    (registry_root / "tab" / "champion.json").write_text('{"champion": ')
    started = time.monotonic()
    with pytest.raises(RegistryError, match="champion.json: the champion pointer is not valid JSON"):
        retrain_flow(_config(registry_root, _new_table(tmp_path), tmp_path))
    assert time.monotonic() - started < 30  # no retries: a user error is not transient
    cli = CliRunner().invoke(app, ["retrain", "tab", "--data", str(_new_table(tmp_path)),
                                   "--registry", str(registry_root), "--runs-root", str(tmp_path / "runs")])
    assert cli.exit_code == 2 and "champion.json" in cli.output


def _cli_retrain(registry_root, data, tmp_path, *options) -> subprocess.Popen:
    """`kerasflow retrain` in its own process, reporting to the test session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    command = [KERASFLOW, "retrain", "tab", "--data", str(data), "--registry", str(registry_root),
               "--runs-root", str(tmp_path / "runs"), *options]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(condition, process: subprocess.Popen, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the retrain exited early ({process.returncode}):\n{process.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_retrain_killed_mid_search_leaves_the_champion_and_a_rerun_resumes(registry_root, tmp_path):
    data = _new_table(tmp_path)
    before = _snapshot(registry_root)
    process = _cli_retrain(registry_root, data, tmp_path, "--mode", "search", "--max-trials", "4",
                           "--budget-minutes", "3")
    _wait_for(lambda: any((tmp_path / "runs").glob("tab/retrain-*-search/search/trial_seconds.json")), process)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert _snapshot(registry_root) == before
    assert Registry(registry_root).champion("tab").version == "v0001"

    summary = retrain_flow(_config(registry_root, data, tmp_path, mode="search", max_trials=4, budget_minutes=3,
                                   min_improvement=-1.0, max_recall_drop=1.0))
    assert "resumed from an interrupted run" in Path(summary["report"]).read_text()
    assert Registry(registry_root).champion("tab").version == "v0002"


def test_two_retrains_at_once_promote_at_most_once(registry_root, tmp_path):
    data = _new_table(tmp_path)
    first = _cli_retrain(registry_root, data, tmp_path, "--mode", "finetune", "--min-improvement", "-1",
                         "--max-recall-drop", "1", "--finetune-epochs", "20")
    lock = registry_root / "tab" / ".lock"
    _wait_for(lambda: lock.exists() and f"pid {first.pid}" in lock.read_text(), first)
    with pytest.raises(RegistryBusy, match=rf"kerasflow retrain --mode finetune, pid {first.pid}"):
        retrain_flow(_config(registry_root, data, tmp_path, mode="finetune", min_improvement=-1.0,
                             max_recall_drop=1.0))
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output[-3000:]
    registry = Registry(registry_root)
    assert [v.version for v in registry.versions("tab")] == ["v0001", "v0002"]
    assert registry.history("tab") == ["v0001", "v0002"]


def test_the_served_nightly_deployment_runs_a_retrain(registry_root, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.runner import Runner

    sys.path.insert(0, str(ROOT / "deployments"))
    from serve import load_deployments

    config = _config(registry_root, _new_table(tmp_path), tmp_path, mode="finetune", min_improvement=-1.0,
                     max_recall_drop=1.0)
    deployments = load_deployments(parameters={"config": config.model_dump(mode="json")})
    assert [d.name for d in deployments] == ["nightly-digits"]
    assert deployments[0].schedules[0].schedule.cron == "0 2 * * *"
    runner = Runner(query_seconds=1)
    for deployment in deployments:
        runner.add_deployment(deployment)
    scheduled = run_deployment("kerasflow-retrain/nightly-digits", timeout=0)
    asyncio.run(runner.start(run_once=True))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(scheduled.id)
    assert run.state.is_completed(), run.state
    assert run.name.startswith("retrain-tab-from-v0001-finetune")
    assert Registry(registry_root).champion("tab").version == "v0002"


def test_prefect_yaml_registers_the_nightly_deployment_for_a_process_pool():
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    prefect = str(Path(sys.executable).with_name("prefect"))
    for command in ([prefect, "work-pool", "create", "kerasflow", "--type", "process", "--overwrite"],
                    [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"]):
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("kerasflow-retrain/nightly-digits")
    assert deployment.work_pool_name == "kerasflow"
    assert deployment.schedules[0].schedule.cron == "0 2 * * *"
    assert deployment.parameters["config"]["mode"] == "auto"
    assert "model:digits" in deployment.tags


def test_retrain_help_explains_modes_and_the_promotion_rule():
    result = CliRunner().invoke(app, ["retrain", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for words in ("warm-start the champion", "--min-improvement", "--max-recall-drop", "--psi-threshold",
                  "--replay-fraction"):
        assert words in result.output
