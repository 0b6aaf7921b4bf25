"""Search step: keras-tuner over the families that fit the input, under a wall-clock budget.

The tuner's state lives in the run folder, so running the same command on
the same folder resumes the search. A trial that fails (NaN loss, out of
memory, a build error) is recorded with its message and the search goes on.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from models import KerasflowHyperModel, families_for
from pipelines.devices import (DeviceOptions, DeviceSetup, distribution_strategy, fit_inputs, float32_policy,
                               validation_inputs)
from pipelines.errors import SearchFailed
from pipelines.preprocess import ModelInputs, Preprocessing
from pipelines.tflite import int8_footprint

if TYPE_CHECKING:
    from pipelines.parallel import Launcher

TUNERS = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}
MAX_CONSECUTIVE_FAILURES = 5
HYPERBAND_ITERATIONS = 1000
OVER_BUDGET = "OVER_BUDGET"
FOOTPRINT_SAMPLES = 32
SMALL_BATCH = 8


@dataclass
class SearchOptions:
    tuner: str = "hyperband"
    objective: str = "val_accuracy"
    budget_minutes: float = 5.0
    max_trials: int = 100
    max_epochs: int = 20
    batch_size: int = 32
    families: list[str] | None = None
    seed: int = 42
    max_model_kb: float | None = None
    max_latency_ms: float | None = None
    min_trial_steps: int = 0
    workers: int = 1
    scheduler_address: str | None = None
    devices: DeviceOptions = field(default_factory=DeviceOptions)

    @property
    def mobile_budget(self) -> bool:
        return self.max_model_kb is not None or self.max_latency_ms is not None

    def budget_text(self) -> str:
        limits = [f"int8 model <= {self.max_model_kb:g} KiB" if self.max_model_kb is not None else "",
                  f"batch-1 int8 latency <= {self.max_latency_ms:g} ms" if self.max_latency_ms is not None else ""]
        return " and ".join(limit for limit in limits if limit)


@dataclass
class TrialRecord:
    """One row of search_summary.csv."""

    trial_id: str
    status: str
    family: str
    val_score: float | None
    seconds: float | None
    epochs: int | None
    hyperparameters: dict
    message: str = ""
    params: int | None = None
    int8_kb: float | None = None
    latency_ms: float | None = None


@dataclass
class SearchResult:
    objective: str
    best_trial_id: str
    best_val_score: float
    best_hyperparameters: dict
    best_epochs: int
    best_model_path: Path
    trials: list[TrialRecord]
    families: list[str]
    skipped_families: dict[str, str]
    seconds: float
    budget_spent: bool
    resumed_trials: int = 0
    mobile_budget: str = ""
    workers: list = field(default_factory=list)

    @property
    def trial_table(self) -> pd.DataFrame:
        rows = [{**asdict(t), "hyperparameters": json.dumps(t.hyperparameters)} for t in self.trials]
        return pd.DataFrame(rows, columns=list(TrialRecord.__dataclass_fields__))


TrialHook = Callable[[TrialRecord, int], None]


def run_search(
    inputs: ModelInputs,
    prep: Preprocessing,
    directory: Path,
    options: SearchOptions,
    on_trial_end: TrialHook | None = None,
    launch: "Launcher | None" = None,
    devices: DeviceSetup | None = None,
) -> SearchResult:
    """Search the families that fit `prep.kind`; resume if `directory` holds an earlier search.

    With `options.workers` > 1 this process only serves the oracle and
    `launch` (default: a local Dask cluster) places the workers that train.
    """
    families, skipped = families_for(prep.kind, options.families)
    keras.utils.set_random_seed(options.seed)
    directory.mkdir(parents=True, exist_ok=True)
    # Parallel workers spend trial-seconds side by side: the wall clock spent is about their sum / workers.
    spent = _Timings(directory).total() / options.workers
    deadline = time.time() + options.budget_minutes * 60 - spent
    tuner = searching_tuner(prep, families, directory, options, deadline, inputs.x_train, on_trial_end, devices)
    resumed = len(tuner.oracle.trials)
    started = time.monotonic()
    workers = []
    if options.workers > 1:
        from pipelines.parallel import search_in_parallel

        workers = search_in_parallel(tuner, inputs, prep, families, directory, options, deadline, launch, on_trial_end)
    else:
        run_trials(tuner, inputs, options, deadline, devices)
    tuner.oracle.save()  # keras-tuner saves before it clears the last ongoing trial; a resume would rerun it
    timings, footprints = _Timings(directory), tuner.hypermodel.footprints.reload()
    trials = [_record(t, timings, footprints) for t in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)]
    completed = tuner.oracle.get_best_trials(1)
    if not completed or completed[0].score is None or not np.isfinite(completed[0].score):
        reasons = "; ".join(f"trial {t.trial_id} ({t.family}): {t.status} {t.message}" for t in trials[:5])
        raise SearchFailed(f"no search trial produced a usable model. {reasons or 'No trial ran: is the budget too small?'}")
    best = completed[0]
    if footprints.over_budget(best.trial_id):
        raise SearchFailed(_nothing_fits(trials, options))
    best_model_path = directory.parent / "search_best.keras"
    with float32_policy():
        tuner.get_best_models(1)[0].save(best_model_path)
    return SearchResult(
        objective=options.objective,
        best_trial_id=best.trial_id,
        best_val_score=float(best.score),
        best_hyperparameters=_model_hyperparameters(best),
        best_epochs=_epochs(best),
        best_model_path=best_model_path,
        trials=trials,
        families=families,
        skipped_families=skipped,
        seconds=time.monotonic() - started,
        budget_spent=time.time() >= deadline,
        resumed_trials=resumed,
        mobile_budget=options.budget_text(),
        workers=workers,
    )


def fit_to_data(options: SearchOptions, n_train: int) -> tuple[SearchOptions, str]:
    """Smaller batches and more epochs for a small training set, so each trial takes enough optimiser steps.

    Forty rows in batches of 32 give hyperband's first rounds (2-3 epochs) a
    handful of updates: every family looks alike and the search picks at
    random. Returns the options to use and a note for the report ("" if unchanged).
    """
    if not options.min_trial_steps:
        return options, ""
    batch = min(options.batch_size, max(SMALL_BATCH, n_train // SMALL_BATCH))
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = min(max(options.max_epochs, math.ceil(options.min_trial_steps / steps_per_epoch)), 5 * options.max_epochs)
    if (batch, epochs) == (options.batch_size, options.max_epochs):
        return options, ""
    note = (f"small training set ({n_train} rows): batch size {batch} (asked {options.batch_size}) and up to "
            f"{epochs} epochs per trial (asked {options.max_epochs}), so a trial takes about "
            f"{steps_per_epoch * epochs} optimiser steps")
    return replace(options, batch_size=batch, max_epochs=epochs), note


def searching_tuner(prep: Preprocessing, families: list[str], directory: Path, options: SearchOptions,
                    deadline: float, x_train: np.ndarray, on_trial_end: TrialHook | None = None,
                    devices: DeviceSetup | None = None, worker: str | None = None):
    """The budgeted tuner over `directory`; a `worker` keeps its timings and footprints in files of its own."""
    footprints = _Footprints(directory, options, prep.input_shape, x_train[:FOOTPRINT_SAMPLES], worker)
    hypermodel = _SearchHyperModel(prep, families, footprints, devices.jit_compile if devices else "auto")
    return _make_tuner(hypermodel, directory, options, deadline, _Timings(directory, worker), on_trial_end, devices)


def run_trials(tuner, inputs: ModelInputs, options: SearchOptions, deadline: float,
               devices: DeviceSetup | None = None) -> None:
    """The tuner's search loop: trains trials until the oracle stops (budget, trials, or too many failures)."""
    callbacks = [_FailOnNaN(), _StopAtDeadline(deadline)]
    if options.objective == "val_macro_f1":
        callbacks.insert(0, _MacroF1(inputs.x_val, inputs.y_val))
    try:
        tuner.search(
            **fit_inputs(inputs.x_train, inputs.y_train, options.batch_size, devices, shuffle=True, seed=options.seed),
            validation_data=validation_inputs(inputs.x_val, inputs.y_val, options.batch_size, devices),
            epochs=options.max_epochs, callbacks=callbacks, verbose=0,
        )
    except RuntimeError as exc:  # keras-tuner gives up after too many consecutive failures
        if "consecutive" not in str(exc):
            raise


