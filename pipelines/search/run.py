"""Search step: keras-tuner over the families that fit the input, under a wall-clock budget.

`run_search` resumes a search found in its folder; with more than one
worker it serves the oracle and lets `pipelines.search.parallel` place the
workers. `fit_to_data` adapts batch size and epochs to a small or a large training set.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from models import ENSEMBLE, average, closed_form, families_for
from models.inference import model_outputs
from models.portfolio import FIRST
from models.transfer import TransferBase
from pipelines.budget import FeatureTimes, FinishCost
from pipelines.config import SearchOptions
from pipelines.devices import DeviceSetup, float32_policy
from pipelines.errors import SearchFailed
from pipelines.preprocess import ModelInputs, Preprocessing
from pipelines.search.ensemble import average_portfolio, choose_ensemble, contenders, distinct_best
from pipelines.search.fidelity import CONVERGED_EPOCH_FACTOR, Fidelity, fidelity_for
from pipelines.search.ledger import Footprints, Timings, best_epochs, model_hyperparameters
from pipelines.search.parallel import Launcher, search_in_parallel
from pipelines.search.records import EnsembleChoice, SearchResult, TrialHook, TrialRecord
from pipelines.search.selection import CrossValidation, load_heldout
from pipelines.search.subsample import validation_rows
from pipelines.search.towers import has_bag, load_bag
from pipelines.search.tuner import run_trials, searching_tuner
from pipelines.search.winner import choose_trial, sampled_trials

SMALL_BATCH = 8
MAX_EPOCH_STEPS = 1000  # optimiser steps of one epoch over a large training set (the batch grows past that)
MAX_EPOCH_FACTOR = 5  # a small training set's trials train at most this many times the asked epochs
# The portfolio's trials on these kinds of input are averaged (`.ensemble`), under k-fold and under holdout alike.
# Not sequences: there MiniRocket is often right where the linear and kernel models on the raw series are not, and the
# average of the three scored below the best of them on three UCR sets (`bench/selection_study.py`). Text: not
# measured. Under holdout: wa_churn (`.ensemble`), and digits forced to holdout, 0.9889 -> 0.9944 (README).
AVERAGED_KINDS = frozenset({"table", "image"})
# On these kinds the average leaves out the trials the portfolio's best leads clearly (`.ensemble.contenders`): on
# digits' 1,438 rows logistic regression and an LSTM on the pixels trailed kernel ridge by 39 and 76 rows out of fold,
# and the average of all five scored 0.9889 on test where kernel ridge with the CNN scored 0.9916. Not tables: there
# the members are each strong somewhere, and leaving some out scored lower (`bench/selection_study.py`).
PRUNED_KINDS = frozenset({"image"})


def run_search(
    inputs: ModelInputs,
    prep: Preprocessing,
    directory: Path,
    options: SearchOptions,
    on_trial_end: TrialHook | None = None,
    launch: Launcher | None = None,
    devices: DeviceSetup | None = None,
    base: TransferBase | None = None,
    finish: FinishCost | None = None,
) -> SearchResult:
    """Search the families that fit `prep.kind`; resume if `directory` holds an earlier search.

    With `options.workers` > 1 this process only serves the oracle and
    `launch` (default: a local Dask cluster) places the workers that train. With a pretrained `base`, the
    `transfer` family is searched too. `finish`: what the run's finish asks of the chosen model; a trial that
    times its features (`Budgeted.expect_finish`) ends a one-process search as much earlier as they say it must.
    """
    families, skipped = families_for(prep.search_kind, options.families, prep.input_shape, base)
    keras.utils.set_random_seed(options.seed)
    directory.mkdir(parents=True, exist_ok=True)
    # Parallel workers spend trial-seconds side by side: the wall clock spent is about their sum / workers.
    spent = Timings(directory).total() / options.workers
    deadline = time.time() + options.budget_minutes * 60 - spent
    tuner = searching_tuner(prep, families, directory, options, deadline, inputs.x_train, on_trial_end, devices,
                            base=base)
    tuner.feature_times = None if finish is None else FeatureTimes(finish)
    resumed = len(tuner.oracle.trials)
    started = time.monotonic()
    workers = []
    if options.workers > 1:
        workers = search_in_parallel(tuner, inputs, prep, families, directory, options, deadline, launch, on_trial_end)
    else:
        run_trials(tuner, inputs, options, deadline, devices)
    tuner.oracle.save()  # keras-tuner saves before it clears the last ongoing trial; a resume would rerun it
    tuner.hypermodel.x_fit = None  # from here models are loaded: data-fitted layers are built empty for their weights
    ledger = tuner.ledger.reload()
    trials = ledger.records(tuner.oracle.trials.values())
    completed = tuner.oracle.get_best_trials(1)
    if completed and ledger.footprints.untrained(completed[0].trial_id) \
            and not ledger.footprints.over_budget(completed[0].trial_id):
        completed = []  # the best is a trial left untrained for want of time: none was trained
    if not completed or completed[0].score is None or not np.isfinite(completed[0].score):
        reasons = "; ".join(f"trial {t.trial_id} ({t.family}): {t.status} {t.message}" for t in trials[:5])
        raise SearchFailed(f"no search trial produced a usable model. {reasons or 'No trial ran: is the budget too small?'}")
    if ledger.footprints.over_budget(completed[0].trial_id):
        raise SearchFailed(_nothing_fits(trials, options))
    cv = CrossValidation.plan(inputs, options.seed, options.selection)
    scored = validation_rows(inputs.y_val, options.subsample_from, options.seed)
    y = cv.y if cv is not None else inputs.y_val[scored]
    ranked = [t for t in tuner.oracle.get_best_trials(len(tuner.oracle.trials))
              if t.score is not None and np.isfinite(t.score) and not ledger.footprints.untrained(t.trial_id)
              and not ledger.footprints.over_budget(t.trial_id)]
    heldout = _heldout(tuner, inputs.x_val[scored], cv)
    portfolio = set(tuner.oracle.served_first())
    best, choice = choose_trial(ranked, portfolio, heldout, y, options.objective,
                                solved=lambda trial: closed_form(trial.hyperparameters.values))
    fits = _fits(options, ledger.footprints)
    ensemble = _ensemble(ranked, best, heldout, y, options, fits)
    if prep.search_kind in AVERAGED_KINDS:
        ensemble = _portfolio_average(ranked, portfolio, best, ensemble, heldout, y, options, fits,
                                      pruned=prep.search_kind in PRUNED_KINDS) or ensemble
    by_id = tuner.oracle.trials
    members = ensemble.members if ensemble else [best.trial_id]
    # Under k-fold, a chosen trial trained as fold towers ships as its bag of fold models (`.towers`); not under a
    # mobile budget, which its trials were measured against one model at a time.
    bags = {} if cv is None or options.mobile_budget else {
        m: str(tuner.get_trial_dir(m)) for m in members if has_bag(tuner.get_trial_dir(m))}
    best_model_path = directory.parent / "search_best.keras"
    with float32_policy():  # the chosen model as the search trained it: the best trial, or the members averaged
        chosen = [_trained(tuner, by_id[m], bags.get(m)) for m in members]
        (chosen[0] if len(chosen) == 1 else average(chosen)).save(best_model_path)
    hyperparameters = model_hyperparameters(best) if ensemble is None else {
        "family": ENSEMBLE, "members": [model_hyperparameters(by_id[m]) for m in ensemble.members]}
    return SearchResult(
        objective=options.objective,
        best_trial_id=best.trial_id,
        best_val_score=float(best.score),
        best_hyperparameters=hyperparameters,
        best_epochs=best_epochs(best),
        best_model_path=best_model_path,
        trials=trials,
        families=families,
        skipped_families=skipped,
        seconds=time.monotonic() - started,
        budget_spent=time.time() >= tuner.deadline,
        resumed_trials=resumed,
        mobile_budget=options.budget_text(),
        workers=workers,
        cross_validated=cv is not None,
        ensemble=ensemble,
        scored_rows=None if cv is not None or len(scored) == len(inputs.y_val) else len(scored),
        fidelity=str(tuner.hypermodel.fidelity),
        bags=bags,
        choice=choice,
        finish_cut=round(tuner.finish_cut, 1),
    )


def _trained(tuner, trial, bag: str | None) -> keras.Model:
    """A trial's model as the search trained it: its bag of fold models, or its checkpoint."""
    if bag is None:
        return tuner.load_model(trial)
    return load_bag(Path(bag), lambda: tuner.hypermodel.build(trial.hyperparameters))[0]


