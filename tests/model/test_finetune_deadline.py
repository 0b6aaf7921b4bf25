"""The run's budget bounds the fine-tune: it stops at its deadline with the best weights so far."""

import time

import keras
import numpy as np

from pipelines.finetune import fine_tune
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs


def test_fine_tuning_stops_at_its_deadline_and_saves_a_usable_model(table_csv, tmp_path):
    splits = split_dataset(load_path(table_csv, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    values = {"family": "dense", "dense_layers": 1}
    fine_tune(inputs, prep, values, tmp_path / "warmup.keras", max_epochs=1, batch_size=8, seed=0)  # compile once
    started = time.monotonic()
    result = fine_tune(inputs, prep, values, tmp_path / "m.keras", max_epochs=100_000, batch_size=8, seed=0,
                       deadline=time.time() + 3)
    assert result.stopped_at_deadline and 1 <= result.epochs < 100_000
    assert time.monotonic() - started < 30, "stopped near the deadline, not after 100,000 epochs"
    model = keras.models.load_model(result.model_path)
    assert np.isfinite(model.predict(inputs.x_test, verbose=0)).all()
    unbounded = fine_tune(inputs, prep, values, tmp_path / "n.keras", max_epochs=2, batch_size=8, seed=0)
    assert not unbounded.stopped_at_deadline and unbounded.epochs == 2