def _nothing_fits(trials: list[TrialRecord], options: SearchOptions) -> str:
    measured = [t for t in trials if t.int8_kb is not None]
    smallest = min(measured, key=lambda t: t.int8_kb)
    fastest = min(measured, key=lambda t: t.latency_ms)
    return (f"no architecture met the mobile budget ({options.budget_text()}) in {len(measured)} trials. "
            f"Smallest int8 model found: {smallest.int8_kb:.1f} KiB (trial {smallest.trial_id}, {smallest.family}, "
            f"{smallest.latency_ms:.3f} ms); fastest: {fastest.latency_ms:.3f} ms (trial {fastest.trial_id}, "
            f"{fastest.int8_kb:.1f} KiB). Raise --max-model-kb / --max-latency-ms, or search other families.")


def _make_tuner(hypermodel, directory, options, deadline, timings, on_trial_end, devices):
    objective = kt.Objective(options.objective, direction="max")
    common = dict(
        hypermodel=hypermodel, objective=objective, directory=str(directory.parent),
        project_name=directory.name, overwrite=False, seed=options.seed,
        max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILURES,
        distribution_strategy=distribution_strategy(devices) if devices else None,
        # In parallel, a trial whose worker died goes back to the queue once (see pipelines.parallel).
        max_retries_per_trial=1 if options.workers > 1 else 0,
    )
    if options.tuner == "hyperband":
        # Brackets repeat until the wall-clock budget, not after one pass.
        common.update(max_epochs=options.max_epochs, factor=3, hyperband_iterations=HYPERBAND_ITERATIONS)
    else:
        common.update(max_trials=options.max_trials)
    tuner_class = _budgeted(TUNERS[options.tuner])
    return tuner_class(deadline=deadline, timings=timings, hook=on_trial_end, **common)


