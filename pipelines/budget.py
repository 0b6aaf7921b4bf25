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
report what each step took. Loading and validating the data are outside the
budget up to `PREPARE_ALLOWANCE` seconds (what they take on small data: the
bound of budget x 1.1 + 60 s holds them with the process and server start);
past it, the search and fine-tune give up the overrun (down to
`MIN_TRAINING_FRACTION` of their time): a 1,504-column table validated for
24 s, and its 1-minute run took 130 s.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import keras

FINETUNE_SHARE_MIN = 0.1
FINETUNE_SHARE_MAX = 0.3
MIN_FINETUNE_FRACTION = 0.5
FINISH_SECONDS = 45.0  # evaluation + export (four TFLite variants, parity checks) of a small-data model, 2 cores
FINISH_MAX_SHARE = 0.25  # of a short budget: the search and fine-tune keep the rest
# Loading, splitting and validating the data, seconds outside the budget: digits 2.5 s, ames (74 columns) 3.4 s on
# 2 cores; a 1,504-column table took 24 s.
PREPARE_ALLOWANCE = 10.0
MIN_TRAINING_FRACTION = 0.5  # of the search's and fine-tune's time, kept whatever the data's preparation took


def finish_reserve(minutes: float) -> float:
    """Seconds of a `minutes` budget set aside for evaluation and export."""
    return round(min(FINISH_SECONDS, FINISH_MAX_SHARE * minutes * 60), 1)


def finetune_share(rows: int) -> float:
    """The fine-tune's share of the run budget for `rows` training rows."""
    share = FINETUNE_SHARE_MIN + 0.1 * math.log10(max(rows, 1) / 1000)
    return round(min(max(share, FINETUNE_SHARE_MIN), FINETUNE_SHARE_MAX), 3)


@dataclass
class RunBudget:
    """How a run's minutes are split, and (once spent) how they were used.

    Attributes:
        minutes: the whole budget; rows: the rows the fine-tune trains on; share: the fine-tune's share of what
            the finish reserve leaves; finish_reserve: seconds set aside for evaluation and export.
        prepare_overrun: seconds the data's loading and validation took past `PREPARE_ALLOWANCE`, taken from the
            search and fine-tune.
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

    def finetune_deadline(self, search_seconds: float, now: float | None = None) -> float:
        """When the fine-tune must stop: where the finish reserve begins, or later if the search left it too little."""
        self.search_seconds = search_seconds
        left = self.training_minutes * 60 - search_seconds
        least = MIN_FINETUNE_FRACTION * self.share * self.training_minutes * 60
        return (now or time.time()) + max(left, least)

    def describe(self) -> str:
        text = (f"budget {self.minutes:g} min: search {self.search_minutes:.1f} min, fine-tune "
                f"{self.training_minutes - self.search_minutes:.1f} min ({self.share:.0%} for {self.rows:,} rows), "
                f"evaluation and export {self.finish_reserve:.0f} s")
        if self.prepare_overrun:
            text += (f" (the data's loading and validation took {self.prepare_overrun:.0f} s past their "
                     f"{PREPARE_ALLOWANCE:.0f}-second allowance: taken from the search and fine-tune)")
        if self.search_seconds is not None and self.finetune_seconds is not None:
            text += (f"; used: search {self.search_seconds / 60:.1f} min, fine-tune {self.finetune_seconds / 60:.1f} "
                     f"min{' (stopped at the deadline, best weights kept)' if self.finetune_stopped else ''}")
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "search_minutes": round(self.search_minutes, 3)}


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
