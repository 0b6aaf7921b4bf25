"""Each trial, and each member the fine-tune trains, draws from the run's seed and its own values
(`pipelines.search.seeding`), not from what was trained before it in the same process."""

from pathlib import Path

import h5py
import keras
import numpy as np

from models import ENSEMBLE
from models.ensemble import member_models
from pipelines.finetune import fine_tune
from pipelines.search import SearchOptions, run_search


def _checkpoint_weights(path: Path) -> list[np.ndarray]:
    """The arrays of a Keras weights file, in file order."""
    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.append(np.asarray(item)) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_trial_trains_alike_whatever_trials_ran_before_it(image_inputs, tmp_path):
    """The portfolio's MLP trained first, and after the portfolio's CNN, ends with the same weights; another run
    seed changes them."""
    inputs, prep = image_inputs

    def last_trial(name: str, families: list[str], seed: int = 0):
        options = SearchOptions(tuner="random", max_trials=len(families), max_epochs=1, batch_size=8,
                                budget_minutes=2, ensemble_size=1, selection="holdout", families=families, seed=seed)
        result = run_search(inputs, prep, tmp_path / name, options)
        assert [t.family for t in result.trials] == families
        trial = result.trials[-1]
        return _checkpoint_weights(tmp_path / name / f"trial_{trial.trial_id}" / "checkpoint.weights.h5"), \
            trial.hyperparameters

    alone, alone_values = last_trial("alone", ["dense"])
    after, after_values = last_trial("after", ["cnn", "dense"])
    reseeded, _ = last_trial("reseeded", ["dense"], seed=1)
    assert alone_values == after_values
    assert _same(alone, after), "the CNN trial before it drew from the generators the MLP then drew from"
    assert not _same(alone, reseeded)


def test_a_fine_tuned_member_trains_alike_whatever_members_come_before_it(image_inputs, tmp_path):
    inputs, prep = image_inputs
    first = {"family": "dense", "dense_layers": 1, "dense_units": 32}
    second = {"family": "dense", "dense_layers": 1, "dense_units": 64}
    alone = fine_tune(inputs, prep, second, tmp_path / "alone.keras", max_epochs=2, batch_size=8, seed=0)
    pair = fine_tune(inputs, prep, {"family": ENSEMBLE, "members": [first, second]}, tmp_path / "pair.keras",
                     max_epochs=2, batch_size=8, seed=0)
    alone_weights = keras.models.load_model(alone.model_path).get_weights()
    members = member_models(keras.models.load_model(pair.model_path))
    assert len(members) == 2
    assert _same(alone_weights, members[1].get_weights())
