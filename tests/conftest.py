"""Shared fixtures: tiny real datasets on disk and one real Prefect server per test session (xdist worker)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# Prefect's telemetry heartbeat races the first migrations of a fresh database ("database is locked").
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# pytest-xdist's workers inherit COLUMNS=80 and LINES=24 from execnet; rich would fix the CLI console's width at import,
# and the CLI tests that ask for a wide terminal (CliRunner's env COLUMNS) would get 80 columns.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipelines.config import TrainConfig


@dataclass
class PrefectServer:
    url: str
    log: Path


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real `prefect server start` (sqlite, all services, a 2-second scheduler loop) for every flow test.

    Not the ephemeral test harness: that runs no scheduler, and scheduled retraining is what users rely on.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-server")
    log = home / "server.log"
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).with_name("prefect"))
    with open(log, "w") as output:
        process = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_until_healthy(url, process, log)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield PrefectServer(url, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(url: str, process, log: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def fast_config(**overrides) -> TrainConfig:
    """Tiny budgets: a couple of trials of 1–2 epochs, holdout selection, no ensemble (k-fold and ensembles have
    their own tests in tests/model and tests/unit), 20 timed calls per latency column instead of 100."""
    options = dict(budget_minutes=0.25, tuner="random", max_trials=2, max_epochs=2, finetune_epochs=2, batch_size=16,
                   min_trial_steps=0, ensemble_size=1, selection="holdout", latency_runs=20)
    options.update(overrides)
    return TrainConfig(**options)


def make_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three classes separable by `x1`, a categorical column, and some missing values."""
    rng = np.random.default_rng(seed)
    label = np.array(["low", "mid", "high"])[np.arange(n) % 3]
    x1 = np.select([label == "low", label == "mid"], [0.0, 5.0], 10.0) + rng.normal(0, 0.5, n)
    frame = pd.DataFrame({
        "x1": x1,
        "x2": rng.normal(0, 1, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "label": label,
    })
    frame.loc[::7, "x2"] = np.nan
    frame.loc[::11, "colour"] = None
    return frame


TEXT_WORDS = {"billing": ["invoice", "refund", "charged", "payment", "card"],
              "network": ["wifi", "router", "offline", "dns", "latency"],
              "account": ["password", "login", "locked", "email", "reset"]}
FILLER = ["please", "help", "my", "the", "is", "not", "working", "today", "again", "since", "monday", "it's"]


def make_texts(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Support tickets: a free-text `body` whose words tell its `team` (three classes), and a numeric `priority`."""
    rng = np.random.default_rng(seed)
    teams = np.array(sorted(TEXT_WORDS))[np.arange(n) % 3]
    bodies = []
    for team in teams:
        words = list(rng.choice(TEXT_WORDS[team], 2)) + list(rng.choice(FILLER, int(rng.integers(3, 9))))
        rng.shuffle(words)
        bodies.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ", thanks."]))
    return pd.DataFrame({"body": bodies, "priority": rng.integers(1, 4, n).astype(float), "team": teams})


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "table.csv"
    make_table().to_csv(path, index=False)
    return path


def write_digit_images(root: Path) -> Path:
    """Ten real 8x8 digits per class for three classes, as gray PNG files in one folder per class."""
    digits = load_digits()
    for digit in (0, 1, 7):
        folder = root / f"digit_{digit}"
        folder.mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == digit][:10]):
            Image.fromarray((image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{i}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    """Ten real 8x8 digits per class for three classes, as PNG files."""
    return write_digit_images(tmp_path / "images")


@pytest.fixture
def image_inputs(image_folder):
    """Model inputs and preprocessing of `image_folder`, split 60/20/20."""
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs

    splits = split_dataset(load_path(image_folder, None), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    return model_inputs(splits, prep), prep


def make_sequences(n: int = 40, seed: int = 0, ragged: bool = True):
    """Two classes: rising vs falling series of 2 features, lengths 16–20."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for i in range(n):
        length = int(rng.integers(16, 21)) if ragged else 20
        t = np.linspace(0, 1, length)
        sign = 1 if i % 2 else -1
        x.append(np.stack([sign * t + rng.normal(0, 0.1, length), rng.normal(0, 1, length)], axis=1))
        y.append("up" if sign > 0 else "down")
    return x, np.array(y)


@pytest.fixture
def sequences_npz(tmp_path):
    x, y = make_sequences()
    from pipelines.load import write_sequence_file

    path = tmp_path / "sequences.npz"
    write_sequence_file(path, x, y)  # ragged: every sequence's steps one after another, and their lengths
    return path


@pytest.fixture(scope="session")
def trained_champion(tmp_path_factory):
    """A registry whose model 'tab' has one champion, trained on a small table (copied per test)."""
    from pipelines.train import train

    root = tmp_path_factory.mktemp("champion")
    make_table(90, seed=0).to_csv(root / "old.csv", index=False)
    train(fast_config(data=root / "old.csv", target="label", runs_root=root / "runs", registry=root / "registry",
                      name="tab"))
    return root / "registry"


@pytest.fixture
def registry_root(trained_champion, tmp_path):
    import shutil

    return shutil.copytree(trained_champion, tmp_path / "registry")


async def run_and_artifact_keys(name_prefix: str):
    """The latest flow run whose name starts with `name_prefix`, and its artifact keys, via the Prefect client."""
    run, artifacts = await run_and_artifacts(name_prefix)
    return run, set(artifacts)


async def run_artifacts(name_prefix: str) -> dict:
    """key -> artifact of the latest flow run whose name starts with `name_prefix`."""
    return (await run_and_artifacts(name_prefix))[1]


async def run_and_artifacts(name_prefix: str):
    """The latest flow run whose name starts with `name_prefix`, and its artifacts by key, via the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=_named(name_prefix), sort=FlowRunSort.START_TIME_DESC,
                                           limit=50)
        run = next(r for r in runs if r.name.startswith(name_prefix))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        return run, {a.key: a for a in artifacts}


def _named(prefix: str):
    """Flow runs whose name contains `prefix`: scheduled runs of other tests must not crowd them out of a page."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    return FlowRunFilter(name=FlowRunFilterName(like_=prefix))
