"""Ensemble selection: which of the best distinct trials to average, judged on held-out rows.

Greedy forward selection (Caruana et al. 2004, without replacement): start
from the best trial, add the trial that most improves the averaged
probabilities' selection score, stop when nothing improves it or at
`ensemble_size`. The held-out rows are the out-of-fold predictions under
cross-validation, else the validation split. An ensemble is kept only when
it beats the best single trial by more than one held-out row's worth
(`MIN_GAIN_ROWS`): on 216 validation rows, one row is 0.005 of accuracy, and
an ensemble "better" by one row is as likely noise as not (digits: chosen at
1.000 against 0.995 held out, it scored 0.983 on the test split where the
single trial scored 0.989). Under a mobile budget the members' int8 sizes and
latencies are added up and must fit.

On a small table the portfolio's trials are averaged instead, unselected
(`average_portfolio`): the logistic regression, kernel ridge, forest,
boosted trees and MLP that `models.portfolio` tries first, each at its
known-good values. On a few hundred rows their out-of-fold scores sit within
a row or two of each other, so picking among them (or greedily adding to the
best of them) picks by luck; their plain average does not. A stand-in study
(scikit-learn's versions of the five, 5-fold out-of-fold selection, 10 seeded
splits of each of seven tables of 150 to 1,070 rows: wine, breast_cancer,
iris, biopsy, OJ, ad_data, hepatic_injury_qsar) scored on the test splits:
the best single model by out-of-fold score 0.8714, greedy selection as above
0.8766, the plain average 0.8806, the average unless the greedy choice led
it by one paired standard error 0.8814; at or above the best of SVC, HGB and
logistic regression on 35 of 70 splits for greedy selection, 45 and 43 for
the two averages (`bench/selection_study.py`). The average ships unless
the held-out choice above (the chosen trial, or its ensemble) leads it
clearly on the same rows (`pipelines.search.winner.Lead`, the bar
raised for every sampled trial, as the winner rule raises it); the TabRepo
and AutoGluon finding that a fixed portfolio, ensembled, beats search from
scratch at small budgets.

The same holds on a table scored on a validation split (`SMALL_VALIDATION_ROWS`
or more rows, hyperband's rounds): wa_churn (5,634 training rows, 845
validation rows, 5 minutes, three seeds of its validation split, every trial's
checkpoint scored on the bench's test split): the winner rule's choice with
greedy selection scored 0.7928, 0.7999 and 0.8013, the portfolio's five
averaged 0.8034, 0.8070 and 0.8091 (the chosen trial did not lead it clearly
in any), AutoGluon `medium_quality` 0.8084. There the greedy ensemble is the
best of 12 candidates on 845 rows, and gains a row or two by luck.

An image set's portfolio (logistic regression and kernel ridge on the
pixels, a small CNN, the MLP) is averaged too, less the trials its best
leads clearly (`contenders`): on pixels a linear model can trail kernel
ridge by several points, and averaging it in cost digits a test image.
Measured by kerasflow itself: the transfer benchmark's 50- and 150-image
sets (`bench/transfer.py`, three seeds), digits at one minute and `make
run`. Series are not averaged (`pipelines.search.run.AVERAGED_KINDS`): the
study's series stand-ins scored below the best single trial averaged
(`bench/results/selection_study.md`).
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from pipelines.search.ledger import model_hyperparameters
from pipelines.search.records import EnsembleChoice
from pipelines.search.selection import scores
from pipelines.search.winner import Lead, min_paired_z

CANDIDATES = 12
MIN_GAIN_ROWS = 1.5  # held-out rows an ensemble must gain over the best single trial (two rows, less rounding)


def distinct_best(trials: list, limit: int = CANDIDATES) -> list:
    """The best completed keras-tuner trials (best first), one per set of hyperparameter values."""
    seen, picked = set(), []
    for trial in trials:
        key = json.dumps(model_hyperparameters(trial), sort_keys=True)
        if key not in seen:
            seen.add(key)
            picked.append(trial)
        if len(picked) == limit:
            break
    return picked


def choose_ensemble(predictions: dict[str, np.ndarray], y: np.ndarray, objective: str, max_members: int,
                    fits: Callable[[list[str]], bool] = lambda members: True) -> EnsembleChoice | None:
    """Greedy selection over `predictions` (trial id -> held-out probabilities, best trial first)."""
    if max_members < 2 or len(predictions) < 2:
        return None
    ids = list(predictions)
    score = lambda members: scores(y, np.mean([predictions[m] for m in members], axis=0), objective)["selection"]
    chosen = [ids[0]]
    single = best = score(chosen)
    while len(chosen) < max_members:
        options = [(score(chosen + [t]), t) for t in ids if t not in chosen and fits(chosen + [t])]
        if not options:
            break
        value, trial_id = max(options, key=lambda option: option[0])
        if value <= best:
            break
        chosen.append(trial_id)
        best = value
    if len(chosen) < 2 or best - single < MIN_GAIN_ROWS / len(y):
        return None
    return EnsembleChoice(chosen, best, single)


def average_portfolio(portfolio: dict[str, np.ndarray], chosen: np.ndarray, y: np.ndarray, objective: str,
                      challengers: int, max_members: int,
                      fits: Callable[[list[str]], bool] = lambda members: True) -> EnsembleChoice | None:
    """The plain average of the `portfolio` trials' held-out probabilities (trial id -> probabilities, best first),
    unless the held-out `chosen` probabilities (the chosen trial's, or its ensemble's) lead it clearly: by more than
    `min_paired_z(challengers)` paired standard errors. At most `max_members` (the best); None when fewer than two
    completed, or they do not fit."""
    members = list(portfolio)[:max_members]
    if max_members < 2 or len(members) < 2 or not fits(members):
        return None
    averaged = np.mean([portfolio[m] for m in members], axis=0)
    if Lead.of(y, chosen, averaged, objective).clear(challengers):
        return None
    score = lambda probabilities: scores(y, probabilities, objective)["selection"]
    return EnsembleChoice(members, score(averaged), score(chosen),
                          why=f"the portfolio's {len(members)} trials, unselected: their held-out scores are too "
                              f"close to pick among, and the search's own choice did not "
                              f"lead their average by {min_paired_z(challengers):.2g} paired standard errors")


def contenders(portfolio: dict[str, np.ndarray], y: np.ndarray, objective: str) -> list[str]:
    """The `portfolio` trials (trial id -> held-out probabilities, best first) that the best of them does not lead
    clearly: by more than `min_paired_z` paired standard errors, the bar raised for each of the others it is compared
    with. On raw pixels a linear model can sit several points below kernel ridge and a CNN, and averaging it in pulls
    the average down; members within noise of the best are what averaging is for."""
    ids = list(portfolio)
    if not ids:
        return []
    best = portfolio[ids[0]]
    return [ids[0], *(m for m in ids[1:] if not Lead.of(y, best, portfolio[m], objective).clear(len(ids) - 1))]
