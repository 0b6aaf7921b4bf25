"""One budget for the run: how it is split between search and fine-tune, and the deadline callback."""

import time

import keras
import numpy as np
import pytest

from pipelines.budget import (
    CALIBRATION_ROW_FACTOR,
    FINETUNE_SHARE_MAX,
    FINISH_MAX_SHARE,
    FINISH_MODEL_ALLOWANCE,
    FINISH_SECONDS,
    FeatureTimes,
    FinishCost,
    FINETUNE_SHARE_MIN,
    MIN_FINETUNE_FRACTION,
    MIN_TRAINING_FRACTION,
    PREPARE_ALLOWANCE,
    PredictBatchTimes,
    RunBudget,
    StopAtDeadline,
    finetune_share,
    finish_allowance,
    finish_reserve,
)
from pipelines.config import ExportOptions
from pipelines.export.calibration import CALIBRATION_SECONDS, MIN_CALIBRATION_SAMPLES
from pipelines.export.tflite import TFLITE_LATENCY_SECONDS


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


def test_a_heavy_models_finish_is_taken_from_the_fine_tune_a_light_ones_is_not():
    """The chosen model's finish, estimated from its evaluation, past what the reserve holds moves the fine-tune's
    deadline."""
    light, heavy = RunBudget.for_rows(1, 100), RunBudget.for_rows(1, 100)
    finish = FinishCost.of(100, ExportOptions(), samples=80)
    assert (finish.variants, finish.calibrations) == (4, 1)
    now = 1000.0
    assert light.expect_finish(finish, pass_seconds=3.0, row_seconds=0.001) == 0.0, "loading is most of it"
    assert light.finetune_deadline(30.0, now) == pytest.approx(now + 45.0 - 30.0)
    assert "gave up" not in light.describe() and "ended" not in light.describe()
    # ACSF1's MiniRocket ensemble: 7 s to load and evaluate 100 series, 63 ms a series once traced
    excess = heavy.expect_finish(finish, pass_seconds=7.0, row_seconds=0.063)
    sample = CALIBRATION_ROW_FACTOR * 0.063
    expected = 7.0 + 4 * (6.3 + TFLITE_LATENCY_SECONDS) + max(MIN_CALIBRATION_SAMPLES * sample, CALIBRATION_SECONDS)
    assert heavy.finish_estimate == pytest.approx(expected, abs=0.05)
    assert excess > 0 and excess == pytest.approx(expected - FINISH_MODEL_ALLOWANCE, abs=0.05)
    deadline = heavy.finetune_deadline(30.0, now)
    assert deadline == pytest.approx(now + 15.0 - excess) and deadline < now, "no time left"
    assert heavy.finetune_giveup == excess
    assert f"expected to take {excess:.0f} s more than the reserve holds (its evaluation took 7.0 s): the " \
        f"fine-tune gave up {excess:.0f} s" in heavy.describe()
    heavy.search_cut = excess - 5.0
    assert heavy.finetune_giveup == pytest.approx(5.0), "the search's early end paid the rest"
    assert heavy.finetune_deadline(30.0, now) == pytest.approx(now + 15.0 - 5.0)
    assert heavy.to_dict()["finish_excess"] == excess and heavy.to_dict()["pass_seconds"] == 7.0
    heavy.refit_needed = False  # `pipelines.finetune.fitted_by_search`: the fine-tune gave nothing up
    assert "(its evaluation took 7.0 s): it needed no fine-tune, fitted on every row by the search" in \
        heavy.describe() and "gave up" not in heavy.describe()