def _heldout(tuner, x_scored: np.ndarray, cv: CrossValidation | None) -> Callable[[str], np.ndarray | None]:
    """A trial's probabilities on the held-out rows that scored it, by trial id: under k-fold the out-of-fold ones
    each trial kept; under holdout the ones a trial kept (solved, or trained to convergence), else its checkpoint's
    (keras-tuner keeps a trial's best epoch) run again on the scored validation rows `x_scored`. Without them the
    winner rule (`.winner.choose_trial`) could not weigh a trial trained in hyperband's rounds against the
    portfolio's best, and shipped the best-scored one whatever its lead."""
    @functools.cache
    def heldout(trial_id: str) -> np.ndarray | None:
        kept = load_heldout(tuner.get_trial_dir(trial_id))
        if kept is not None or cv is not None:
            return kept
        with float32_policy():  # the same call as the probabilities a trial keeps (`.tuner.SearchHyperModel`)
            return model_outputs(tuner.load_model(tuner.oracle.trials[trial_id]), x_scored)

    return heldout


def _ensemble(ranked: list, best, heldout: Callable[[str], np.ndarray | None], y: np.ndarray,
              options: SearchOptions, fits: Callable[[list[str]], bool]) -> EnsembleChoice | None:
    """Average the best distinct trials when that beats the chosen one, `best`, on the held-out rows of `y`
    (`.ensemble`; the probabilities by `heldout`)."""
    if options.ensemble_size < 2:
        return None
    predictions = {}
    for trial in distinct_best([best, *(t for t in ranked if t is not best)]):
        probabilities = heldout(trial.trial_id)
        if probabilities is not None:
            predictions[trial.trial_id] = probabilities
    return choose_ensemble(predictions, y, options.objective, options.ensemble_size, fits)


