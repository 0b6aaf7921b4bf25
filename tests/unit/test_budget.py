"""One budget for the run: how it is split between search and fine-tune, and the deadline callback."""

import time

import keras
import numpy as np
import pytest

from pipelines.budget import (
    FINETUNE_SHARE_MAX,
    FINISH_MAX_SHARE,
    FINISH_SECONDS,
    FINETUNE_SHARE_MIN,
    MIN_FINETUNE_FRACTION,
    MIN_TRAINING_FRACTION,
    PREPARE_ALLOWANCE,
    RunBudget,
    StopAtDeadline,
    finetune_share,
    finish_reserve,
)


def test_the_fine_tune_share_grows_with_rows_between_its_bounds():
    shares = [finetune_share(rows) for rows in (10, 1_000, 10_000, 100_000, 1_000_000, 50_000_000)]
    assert shares == sorted(shares) and shares[0] == shares[1] == FINETUNE_SHARE_MIN
    assert shares[2] == pytest.approx(0.2) and shares[-2] == shares[-1] == FINETUNE_SHARE_MAX


def test_the_fine_tune_gets_what_the_search_left_and_never_less_than_its_share():
    budget = RunBudget.for_rows(10, 100_000)
    training = 600 - FINISH_SECONDS
    assert budget.finish_reserve == FINISH_SECONDS and budget.search_minutes * 60 == pytest.approx(0.7 * training)
    now = 1000.0
    assert budget.finetune_deadline(0.7 * training, now) == pytest.approx(now + 0.3 * training)
    assert budget.finetune_deadline(590.0, now) == pytest.approx(now + MIN_FINETUNE_FRACTION * 0.3 * training)
    assert budget.to_dict()["search_seconds"] == 590.0


def test_evaluation_and_export_are_paid_from_the_budget_a_short_one_keeps_most_for_training():
    assert finish_reserve(10) == FINISH_SECONDS
    assert finish_reserve(1) == pytest.approx(FINISH_MAX_SHARE * 60)
    short = RunBudget.for_rows(1, 500)
    assert short.training_minutes == pytest.approx(1 - FINISH_MAX_SHARE)
    assert "evaluation and export 15 s" in short.describe()


def test_loading_and_validation_past_their_allowance_are_taken_from_the_training_time():
    """A 1,504-column table validated for 24 s of a 1-minute run: the search and fine-tune give up what was over."""
    quick = RunBudget.for_rows(1, 6_552, prepared_seconds=PREPARE_ALLOWANCE)
    assert quick.prepare_overrun == 0 and quick.training_minutes == pytest.approx(1 - FINISH_MAX_SHARE)
    assert "allowance" not in quick.describe()
    wide = RunBudget.for_rows(1, 6_552, prepared_seconds=PREPARE_ALLOWANCE + 14.0)
    assert wide.prepare_overrun == 14.0
    assert wide.training_minutes * 60 == pytest.approx(45.0 - 14.0)
    assert wide.search_minutes < quick.search_minutes
    assert "took 14 s past their 10-second allowance" in wide.describe()
    slow = RunBudget.for_rows(1, 6_552, prepared_seconds=600.0)
    assert slow.training_minutes * 60 == pytest.approx(MIN_TRAINING_FRACTION * 45.0), "half the training time kept"
    assert RunBudget(**{k: v for k, v in wide.to_dict().items() if k != "search_minutes"}) == wide, \
        "run.json's budget holds the overrun"


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
