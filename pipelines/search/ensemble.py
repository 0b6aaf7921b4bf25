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
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from pipelines.search.records import EnsembleChoice
from pipelines.search.selection import scores

CANDIDATES = 12
MIN_GAIN_ROWS = 1.5  # held-out rows an ensemble must gain over the best single trial (two rows, less rounding)


def distinct_best(trials: list, limit: int = CANDIDATES) -> list:
    """The best completed keras-tuner trials (best first), one per set of hyperparameter values."""
    seen, picked = set(), []
    for trial in trials:
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        key = json.dumps(values, sort_keys=True)
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
