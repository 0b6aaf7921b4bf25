"""Search step: keras-tuner over dense, CNN, LSTM and MiniRocket families under a wall-clock budget.

    records.py            TrialRecord, TrialStatus, EnsembleChoice, SearchResult, WorkerReport
    selection.py          k-fold scoring of trials when the validation split is small; the tie-broken score
    towers.py             the fast k-fold: a trial's k fold models trained at once, as towers of one graph; their bag
    fidelity.py           how long trials train: to convergence on small data, hyperband's rounds on large
    ensemble.py           greedy selection of trials to average
    ledger.py             seconds and footprints per trial; the one trial -> record conversion
    keras_tuner_bridge.py every keras-tuner internal kerasflow still needs
    gradients.py          the traced train steps TensorFlow's gradient registry would keep, released
    heap.py               the garbage collector's walks kept to what a run's training creates
    seeding.py            each trial's random state, from the run's seed and the trial's own values
    tuner.py              the budgeted tuner and its search loop
    parallel.py           keras-tuner's chief oracle here, workers placed by Dask
    run.py                run_search, fit_to_data
    frontier.py           the score-vs-size picture of a search
"""

from pipelines.config import SearchOptions
from pipelines.search.records import SearchResult, TrialHook, TrialRecord, TrialStatus, WorkerReport
from pipelines.search.run import fit_to_data, run_search

__all__ = ["SearchOptions", "SearchResult", "TrialHook", "TrialRecord", "TrialStatus", "WorkerReport",
           "fit_to_data", "run_search"]