def _portfolio_average(ranked: list, portfolio: set[str], best, ensemble: EnsembleChoice | None, heldout,
                       y: np.ndarray, options: SearchOptions, fits: Callable[[list[str]], bool],
                       pruned: bool = False) -> EnsembleChoice | None:
    """The portfolio's completed trials averaged (`pruned`: those its best does not lead clearly), unless the
    search's own choice (`best`, or its `ensemble`) leads them clearly on the held-out rows of `y`
    (`.ensemble.average_portfolio`).

    A pretrained base's trial (`models.portfolio.FIRST`, tried before the portfolio) is not averaged in: the
    portfolio's configurations are known-good for the input kind, a base is the user's and of unknown worth on
    this data. It ships when it is the choice (leading the average clearly), or joins the search's own ensemble
    by a clear held-out gain (`.ensemble.choose_ensemble`). Averaged in unselected, on the transfer benchmark's
    image sets (digits 0-4 as the base, 50 and 150 images of 5-9; the two arms' common trials trained alike,
    `.seeding`) it tied the best out of fold and moved the test score by -0.12, +0.35 and -0.59 points at 50
    images, -0.27 at 150 on the one seed of three where it joined."""
    tried = {t.trial_id: heldout(t.trial_id) for t in ranked
             if t.trial_id in portfolio and t.hyperparameters.values.get("family") not in FIRST}
    members = ensemble.members if ensemble else [best.trial_id]
    chosen = [heldout(m) for m in members]
    if any(p is None for p in [*tried.values(), *chosen]):
        return None
    if pruned:
        tried = {m: tried[m] for m in contenders(tried, y, options.objective)}
    return average_portfolio(tried, np.mean(chosen, axis=0), y, options.objective,
                             sampled_trials(ranked, portfolio), options.ensemble_size, fits)