def test_a_short_budgets_reserve_holds_as_much_less_of_the_models_finish():
    """The reserve's model-dependent part shrinks with the reserve: at 1 minute (15 s) it holds 10 s, not 30."""
    assert finish_allowance(FINISH_SECONDS) == FINISH_MODEL_ALLOWANCE == finish_allowance(10 * FINISH_SECONDS)
    one_minute = RunBudget.for_rows(1, 100)
    assert finish_allowance(one_minute.finish_reserve) == pytest.approx(FINISH_MODEL_ALLOWANCE / 3)
    long, short = (FinishCost.of(100, ExportOptions(), 80, reserve=r) for r in (FINISH_SECONDS, 15.0))
    assert long.excess(0.01) == 0.0 and short.excess(0.01) > 0, "a 10 ms row: about 17 s of finish"
    assert short.excess(0.07) - long.excess(0.07) == pytest.approx(FINISH_MODEL_ALLOWANCE * 2 / 3)
    assert RunBudget.for_rows(0.25, 100).expect_finish(
        FinishCost.of(6, ExportOptions(), 6, reserve=finish_reserve(0.25)), 0.3, 0.0005) == 0.0, \
        "a 15-second test run's six images: nothing taken"


def test_a_rows_time_is_its_full_batches_after_the_first():
    """The first batch traces the predict function and a short last batch traces it again: neither is a row's
    time."""
    times = PredictBatchTimes()
    times.seconds = [2.0, 0.32, 0.64, 0.5]  # 100 rows in batches of 32: traced, two warm, a short one retraced
    assert times.row_seconds(100, 32) == pytest.approx(0.96 / 64)
    assert times.row_seconds(40, 32) is None, "one full batch, the traced one"
    assert times.row_seconds(8, 8, skip_first=False) == pytest.approx(2.0 / 8)


def test_the_search_ends_earlier_by_what_a_trials_finish_would_take_past_the_reserve():
    finish = FinishCost(rows=100, variants=4)
    assert finish.excess(row_seconds=0.01) == 0.0, "within the reserve"
    at = 0.07
    heavy = 100 * at + 4 * (100 * at + TFLITE_LATENCY_SECONDS)
    assert finish.excess(at) == pytest.approx(heavy - FINISH_MODEL_ALLOWANCE)
    calibrated = FinishCost(rows=100, variants=4, calibrations=1, samples=80)
    assert calibrated.excess(at) == pytest.approx(finish.excess(at) + max(
        CALIBRATION_SECONDS, MIN_CALIBRATION_SAMPLES * CALIBRATION_ROW_FACTOR * at)), "20 samples or 10 s"


def test_each_family_counts_at_its_fastest_trial_and_the_heaviest_family_sets_the_cut():
    """A trial timed beside other work reads slow: a later, faster trial of its family gives the time back."""
    finish = FinishCost(rows=100, variants=4)
    times = FeatureTimes(finish)
    assert times.search_cut == 0.0, "no trial timed yet"
    times.note("rocket", 0.25)  # ArrowHead's first MiniRocket trial beside the server's start
    assert times.search_cut == pytest.approx(finish.excess(0.25))
    times.note("rocket", 0.07)
    assert times.search_cut == pytest.approx(finish.excess(0.07)), "its fastest trial"
    times.note("transfer", 0.12)
    times.note("rocket", 0.2)
    assert times.search_cut == pytest.approx(finish.excess(0.12)), "the heaviest family, each at its fastest"
    assert finish.excess(0.12) > finish.excess(0.07)
    assert FinishCost(rows=100, variants=4, calibrations=1, samples=200).excess(0.001) == 0.0, \
        "a light model calibrates its 200 samples in the reserve"
    budget = RunBudget.for_rows(1, 100)
    budget.search_cut = 20.5
    assert "the search ended 20 s early" in budget.describe()


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


