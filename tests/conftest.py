"""Shared fixtures: tiny real datasets on disk and one Prefect server per test session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# Prefect's telemetry heartbeat races the first migrations of a fresh database ("database is locked").
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipelines.config import TrainConfig


@pytest.fixture(scope="session")
def prefect_server():
    """One real Prefect API (temporary server, sqlite) shared by every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def fast_config(**overrides) -> TrainConfig:
    """Tiny budgets: a couple of trials of 1–2 epochs."""
    options = dict(budget_minutes=0.25, tuner="random", max_trials=2, max_epochs=2, finetune_epochs=2, batch_size=16,
                   min_trial_steps=0)
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


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "table.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture
def image_folder(tmp_path):
    """Ten real 8x8 digits per class for three classes, as PNG files."""
    digits = load_digits()
    root = tmp_path / "images"
    for digit in (0, 1, 7):
        folder = root / f"digit_{digit}"
        folder.mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == digit][:10]):
            Image.fromarray((image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{i}.png")
    return root


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
    path = tmp_path / "sequences.npz"
    np.savez(path, x=np.array(x, dtype=object), y=y)
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
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
        run = next(r for r in runs if r.name.startswith(name_prefix))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        return run, {a.key for a in artifacts}