def _budgeted(base: type) -> type:
    """A subclass of `base` that stops creating trials past the deadline and times each trial."""

    class Budgeted(base):
        def __init__(self, *args, deadline: float, timings: "_Timings", hook: TrialHook | None, **kwargs):
            super().__init__(*args, **kwargs)
            self.timings, self._hook, self._started = timings, hook, {}
            if self._is_worker():  # the chief's oracle applies the deadline
                return
            populate = self.oracle.populate_space

            def populate_until_deadline(trial_id):
                if time.time() >= deadline:
                    return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
                return populate(trial_id)

            self.oracle.populate_space = populate_until_deadline

        def on_trial_begin(self, trial):
            self._started[trial.trial_id] = time.monotonic()
            self.hypermodel.trial_id = trial.trial_id
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            self.timings.record(trial.trial_id, time.monotonic() - self._started.pop(trial.trial_id, time.monotonic()))
            super().on_trial_end(trial)
            if self._hook:
                self._hook(_record(trial, self.timings, self.hypermodel.footprints), len(self.oracle.trials))

    Budgeted.__name__ = f"Budgeted{base.__name__}"
    return Budgeted


class _SearchHyperModel(KerasflowHyperModel):
    """The search space plus one gate before training: an architecture over the mobile budget is not trained.

    Its score becomes minus how many times over the budget it is: below any real
    accuracy, and still telling the oracle that smaller is better.
    """

    def __init__(self, prep: Preprocessing, families: list[str], footprints: "_Footprints",
                 jit_compile: bool | str = "auto"):
        super().__init__(prep, families, jit_compile=jit_compile)
        self.footprints = footprints
        self.trial_id: str | None = None

    def fit(self, hp, model, *args, **kwargs):
        penalty = self.footprints.measure(self.trial_id, model, hp).get("penalty")
        if penalty is not None:
            return penalty
        return super().fit(hp, model, *args, **kwargs)


class _Footprints:
    """Parameters of every trial's model and, under a mobile budget, its int8 size and latency."""

    def __init__(self, directory: Path, options: SearchOptions, input_shape: list[int], representative: np.ndarray,
                 worker: str | None = None):
        self.directory, self.options = directory, options
        self.path = _own_file(directory, "trial_footprints", worker)
        self.input_shape, self.representative = input_shape, representative
        self.by_trial: dict[str, dict] = _merged(directory, "trial_footprints")
        self._by_architecture: dict[str, dict] = {}

    def reload(self) -> "_Footprints":
        self.by_trial = _merged(self.directory, "trial_footprints")
        return self

    def measure(self, trial_id: str | None, model, hp) -> dict:
        entry = {"params": int(model.count_params())}
        if self.options.mobile_budget:
            key = _architecture_key(hp)
            if key not in self._by_architecture:  # hyperband resumes the same architecture in later rounds
                footprint = int8_footprint(model, self.input_shape, self.representative)
                self._by_architecture[key] = {"int8_kb": round(footprint.int8_kb, 2),
                                              "latency_ms": round(footprint.latency_ms, 4)}
            entry.update(self._by_architecture[key])
            entry["penalty"] = self._penalty(entry["int8_kb"], entry["latency_ms"])
        if trial_id is not None:
            self.by_trial[trial_id] = entry
            mine = json.loads(self.path.read_text()) if self.path.exists() else {}
            self.path.write_text(json.dumps({**mine, trial_id: entry}))
        return entry

    def _penalty(self, int8_kb: float, latency_ms: float) -> float | None:
        ratios = [int8_kb / self.options.max_model_kb if self.options.max_model_kb else 0.0,
                  latency_ms / self.options.max_latency_ms if self.options.max_latency_ms else 0.0]
        return -max(ratios) if max(ratios) > 1 else None

    def over_budget(self, trial_id: str) -> bool:
        return self.by_trial.get(trial_id, {}).get("penalty") is not None