def test_a_fine_tune_the_finish_leaves_no_time_is_not_started_and_the_report_says_why():
    from pipelines.train import finish_overrun

    budget = RunBudget.for_rows(1, 100)
    finish = FinishCost.of(100, ExportOptions(quantize=["float32"]), samples=80)
    budget.expect_finish(finish, pass_seconds=2.0, row_seconds=0.01)
    assert finish_overrun(budget, budget.finetune_deadline(30.0)) is None, "a light model's finish: nothing taken"
    budget.expect_finish(finish, pass_seconds=20.0, row_seconds=0.2)
    assert budget.finish_excess == pytest.approx(20.0 + 20.0 + TFLITE_LATENCY_SECONDS - FINISH_MODEL_ALLOWANCE)
    assert finish_overrun(budget, budget.finetune_deadline(5.0)) is None, "40 s left, 11.5 taken"
    assert finish_overrun(budget, budget.finetune_deadline(40.0)) == (
        "the chosen model's evaluation and export were expected to take 12 s more than the budget's reserve for them "
        "(its evaluation took 20.0 s): the rest was the fine-tune's time and more")
    budget.search_cut = 4.0
    assert finish_overrun(budget, budget.finetune_deadline(40.0)) == (
        "the chosen model's evaluation and export were expected to take 12 s more than the budget's reserve for them "
        "(its evaluation took 20.0 s), 4 s of it by the search's early end: the rest was the fine-tune's time and more")
    budget.search_cut = budget.finish_excess
    assert finish_overrun(budget, budget.finetune_deadline(40.0)) is None, "the search's early end paid all of it"


def test_a_refit_that_would_overrun_anyway_is_named_before_the_finish():
    """A fine-tune not started for two reasons is told by the one that holds without the other."""
    from pipelines.train import fine_tune_overrun, finish_overrun

    kernel = {"family": "kernel"}
    budget = RunBudget.for_rows(1, 100)
    budget.expect_finish(FinishCost.of(100, ExportOptions(quantize=["float32"]), samples=80), 20.0, 0.2)
    deadline = budget.finetune_deadline(40.0)
    assert "refitting it on train+val was expected to take 682 s" in fine_tune_overrun(budget, deadline, [kernel],
                                                                                       [682.0])
    dense = {"family": "dense"}
    assert fine_tune_overrun(budget, deadline, [dense], [1.0]) == finish_overrun(budget, deadline), \
        "a quick refit by epochs: the finish's estimate is why"
    light = RunBudget.for_rows(1, 100)
    assert fine_tune_overrun(light, light.finetune_deadline(30.0), [kernel], [1.0]) is None


def test_a_refit_solved_in_one_go_in_a_few_seconds_starts_whatever_the_finish_asks():
    """The fine-tune the finish's estimate would give up starts when every member is solved in one go without
    boosting (or ships as its bag), within `CHEAP_REFIT_SECONDS`; the budget line says it ran."""
    from pipelines.finetune import CHEAP_REFIT_SECONDS
    from pipelines.train import fine_tune_overrun, finish_overrun

    def budget_and_deadline():
        budget = RunBudget.for_rows(1, 36)
        budget.expect_finish(FinishCost.of(175, ExportOptions(quantize=["float32"]), samples=36), 20.0, 0.2)
        return budget, budget.finetune_deadline(40.0)

    rocket, boosted = {"family": "rocket"}, {"family": "trees", "trees_kind": "boosted"}
    budget, deadline = budget_and_deadline()
    assert finish_overrun(budget, deadline), "the finish's estimate asks for all of the fine-tune's time"
    assert fine_tune_overrun(budget, deadline, [rocket] * 3, [0.4] * 3, [None] * 3) is None
    assert budget.cheap_refit and "its refit, solved in one go in a few seconds, ran" in budget.describe()
    for members, expected, bags in [([rocket] * 3, [CHEAP_REFIT_SECONDS / 2] * 3, [None] * 3),  # too long
                                    ([boosted], [0.5], [None]),  # boosting stops unfinished at a deadline
                                    ([{"family": "dense"}], [0.5], [None])]:  # trained by epochs
        budget, deadline = budget_and_deadline()
        assert fine_tune_overrun(budget, deadline, members, expected, bags) == finish_overrun(budget, deadline)
        assert not budget.cheap_refit and "ran past" not in budget.describe()
    budget, deadline = budget_and_deadline()
    assert fine_tune_overrun(budget, deadline, [{"family": "dense"}, rocket], [0.0, 1.0], ["bag", None]) is None, \
        "a member shipping as its bag of fold models is only loaded"
