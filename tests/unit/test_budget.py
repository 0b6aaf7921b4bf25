"""One budget for the run: how it is split between search and fine-tune, and the deadline callback."""

import time

import keras
import numpy as np
import pytest

from pipelines.budget import (
    FINETUNE_SHARE_MAX,
    FINETUNE_SHARE_MIN,
    MIN_FINETUNE_FRACTION,
    RunBudget,
    StopAtDeadline,
    finetune_share,
)


def test_the_fine_tune_share_grows_with_rows_between_its_bounds():
    shares = [finetune_share(rows) for rows in (10, 1_000, 10_000, 100_000, 1_000_000, 50_000_000)]
    assert shares == sorted(shares) and shares[0] == shares[1] == FINETUNE_SHARE_MIN
    assert shares[2] == pytest.approx(0.2) and shares[-2] == shares[-1] == FINETUNE_SHARE_MAX


def test_the_fine_tune_gets_what_the_search_left_and_never_less_than_its_share():
    budget = RunBudget.for_rows(10, 100_000)
    assert budget.search_minutes == pytest.approx(7.0)
    now = 1000.0
    assert budget.finetune_deadline(420.0, now) == pytest.approx(now + 180.0)
    assert budget.finetune_deadline(590.0, now) == pytest.approx(now + MIN_FINETUNE_FRACTION * 0.3 * 600)
    assert budget.to_dict()["search_seconds"] == 590.0


def test_the_deadline_stops_training_after_the_running_batch():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((64, 2), "float32")
    stop = StopAtDeadline(time.time() - 1, every_batch=True)
    history = model.fit(x, x[:, :1], batch_size=8, epochs=50, callbacks=[stop], verbose=0)
    assert stop.stopped and len(history.history["loss"]) == 1
    at_epochs = StopAtDeadline(time.time() + 3600)
    model.fit(x, x[:, :1], batch_size=8, epochs=2, callbacks=[at_epochs], verbose=0)
    assert not at_epochs.stopped
