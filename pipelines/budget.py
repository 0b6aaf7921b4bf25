"""One budget for the run: `--budget-minutes` bounds the search and the fine-tune together.

The fine-tune's share grows with the rows it trains on: `FINETUNE_SHARE_MIN`
(10%) up to 1,000 rows, 10 points more per tenfold, `FINETUNE_SHARE_MAX`
(30%) from 100,000 rows. On small data the search deserves nearly all the
time; on large data one pass of the chosen model over every row is a large
part of it (past 100,000 rows the search's trials see a capped share of the
rows: `pipelines.search.subsample`). The search stops at its share (a running
trial ends after its running batch; a trial solved in one go is not started
when it would not end in time); the fine-tune stops at the run's deadline,
after the batch running then, keeping the best weights so far. If the search
ran over (its last trial, the ensemble choice), the fine-tune gives up that
time, down to `MIN_FINETUNE_FRACTION` of its share, and the report shows the
overrun. Evaluation and export are paid from the budget too: `finish_reserve`
seconds (`FINISH_SECONDS`, what they took for small-data models on 2 CPU
cores, at most `FINISH_MAX_SHARE` of a short budget) are set aside before the
split, so a run ends near `--budget-minutes` after its data is loaded and
validated; the report and `run.json` say how the budget was spent, and the
report what each step took. The reserve holds the part of the finish that
depends on the model for a small-data one (`FINISH_MODEL_ALLOWANCE` of a full
reserve, as much less of a short one: `finish_allowance`; its evaluation,
each TFLite variant's check, latency and calibration); a heavier model's is
estimated (`FinishCost`, from a row's time in a batch: `PredictBatchTimes`),
and what it needs past the allowance is taken from the search and then the
fine-tune, which does not start when that is all of its time (unless its
refit is solved in one go in a few seconds: `pipelines.finetune.cheap_refit`).
The search's part comes first: a trial whose features are
computed once for every row (MiniRocket's, a frozen base's) times them, and
the search ends as much earlier as that model's finish would need past the
allowance (`FeatureTimes.search_cut`); the search's chosen model is evaluated on
the test split before the fine-tune, timed, and the fine-tune gives up what
its estimate asks beyond the search's cut (`finetune_giveup`). On small data
the search's last seconds are worth less than the fine-tune, which refits on
every row: OSULeaf's MiniRocket scored 0.9380 as the search trained it on
folds and 0.9587 refitted. A MiniRocket ensemble over ACSF1's 1,460-step
series took 7 s to evaluate on 100 series, and its 1-minute run 163 s, 77 of
them evaluating and exporting against a 15-second reserve. Loading and
validating the data are outside the budget up to `PREPARE_ALLOWANCE` seconds
(what they take on small data: the bound of budget x 1.1 + 60 s holds them
with the process and server start); past it, the search and fine-tune give
up the overrun (down to `MIN_TRAINING_FRACTION` of their time): a 1,504-column
table validated for 24 s, and its 1-minute run took 130 s.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import keras

from pipelines.config import ExportOptions
from pipelines.export.calibration import CALIBRATION_SECONDS, MIN_CALIBRATION_SAMPLES
from pipelines.export.tflite import TFLITE_LATENCY_SECONDS

FINETUNE_SHARE_MIN = 0.1
FINETUNE_SHARE_MAX = 0.3
MIN_FINETUNE_FRACTION = 0.5
FINISH_SECONDS = 45.0  # evaluation + export (four TFLite variants, parity checks) of a small-data model, 2 cores
FINISH_MAX_SHARE = 0.25  # of a short budget: the search and fine-tune keep the rest
# Loading, splitting and validating the data, seconds outside the budget: digits 2.5 s, ames (74 columns) 3.4 s on
# 2 cores; a 1,504-column table took 24 s.
PREPARE_ALLOWANCE = 10.0
# Seconds of the finish that depend on the model (`FinishCost.model_seconds`: the fine-tuned model's evaluation, the
# variants' checks, latencies and int8 calibration) a full finish reserve holds; a shorter one holds as much less
# (`finish_allowance`: 10 s of a 1-minute run's 15, where ArrowHead's three MiniRocket models asked for 35 s: the search
# fits such models on every row, `pipelines.finetune.fitted_by_search`, and a refit solved in one go starts whatever the
# estimate asks, `pipelines.finetune.cheap_refit`). 1-minute runs on 2 cores, the finish (evaluation and export steps)
# and its estimate: digits (a kernel and a CNN, 360 test rows) 18.3 s and 2.7 s, breast_cancer 23.2 s and 3.8 s,
# ArrowHead's MiniRocket (175 series of 251 steps) 30.7 s and 11.7 s, ACSF1's MiniRocket ensemble (100 series of 1,460
# steps) 67.7 s and 38.3 s. The rest is what every model's finish costs (files, conversions, metadata), more for a heavy
# model (ACSF1's conversions and SavedModel about 20 s): not estimated.
FINISH_MODEL_ALLOWANCE = 30.0
# One int8 calibration sample against one row of a batched test pass: the calibrating interpreter records every
# tensor's range, one sample at a time (ACSF1's MiniRocket ensemble: 0.37 s a sample, 37 ms a row of a test pass).
CALIBRATION_ROW_FACTOR = 10.0
MIN_TRAINING_FRACTION = 0.5  # of the search's and fine-tune's time, kept whatever the data's preparation took


def finish_reserve(minutes: float) -> float:
    """Seconds of a `minutes` budget set aside for evaluation and export."""
    return round(min(FINISH_SECONDS, FINISH_MAX_SHARE * minutes * 60), 1)


def finish_allowance(reserve: float) -> float:
    """Seconds of a `reserve`-second finish reserve that hold its model-dependent part: `FINISH_MODEL_ALLOWANCE` of
    `FINISH_SECONDS`, in proportion (a 1-minute budget's 15-second reserve holds 10 of them)."""
    return round(FINISH_MODEL_ALLOWANCE * min(reserve, FINISH_SECONDS) / FINISH_SECONDS, 1)


def finetune_share(rows: int) -> float:
    """The fine-tune's share of the run budget for `rows` training rows."""
    share = FINETUNE_SHARE_MIN + 0.1 * math.log10(max(rows, 1) / 1000)
    return round(min(max(share, FINETUNE_SHARE_MIN), FINETUNE_SHARE_MAX), 3)


@dataclass(frozen=True)
class FinishCost:
    """What the finish asks of the model the search chooses, beyond what every model's costs: the fine-tuned model's
    evaluation on the `rows` test rows, and for each of `variants` TFLite variants a check on them and a latency of
    up to `latency_runs` batch-1 calls; `calibrations` int8 calibrations on `samples` samples (at least
    `MIN_CALIBRATION_SAMPLES` of them, or as many as `CALIBRATION_SECONDS` allow). The finish reserve holds
    `allowance` seconds of them (`finish_allowance`)."""

    rows: int
    variants: int
    calibrations: int = 0
    samples: int = 0
    latency_runs: int = 100
    allowance: float = FINISH_MODEL_ALLOWANCE

    @classmethod
    def of(cls, test_rows: int, options: ExportOptions, samples: int,
           reserve: float = FINISH_SECONDS) -> "FinishCost":
        """What the finish of `options`' variants asks over `test_rows` rows, calibrating on `samples` samples, and
        what a `reserve`-second finish reserve holds of it."""
        return cls(test_rows, options.checked_variants, options.calibrated_variants, samples, options.latency_runs,
                   finish_allowance(reserve))

    def model_seconds(self, row_seconds: float, evaluation_seconds: float | None = None) -> float:
        """The finish's model-dependent seconds for a model that takes `row_seconds` a row in a batch, and
        `evaluation_seconds` to load and evaluate (default: its rows' share alone)."""
        rows = self.rows * row_seconds
        check = rows + min(TFLITE_LATENCY_SECONDS, self.latency_runs * row_seconds)
        sample = CALIBRATION_ROW_FACTOR * row_seconds
        calibration = min(self.samples * sample, max(MIN_CALIBRATION_SAMPLES * sample, CALIBRATION_SECONDS))
        evaluation = rows if evaluation_seconds is None else evaluation_seconds
        return evaluation + self.variants * check + self.calibrations * calibration

    def excess(self, row_seconds: float, evaluation_seconds: float | None = None) -> float:
        """Seconds those take past `allowance`, what the finish reserve holds for them."""
        return max(0.0, self.model_seconds(row_seconds, evaluation_seconds) - self.allowance)


@dataclass
class FeatureTimes:
    """The row times of the search's trials that time their features (MiniRocket's, a frozen base's: computed once
    for every row), and the seconds the search ends earlier for them (`search_cut`).

    A family counts at its fastest trial: a trial timed beside other work reads slow, never fast. A fresh
    process's first trial shares the cores with Prefect's server starting: ArrowHead's first MiniRocket trial read
    25 ms a row in one 1-minute run (a 26-second cut) and 8-9 ms in two others (3-4 s)."""

    finish: FinishCost
    least: dict[str, float] = field(default_factory=dict)

    def note(self, family: str, row_seconds: float) -> None:
        """A trial of `family` took `row_seconds` a row."""
        self.least[family] = min(row_seconds, self.least.get(family, math.inf))

    @property
    def search_cut(self) -> float:
        """Seconds the search ends earlier: what the heaviest family's model would need past the finish's allowance."""
        return max((self.finish.excess(row) for row in self.least.values()), default=0.0)


@dataclass
class RunBudget:
    """How a run's minutes are split, and (once spent) how they were used.

    Attributes:
        minutes: the whole budget; rows: the rows the fine-tune trains on; share: the fine-tune's share of what
            the finish reserve leaves; finish_reserve: seconds set aside for evaluation and export.
        prepare_overrun: seconds the data's loading and validation took past `PREPARE_ALLOWANCE`, taken from the
            search and fine-tune.
        search_cut: seconds the search ended earlier for its trials' expected finish (`FeatureTimes.search_cut`).
        pass_seconds: what the search's chosen model's evaluation on the test split took (loading it included).
        finish_estimate: the finish's seconds that depend on that model (`FinishCost.model_seconds`);
            finish_excess: what they are expected to take past the reserve's allowance, taken from the search
            (`search_cut`) and the fine-tune (the rest: `finetune_giveup`); cheap_refit: the fine-tune ran though
            the estimate asked for all of its time, its refit being solved in one go in a few seconds
            (`pipelines.finetune.cheap_refit`); refit_needed: False where the search's model was the refit's
            already (`pipelines.finetune.fitted_by_search`), so the fine-tune gave up nothing.
        search_seconds, finetune_seconds: the time each took; finetune_stopped: the fine-tune hit the deadline.
    """

    minutes: float
    rows: int
    share: float
    search_seconds: float | None = None
    finetune_seconds: float | None = None
    finetune_stopped: bool = False
    finish_reserve: float = 0.0
    prepare_overrun: float = 0.0
    search_cut: float = 0.0
    pass_seconds: float | None = None
    finish_estimate: float | None = None
    finish_excess: float = 0.0
    cheap_refit: bool = False
    refit_needed: bool = True

    @classmethod
    def for_rows(cls, minutes: float, rows: int, prepared_seconds: float = 0.0) -> "RunBudget":
        """The budget of a run on `rows` rows whose data took `prepared_seconds` to load and validate."""
        return cls(minutes, rows, finetune_share(rows), finish_reserve=finish_reserve(minutes),
                   prepare_overrun=round(max(0.0, prepared_seconds - PREPARE_ALLOWANCE), 1))

    @property
    def training_minutes(self) -> float:
        """What the search and the fine-tune share."""
        whole = self.minutes - self.finish_reserve / 60
        return max(whole - self.prepare_overrun / 60, MIN_TRAINING_FRACTION * whole)

    @property
    def search_minutes(self) -> float:
        return self.training_minutes * (1 - self.share)

    def expect_finish(self, finish: FinishCost, pass_seconds: float, row_seconds: float) -> float:
        """Note that the chosen model's evaluation took `pass_seconds` (loading it, `row_seconds` a row); returns the
        seconds its finish is expected to take past the reserve's allowance for it (`finish_excess`)."""
        self.pass_seconds = round(pass_seconds, 2)
        self.finish_estimate = round(finish.model_seconds(row_seconds, evaluation_seconds=pass_seconds), 1)
        self.finish_excess = round(finish.excess(row_seconds, evaluation_seconds=pass_seconds), 1)
        return self.finish_excess

    def finetune_deadline(self, search_seconds: float, now: float | None = None) -> float:
        """When the fine-tune must stop: where the finish reserve begins, or later if the search left it too little;
        earlier by the chosen model's `finetune_giveup` (which may leave it no time: the deadline is then past)."""
        self.search_seconds = search_seconds
        left = self.training_minutes * 60 - search_seconds
        least = MIN_FINETUNE_FRACTION * self.share * self.training_minutes * 60
        return (now or time.time()) + max(left, least) - self.finetune_giveup

    @property
    def finetune_giveup(self) -> float:
        """Seconds of the fine-tune given up to the chosen model's finish: its excess the search's cut left."""
        return max(0.0, self.finish_excess - self.search_cut)

    def describe(self) -> str:
        text = (f"budget {self.minutes:g} min: search {self.search_minutes:.1f} min, fine-tune "
                f"{self.training_minutes - self.search_minutes:.1f} min ({self.share:.0%} for {self.rows:,} rows), "
                f"evaluation and export {self.finish_reserve:.0f} s")
        if self.prepare_overrun:
            text += (f" (the data's loading and validation took {self.prepare_overrun:.0f} s past their "
                     f"{PREPARE_ALLOWANCE:.0f}-second allowance: taken from the search and fine-tune)")
        if self.search_cut:
            text += (f"; the search ended {self.search_cut:.0f} s early: its trials' features said their evaluation "
                     "and export would take longer than the reserve holds")
        if self.finetune_giveup:
            text += (f"; the chosen model's evaluation and export were expected to take {self.finish_excess:.0f} s "
                     f"more than the reserve holds (its evaluation took {self.pass_seconds:.1f} s)")
            text += (f": the fine-tune gave up {self.finetune_giveup:.0f} s" if self.refit_needed else
                     ": it needed no fine-tune, fitted on every row by the search")
            if self.cheap_refit:
                text += ", and its refit, solved in one go in a few seconds, ran past its deadline"
        if self.search_seconds is not None and self.finetune_seconds is not None:
            text += (f"; used: search {self.search_seconds / 60:.1f} min, fine-tune {self.finetune_seconds / 60:.1f} "
                     f"min{' (stopped at the deadline, best weights kept)' if self.finetune_stopped else ''}")
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "search_minutes": round(self.search_minutes, 3)}


