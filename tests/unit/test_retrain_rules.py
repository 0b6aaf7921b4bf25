"""The retrain's choices on their own: which challenger to build, and the options it trains with."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_checks import LABEL_COLUMN
from data_checks.drift import compare_profiles
from pipelines.config import RetrainConfig, TrainConfig
from pipelines.errors import DriftDetected
from pipelines.retrain import choose_mode, new_data_config


def _drift(shift: float):
    rng = np.random.default_rng(0)
    frame = lambda s, seed: pd.DataFrame({"x": np.random.default_rng(seed).normal(s, 1, 400),  # noqa: E731
                                          LABEL_COLUMN: rng.choice(["a", "b"], 400)})
    return compare_profiles(frame(0, 1), frame(shift, 2))


@pytest.mark.parametrize("requested", ["auto", "finetune"])
def test_no_drift_fine_tunes_from_the_champion(requested):
    mode, reason = choose_mode(requested, _drift(0.0), "tab@v0003")
    assert mode == "finetune" and "warm start from tab@v0003" in reason and "no drift" in reason


def test_search_is_always_a_search():
    assert choose_mode("search", _drift(0.0), "tab@v0003") == ("search", "asked for a fresh search")
    assert choose_mode("search", _drift(2.0), "tab@v0003")[0] == "search"


def test_drift_switches_auto_to_a_search_and_stops_a_finetune():
    drift = _drift(2.0)
    assert [c.column for c in drift.drifted] == ["x"]
    mode, reason = choose_mode("auto", drift, "tab@v0003")
    assert mode == "search" and "switched to a fresh search" in reason and "x (PSI" in reason
    with pytest.raises(DriftDetected, match="drifted from tab@v0003's training data") as stopped:
        choose_mode("finetune", drift, "tab@v0003")
    assert "| x | numeric |" in stopped.value.report


def _champion_config() -> TrainConfig:
    return TrainConfig(data=Path("old.csv"), target="label", name="tab", families=["dense"], budget_minutes=3,
                       max_trials=7, max_epochs=4, registry=Path("registry"), run_dir=Path("runs/tab/old"), seed=1,
                       quantize=["int8"], batch_size=16)


def test_new_data_keeps_the_champions_options_and_takes_only_its_own():
    config = new_data_config(_champion_config(), RetrainConfig(name="tab", data=Path("new.csv"),
                                                               runs_root=Path("elsewhere"), seed=9))
    assert (config.data, config.dataset, config.target) == (Path("new.csv"), None, "label")
    assert (config.families, config.quantize, config.batch_size) == (["dense"], ["int8"], 16)
    assert (config.budget_minutes, config.max_trials, config.max_epochs) == (3, 7, 4)
    assert config.registry is None and config.run_dir is None, "the retrain registers, not the training run"
    assert (config.runs_root, config.seed, config.model_name) == (Path("elsewhere"), 9, "tab")


def test_new_data_config_applies_search_overrides_and_a_bundled_dataset():
    config = new_data_config(_champion_config(), RetrainConfig(name="tab", dataset="wine", budget_minutes=1,
                                                               max_trials=2, test_data=Path("holdout.csv")))
    assert (config.data, config.dataset, config.test_data) == (None, "wine", Path("holdout.csv"))
    assert (config.budget_minutes, config.max_trials, config.max_epochs) == (1, 2, 4)


def test_a_retrain_reads_its_new_data_with_its_own_target_and_image_size_else_the_champions():
    """A champion trained on a bundled table (no target) retrains from a CSV once the retrain names the column."""
    champion = _champion_config().model_copy(update={"data": None, "dataset": "wine", "target": None})
    config = new_data_config(champion, RetrainConfig(name="wine", data=Path("wine.csv"), target="class"))
    assert (config.data, config.dataset, config.target) == (Path("wine.csv"), None, "class")
    assert new_data_config(_champion_config(), RetrainConfig(name="tab", data=Path("n.csv"))).target == "label"
    sized = new_data_config(_champion_config(), RetrainConfig(name="tab", data=Path("imgs"), image_size=(16, 16)))
    assert sized.image_size == (16, 16)