def _architecture_key(hp) -> str:
    """Hyperparameters that shape the inference graph; the optimiser's and dropout's do not."""
    skip = ("learning_rate", "dropout")
    return json.dumps({k: v for k, v in sorted(hp.values.items()) if not k.startswith("tuner/") and k not in skip})


class _Timings:
    """Seconds per trial, kept beside the tuner state so a resumed search knows what was spent.

    Each parallel worker writes a file of its own; reading merges them all.
    """

    def __init__(self, directory: Path, worker: str | None = None):
        self.path = _own_file(directory, "trial_seconds", worker)
        self.seconds = _merged(directory, "trial_seconds")
        self.own = json.loads(self.path.read_text()) if self.path.exists() else {}

    def record(self, trial_id: str, seconds: float) -> None:
        self.seconds[trial_id] = self.own[trial_id] = round(seconds, 2)
        self.path.write_text(json.dumps(self.own))

    def total(self) -> float:
        return float(sum(self.seconds.values()))


def _own_file(directory: Path, stem: str, worker: str | None) -> Path:
    return directory / (f"{stem}.{worker}.json" if worker else f"{stem}.json")


def _merged(directory: Path, stem: str) -> dict:
    merged: dict = {}
    for path in sorted(directory.glob(f"{stem}*.json")):
        merged.update(json.loads(path.read_text()))
    return merged


def _record(trial, timings: _Timings, footprints: _Footprints) -> TrialRecord:
    values = dict(trial.hyperparameters.values)
    footprint = footprints.by_trial.get(trial.trial_id, {})
    over = footprint.get("penalty") is not None
    score = None if over or trial.score is None else float(trial.score)
    message = (trial.message or "").strip().splitlines()
    return TrialRecord(
        trial_id=trial.trial_id,
        status=OVER_BUDGET if over else str(trial.status),
        family=str(values.get("family", "")),
        val_score=score,
        seconds=timings.seconds.get(trial.trial_id),
        epochs=_epochs(trial) if trial.status == "COMPLETED" and not over else None,
        hyperparameters=_model_hyperparameters(trial),
        message=f"not trained: over the mobile budget ({footprints.options.budget_text()})" if over
        else message[-1] if message else "",
        params=footprint.get("params"),
        int8_kb=footprint.get("int8_kb"),
        latency_ms=footprint.get("latency_ms"),
    )


def _model_hyperparameters(trial) -> dict:
    """The trial's architecture and optimiser values, without keras-tuner's `tuner/` bookkeeping."""
    return {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}


def _epochs(trial) -> int:
    return int(trial.best_step) + 1 if trial.best_step is not None else 1


class _MacroF1(keras.callbacks.Callback):
    """Adds `val_macro_f1` to the epoch logs so keras-tuner can use it as the objective."""

    def __init__(self, x_val, y_val):
        super().__init__()
        self.x_val, self.y_val = x_val, y_val

    def on_epoch_end(self, epoch, logs=None):
        predicted = np.argmax(self.model.predict(self.x_val, verbose=0), axis=1)
        logs["val_macro_f1"] = f1_score(self.y_val, predicted, average="macro", zero_division=0)


class _FailOnNaN(keras.callbacks.Callback):
    """Turns a diverged trial into a recorded failure instead of a NaN score."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            raise kt.errors.FailedTrialError(f"loss became {loss} at epoch {epoch + 1}")


class _StopAtDeadline(keras.callbacks.Callback):
    """Ends the running trial at the first epoch boundary past the budget."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch, logs=None):
        if time.time() >= self.deadline:
            self.model.stop_training = True