class PredictBatchTimes(keras.callbacks.Callback):
    """Seconds each batch of a `predict` call took, so a model's time a row can leave out what every call costs
    (its data adapter, a first batch's trace, a short last batch's retrace): `row_seconds`."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_predict_batch_begin(self, batch, logs=None):
        self._started = time.monotonic()

    def on_predict_batch_end(self, batch, logs=None):
        self.seconds.append(time.monotonic() - self._started)

    def row_seconds(self, rows: int, batch_size: int, skip_first: bool = True) -> float | None:
        """Seconds a row of the full batches timed (after the first, which traced, when `skip_first`) over `rows`
        rows in batches of `batch_size`; None when there is no such batch."""
        full = [s for i, s in enumerate(self.seconds[:rows // batch_size]) if i or not skip_first]
        return sum(full) / (len(full) * batch_size) if full else None


class StopAtDeadline(keras.callbacks.Callback):
    """Stops training past `deadline` (time.time()): at the next epoch end, or `every_batch` at the next batch end."""

    def __init__(self, deadline: float, every_batch: bool = False):
        super().__init__()
        self.deadline, self.every_batch, self.stopped = deadline, every_batch, False

    def _check(self):
        if time.time() >= self.deadline:
            self.model.stop_training = self.stopped = True

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_batch:
            self._check()