def _fits(options: SearchOptions, footprints: Footprints) -> Callable[[list[str]], bool]:
    """Whether trials averaged into one model fit the mobile budget: their int8 sizes and latencies added up."""
    def fits(members: list[str]) -> bool:
        measured = [footprints.by_trial.get(m, {}) for m in members]
        return ((options.max_model_kb is None or sum(f.get("int8_kb", 0.0) for f in measured) <= options.max_model_kb)
                and (options.max_latency_ms is None
                     or sum(f.get("latency_ms", 0.0) for f in measured) <= options.max_latency_ms))

    return fits


def fit_to_data(options: SearchOptions, n_train: int) -> tuple[SearchOptions, str]:
    """Batch size and epochs that fit the training set's size: smaller batches and more epochs for a small one,
    so each trial takes enough optimiser steps; larger batches for a large one, so an epoch over every row takes
    at most `MAX_EPOCH_STEPS` steps.

    Forty rows in batches of 32 give hyperband's first rounds (2-3 epochs) a
    handful of updates: every family looks alike and the search picks at
    random. A million rows in batches of 32 take 30,000 steps an epoch: the
    search compares a handful of models, and the fine-tune sees every row once
    or twice. Where trials train to convergence (`pipelines.search.fidelity`), the epochs are a cap that early
    stopping comes under, so it is raised to `CONVERGED_EPOCH_FACTOR` times the asked epochs. Returns the options
    to use and a note for the report ("" if unchanged).
    """
    if n_train > MAX_EPOCH_STEPS * options.batch_size:
        batch = math.ceil(n_train / MAX_EPOCH_STEPS)
        return options.model_copy(update={"batch_size": batch}), (
            f"large training set ({n_train:,} rows): batch size {batch} (asked {options.batch_size}), so an epoch over "
            f"every row takes {MAX_EPOCH_STEPS:,} optimiser steps")
    if not options.min_trial_steps:
        return options, ""
    batch = min(options.batch_size, max(SMALL_BATCH, n_train // SMALL_BATCH))
    steps_per_epoch = math.ceil(n_train / batch)
    by_steps = math.ceil(options.min_trial_steps / steps_per_epoch)
    converging = fidelity_for(n_train, options) == Fidelity.CONVERGED
    floor = options.max_epochs * (CONVERGED_EPOCH_FACTOR if converging else 1)
    epochs = min(max(floor, by_steps), MAX_EPOCH_FACTOR * options.max_epochs)
    if (batch, epochs) == (options.batch_size, options.max_epochs):
        return options, ""
    why = ("as a cap: each trial stops when its validation loss stops improving" if converging and floor > by_steps
           else f"so a trial takes about {steps_per_epoch * epochs} optimiser steps")
    note = (f"small training set ({n_train} rows): batch size {batch} (asked {options.batch_size}) and up to "
            f"{epochs} epochs per trial (asked {options.max_epochs}), {why}")
    return options.model_copy(update={"batch_size": batch, "max_epochs": epochs}), note


def _nothing_fits(trials: list[TrialRecord], options: SearchOptions) -> str:
    measured = [t for t in trials if t.int8_kb is not None]
    smallest = min(measured, key=lambda t: t.int8_kb)
    fastest = min(measured, key=lambda t: t.latency_ms)
    return (f"no architecture met the mobile budget ({options.budget_text()}) in {len(measured)} trials. "
            f"Smallest int8 model found: {smallest.int8_kb:.1f} KiB (trial {smallest.trial_id}, {smallest.family}, "
            f"{smallest.latency_ms:.3f} ms); fastest: {fastest.latency_ms:.3f} ms (trial {fastest.trial_id}, "
            f"{fastest.int8_kb:.1f} KiB). Raise --max-model-kb / --max-latency-ms, or search other families.")
