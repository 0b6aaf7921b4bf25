"""Large training sets: hyperband's early rounds train on a stratified share of the rows.

Hyperband already halves over epochs: many architectures get a few epochs,
the best go on with more (Li et al. 2018). On a large table a few epochs
over every row still cost minutes, so a search of ten minutes compares a
handful of models. From `SearchOptions.subsample_from` training rows on, a
trial sees a share of the rows equal to its share of the epochs (a first
round of 3 of 20 epochs: 15% of the rows, at least a quarter of
`subsample_from`), drawn stratified by class and seeded by the trial; a
trial that hyperband carries on sees more. Its cost thus shrinks with the
square of its round's epochs. The share is of at most `POOL_FACTOR` x
`subsample_from` rows (100,000 by default): past that, more rows make the
fine-tune longer, not every trial, so a search of a million rows compares
about as many models as one of a hundred thousand. Trials are scored on a
stratified `subsample_from` rows of a larger validation split (the same rows
for every trial and for the ensemble choice: `validation_rows`). The fine-tune
trains the chosen model on every row (`pipelines.finetune`); the trial table
says how many rows each trial saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.sampling import stratified_rows
from pipelines.devices import DeviceSetup, fit_inputs


POOL_FACTOR = 5


def trial_rows(n_rows: int, epochs: int, max_epochs: int, subsample_from: int) -> int:
    """Rows a trial of `epochs` (of `max_epochs`) trains on; all of them below `subsample_from` (0: off)."""
    if not subsample_from or n_rows < subsample_from:
        return n_rows
    pool = min(n_rows, POOL_FACTOR * subsample_from)
    return min(n_rows, max(math.ceil(pool * epochs / max_epochs), subsample_from // 4))


def validation_rows(y_val: np.ndarray, subsample_from: int, seed: int) -> np.ndarray:
    """Indices of the validation rows that score trials: a stratified `subsample_from` of a larger split (0: all)."""
    if not subsample_from or len(y_val) <= subsample_from:
        return np.arange(len(y_val))
    return stratified_rows(y_val, subsample_from, seed)


@dataclass
class Subsampling:
    """The training rows of a search, and how each trial's share of them reaches `model.fit`."""

    x: np.ndarray
    y: np.ndarray
    max_epochs: int
    subsample_from: int
    batch_size: int
    seed: int
    devices: DeviceSetup | None = None

    @classmethod
    def plan(cls, x: np.ndarray, y: np.ndarray, options, devices: DeviceSetup | None) -> "Subsampling | None":
        """A plan for hyperband on a training set of `options.subsample_from` rows or more; else None."""
        if options.tuner != "hyperband" or trial_rows(len(x), 1, options.max_epochs, options.subsample_from) == len(x):
            return None
        return cls(x, y, options.max_epochs, options.subsample_from, options.batch_size, options.seed, devices)

    def fit_kwargs(self, trial_id: str, epochs: int) -> tuple[dict, int]:
        """`model.fit` inputs of a trial of `epochs` epochs, and how many rows they hold."""
        rows = trial_rows(len(self.x), epochs, self.max_epochs, self.subsample_from)
        seed = self.seed + int(trial_id) if trial_id.isdigit() else self.seed
        picked = stratified_rows(self.y, rows, seed)
        return fit_inputs(self.x[picked], self.y[picked], self.batch_size, self.devices, shuffle=True,
                          seed=seed), rows
