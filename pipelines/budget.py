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
overrun. Only the fixed steps (load, validation, evaluation, export) come on
top; the report and `run.json` say how the budget was spent.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import keras

FINETUNE_SHARE_MIN = 0.1
FINETUNE_SHARE_MAX = 0.3
MIN_FINETUNE_FRACTION = 0.5


def finetune_share(rows: int) -> float:
    """The fine-tune's share of the run budget for `rows` training rows."""
    share = FINETUNE_SHARE_MIN + 0.1 * math.log10(max(rows, 1) / 1000)
    return round(min(max(share, FINETUNE_SHARE_MIN), FINETUNE_SHARE_MAX), 3)


@dataclass
class RunBudget:
    """How a run's minutes are split, and (once spent) how they were used.

    Attributes:
        minutes: the whole budget; rows: the rows the fine-tune trains on; share: the fine-tune's share.
        search_seconds, finetune_seconds: the time each took; finetune_stopped: the fine-tune hit the deadline.
    """

    minutes: float
    rows: int
    share: float
    search_seconds: float | None = None
    finetune_seconds: float | None = None
    finetune_stopped: bool = False

    @classmethod
    def for_rows(cls, minutes: float, rows: int) -> "RunBudget":
        return cls(minutes, rows, finetune_share(rows))

    @property
    def search_minutes(self) -> float:
        return self.minutes * (1 - self.share)

    def finetune_deadline(self, search_seconds: float, now: float | None = None) -> float:
        """When the fine-tune must stop: at the end of the budget, or later if the search left it too little."""
        self.search_seconds = search_seconds
        left = self.minutes * 60 - search_seconds
        least = MIN_FINETUNE_FRACTION * self.share * self.minutes * 60
        return (now or time.time()) + max(left, least)

    def describe(self) -> str:
        text = (f"budget {self.minutes:g} min: search {self.search_minutes:.1f} min, fine-tune "
                f"{self.minutes - self.search_minutes:.1f} min ({self.share:.0%} for {self.rows:,} rows)")
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
