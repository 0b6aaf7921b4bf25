"""Search step: keras-tuner over the families that fit the input, under a wall-clock budget.

The tuner's state lives in the run folder, so running the same command on
the same folder resumes the search. A trial that fails (NaN loss, out of
memory, a build error) is recorded with its message and the search goes on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from models import KerasflowHyperModel, families_for
from pipelines.errors import SearchFailed
from pipelines.preprocess import ModelInputs, Preprocessing

TUNERS = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}
MAX_CONSECUTIVE_FAILURES = 5
HYPERBAND_ITERATIONS = 1000


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
) -> SearchResult:
    """Search the families that fit `prep.kind`; resume if `directory` holds an earlier search."""
    families, skipped = families_for(prep.kind, options.families)
    keras.utils.set_random_seed(options.seed)
    directory.mkdir(parents=True, exist_ok=True)
    timings = _Timings(directory / "trial_seconds.json")
    deadline = time.time() + options.budget_minutes * 60 - timings.total()
    tuner = _make_tuner(KerasflowHyperModel(prep, families), directory, options, deadline, timings, on_trial_end)
    resumed = len(tuner.oracle.trials)
    started = time.monotonic()
    callbacks = [_FailOnNaN(), _StopAtDeadline(deadline)]
    if options.objective == "val_macro_f1":
        callbacks.insert(0, _MacroF1(inputs.x_val, inputs.y_val))
    try:
        tuner.search(
            inputs.x_train, inputs.y_train, validation_data=(inputs.x_val, inputs.y_val),
            epochs=options.max_epochs, batch_size=options.batch_size, callbacks=callbacks, verbose=0,
        )
    except RuntimeError as exc:  # keras-tuner gives up after too many consecutive failures
        if "consecutive" not in str(exc):
            raise
    trials = [_record(t, timings) for t in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)]
    completed = tuner.oracle.get_best_trials(1)
    if not completed or completed[0].score is None or not np.isfinite(completed[0].score):
        reasons = "; ".join(f"trial {t.trial_id} ({t.family}): {t.status} {t.message}" for t in trials[:5])
        raise SearchFailed(f"no search trial produced a usable model. {reasons or 'No trial ran: is the budget too small?'}")
    best = completed[0]
    best_model_path = directory.parent / "search_best.keras"
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
    )


def _make_tuner(hypermodel, directory, options, deadline, timings, on_trial_end):
    objective = kt.Objective(options.objective, direction="max")
    common = dict(
        hypermodel=hypermodel, objective=objective, directory=str(directory.parent),
        project_name=directory.name, overwrite=False, seed=options.seed,
        max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILURES,
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
            self._timings, self._hook, self._started = timings, hook, {}
            populate = self.oracle.populate_space

            def populate_until_deadline(trial_id):
                if time.time() >= deadline:
                    return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
                return populate(trial_id)

            self.oracle.populate_space = populate_until_deadline

        def on_trial_begin(self, trial):
            self._started[trial.trial_id] = time.monotonic()
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            self._timings.record(trial.trial_id, time.monotonic() - self._started.pop(trial.trial_id, time.monotonic()))
            super().on_trial_end(trial)
            if self._hook:
                self._hook(_record(trial, self._timings), len(self.oracle.trials))

    Budgeted.__name__ = f"Budgeted{base.__name__}"
    return Budgeted


class _Timings:
    """Seconds per trial, kept beside the tuner state so a resumed search knows what was spent."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds = json.loads(path.read_text()) if path.exists() else {}

    def record(self, trial_id: str, seconds: float) -> None:
        self.seconds[trial_id] = round(seconds, 2)
        self.path.write_text(json.dumps(self.seconds))

    def total(self) -> float:
        return float(sum(self.seconds.values()))


def _record(trial, timings: _Timings) -> TrialRecord:
    values = dict(trial.hyperparameters.values)
    score = trial.score
    message = (trial.message or "").strip().splitlines()
    return TrialRecord(
        trial_id=trial.trial_id,
        status=str(trial.status),
        family=str(values.get("family", "")),
        val_score=None if score is None else float(score),
        seconds=timings.seconds.get(trial.trial_id),
        epochs=_epochs(trial) if trial.status == "COMPLETED" else None,
        hyperparameters=_model_hyperparameters(trial),
        message=message[-1] if message else "",
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
