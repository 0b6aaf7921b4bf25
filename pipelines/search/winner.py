"""Which single trial is chosen: the portfolio's best, unless a later trial beats it clearly on the same rows.

The best of many trials scored on a few hundred held-out rows is
optimistic: the more trials, the more likely the top score is partly luck
(the winner's curse). ItalyPowerDemand's 67 rows at 10 minutes: an LSTM bag
chosen out of 31 trials, first out-of-fold, scored 0.924 on the test split,
where the MiniRocket trial of the portfolio scores 0.968. The portfolio
(`models.portfolio`) is tried first and holds what is known to be strong, so
its best trial is the prior; a trial sampled later replaces it only when its
lead on the same held-out rows is clear: the per-row differences in correct
labels (rows weighted by the inverse of their class's size when the
objective is macro-F1), more than `min_paired_z` paired standard errors.
Pairing counts only the rows the two disagree on, so a lead of a few rows out
of a few hundred counts when the trials otherwise agree, and does not when
they disagree on many rows both ways. This is the one-standard-error rule of
Breiman et al. (1984), with the portfolio order as the simpler model, and
Bonferroni-corrected for the number of sampled trials: the best of 60 trials
no better than the incumbent leads it by about 2.3 standard errors by luck
alone, which a fixed one-SE bar let through (ItalyPowerDemand again, 68
trials at 10 minutes: an LSTM shipped at 0.954).

Within the portfolio, a solved trial (`models.closed_form`: logistic
regression, kernel ridge, MiniRocket's head, trees) is the prior over one
trained by epochs. A trained trial's held-out score is optimistic: each fold
model goes back to its epoch of lowest loss on the very rows that then score
it (`pipelines.search.towers`): 2 points of out-of-fold accuracy for the
ResNet on ItalyPowerDemand's 67 series (`bench/results/fold_epochs.md`). In a
kept search there, the portfolio's ResNet and MLP tied MiniRocket, logistic
regression and kernel ridge at 65 of 67 rows and ranked first on their lower
(optimistic) log loss; at 10 minutes a portfolio CNN shipped and scored 0.954
on test, where the solved three score 0.964-0.973. So a trained portfolio
trial replaces the best solved one only with a clear lead, counted as one
more challenger.

Under holdout (a validation split of `SMALL_VALIDATION_ROWS` or more) the
rows are the scored validation rows, and the same curse holds: on
wa_churn's 845 (5,634 training rows, hyperband's rounds, 54 trials in 5
minutes) the 15 best-scored trials were all MLPs at 0.810-0.818 held out
and 0.775-0.799 on the test split, where the portfolio's kernel ridge
scored 0.807 held out and 0.806 on test. A trial trained in hyperband's
rounds keeps no held-out probabilities of its own (its last weights are not
its best epoch's), so they come from its checkpoint
(`pipelines.search.run`); until then the rule could not weigh such a trial
and shipped the best-scored one whatever its lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np

ONE_CHALLENGER_Z = 1.0  # paired standard errors one sampled trial must lead the portfolio's best by


def min_paired_z(challengers: int) -> float:
    """The lead, in paired standard errors, the best of `challengers` sampled trials must show over the incumbent:
    `ONE_CHALLENGER_Z` for one, and for more the same one-sided tail split between them (Bonferroni)."""
    tail = 1 - NormalDist().cdf(ONE_CHALLENGER_Z)
    return NormalDist().inv_cdf(1 - tail / max(challengers, 1))


@dataclass
class Lead:
    """A challenger's mean per-row lead over an incumbent on the same held-out rows, and its standard error."""

    mean: float
    standard_error: float

    def clear(self, challengers: int = 1) -> bool:
        """Whether the lead is more than `min_paired_z(challengers)` standard errors."""
        return self.mean > 0 and self.mean > min_paired_z(challengers) * self.standard_error

    @classmethod
    def of(cls, y: np.ndarray, challenger: np.ndarray, incumbent: np.ndarray, objective: str) -> "Lead":
        weights = np.ones(len(y))
        if objective.removeprefix("val_") == "macro_f1":
            counts = np.bincount(y)
            weights = len(y) / (np.count_nonzero(counts) * counts[y])
        differences = weights * ((challenger.argmax(axis=1) == y).astype(float)
                                 - (incumbent.argmax(axis=1) == y).astype(float))
        error = differences.std(ddof=1) / np.sqrt(len(y)) if len(y) > 1 else 0.0
        return cls(float(differences.mean()), float(error))


def sampled_trials(ranked: list, portfolio: set[str]) -> int:
    """How many of the `ranked` trials were sampled after the portfolio: each raises the bar a lead must clear."""
    return sum(t.trial_id not in portfolio for t in ranked)


def choose_trial(ranked: list, portfolio: set[str], heldout: Callable[[str], np.ndarray | None], y: np.ndarray,
                 objective: str, solved: Callable[[object], bool] = lambda trial: False) -> tuple[object, str]:
    """The trial to ship out of `ranked` (completed trials, best score first) and a note for the report ("" when it
    is the best-scored one).

    The prior is the best of the `portfolio` trial ids that are `solved` (closed form: its held-out score was not
    chosen on the held-out rows), else the best of the portfolio. A trial ranked above it replaces it only when it
    leads clearly (`Lead.clear`, the bar raised for every ranked trial outside the prior: sampled, or trained by
    epochs); `heldout(trial_id)` gives a trial's held-out probabilities on the rows of `y`.
    """
    prior = [t for t in ranked if t.trial_id in portfolio]
    prior = [t for t in prior if solved(t)] or prior
    incumbent = prior[0] if prior else None
    if incumbent is None or incumbent is ranked[0] or (kept := heldout(incumbent.trial_id)) is None:
        return ranked[0], ""
    challengers = len(ranked) - len(prior)
    for challenger in ranked[:ranked.index(incumbent)]:
        probabilities = heldout(challenger.trial_id)
        if probabilities is None or Lead.of(y, probabilities, kept, objective).clear(challengers):
            return challenger, ""
    lead = Lead.of(y, heldout(ranked[0].trial_id), kept, objective)
    best, others = ("best solved trial", "challenger") if solved(incumbent) else ("best trial", "sampled trial")
    return incumbent, (f"the portfolio's {best} {incumbent.trial_id} is kept: trial {ranked[0].trial_id} "
                       f"scored higher, but its lead of {lead.mean * len(y):.1f} of {len(y)} held-out rows is within "
                       f"{min_paired_z(challengers):.2g} paired standard errors ({lead.standard_error * len(y):.1f} "
                       f"rows each), the bar for the best of {challengers} {others}{'' if challengers == 1 else 's'}")
