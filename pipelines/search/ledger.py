"""What kerasflow keeps about trials beside keras-tuner's own state: seconds, footprints, and trial records.

Both files live in the search folder, so a resumed search knows what was
spent; a parallel worker writes files of its own (`trial_seconds.<id>.json`)
and reading merges them all. `TrialLedger.record` is the one place a
keras-tuner trial becomes a `TrialRecord`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.hypermodel import LAYER_STRUCTURE
from models.trees import ROUNDS_FITTED, trees_grown
from pipelines.config import SearchOptions
from pipelines.export.tflite import int8_footprint
from pipelines.registry import atomic_write
from pipelines.search.keras_tuner_bridge import KT_STATUS
from pipelines.search.records import TrialRecord, TrialStatus

TIMINGS = "trial_seconds"
FOOTPRINTS = "trial_footprints"
COPIED_FROM = "copied_from"  # a footprint's note: the trial whose model and scores this one copied
# A boosted trial's note beside `ROUNDS_FITTED`: the rounds it asked for (both summed over its folds); fewer fitted
# means the deadline stopped it.
ROUNDS_ASKED = "rounds_asked"
# A layer structure its family has not run yet may take this many times the family's slowest trial: under k-fold on
# ArrowHead (36 series), the first ResNet trial took 39 s where the FCN's had taken 16 s (its first batch traces
# five towers of three times the layers).
NEW_STRUCTURE_FACTOR = 2.0


class Timings:
    """Seconds per trial; `own` are the ones this process (or worker) recorded."""

    def __init__(self, directory: Path, worker: str | None = None):
        self.directory = directory
        self.path = _own_file(directory, TIMINGS, worker)
        self.seconds = merged(directory, TIMINGS)
        self.own = json.loads(self.path.read_text()) if self.path.exists() else {}

    def record(self, trial_id: str, seconds: float) -> None:
        self.seconds[trial_id] = self.own[trial_id] = round(seconds, 2)
        atomic_write(self.path, json.dumps(self.own))  # a search killed mid-write resumes from whole files

    def reload(self) -> "Timings":
        self.seconds = merged(self.directory, TIMINGS)
        return self

    def total(self) -> float:
        return float(sum(self.seconds.values()))


class Footprints:
    """Parameters of every trial's model, the rows it trained on and, under a mobile budget, its int8 size and
    latency."""

    def __init__(self, directory: Path, options: SearchOptions, input_shape: list[int], representative: np.ndarray,
                 worker: str | None = None):
        self.directory, self.options = directory, options
        self.path = _own_file(directory, FOOTPRINTS, worker)
        self.input_shape, self.representative = input_shape, representative
        self.by_trial: dict[str, dict] = merged(directory, FOOTPRINTS)
        self._by_architecture: dict[str, dict] = {}

    def reload(self) -> "Footprints":
        self.by_trial = merged(self.directory, FOOTPRINTS)
        return self

    def note(self, trial_id: str, **facts) -> None:
        """Keep facts about a trial beside its footprint (the rows it trains on)."""
        self._save(trial_id, {**self.by_trial.get(trial_id, {}), **facts})

    def measure(self, trial_id: str | None, model, hp) -> dict:
        entry = {**(self.by_trial.get(trial_id, {}) if trial_id is not None else {}),
                 "params": int(model.count_params())}
        if self.options.mobile_budget:
            key = _architecture_key(hp)
            if key not in self._by_architecture:  # hyperband resumes the same architecture in later rounds
                footprint = int8_footprint(model, self.input_shape, self.representative)
                self._by_architecture[key] = {"int8_kb": round(footprint.int8_kb, 2),
                                              "latency_ms": round(footprint.latency_ms, 4)}
            entry.update(self._by_architecture[key])
            entry["penalty"] = self._penalty(entry["int8_kb"], entry["latency_ms"])
        if trial_id is not None:
            self._save(trial_id, entry)
        return entry

    def _save(self, trial_id: str, entry: dict) -> None:
        self.by_trial[trial_id] = entry
        mine = json.loads(self.path.read_text()) if self.path.exists() else {}
        atomic_write(self.path, json.dumps({**mine, trial_id: entry}))

    def _penalty(self, int8_kb: float, latency_ms: float) -> float | None:
        ratios = [int8_kb / self.options.max_model_kb if self.options.max_model_kb else 0.0,
                  latency_ms / self.options.max_latency_ms if self.options.max_latency_ms else 0.0]
        return -max(ratios) if max(ratios) > 1 else None

    def over_budget(self, trial_id: str) -> bool:
        return self.by_trial.get(trial_id, {}).get("penalty") is not None

    def untrained(self, trial_id: str) -> bool:
        """Not trained: over the mobile budget, or not started for want of time (its score only ranks it last)."""
        return self.over_budget(trial_id) or "not_started" in self.by_trial.get(trial_id, {})


class TrialLedger:
    """Timings and footprints of one search folder, and the records they make with keras-tuner's trials."""

    def __init__(self, directory: Path, options: SearchOptions, input_shape: list[int], representative: np.ndarray,
                 worker: str | None = None, n_classes: int = 2):
        self.options, self.n_classes = options, n_classes
        self.timings = Timings(directory, worker)
        self.footprints = Footprints(directory, options, input_shape, representative, worker)

    def reload(self) -> "TrialLedger":
        """Read what every worker has written since."""
        self.timings.reload()
        self.footprints.reload()
        return self

    def own_trials(self) -> list[str]:
        """Ids of the trials this process (or worker) timed."""
        return sorted(self.timings.own)

    def expected_seconds(self, values: dict, rows: int | None, trials) -> float | None:
        """How long a trial with hyperparameters `values` on `rows` rows may take, from the earlier trials that were
        trained, their seconds scaled up to `rows` and, for tree ensembles, to the trees fitted (`trees_grown`: a
        boosted trial of 200 rounds on 9 classes fits 1,800 trees where the portfolio's forest fits 100; on ames's
        1,992 rows it took 54 s where the forest took 3.3 s; a boosted trial the deadline stopped, to the rounds it
        fitted): the longest of the same family and layer structure
        (`layer_structure`); the longest of its family times `NEW_STRUCTURE_FACTOR` when that structure has not run
        yet; the longest of any family when none of its family ran. None before any trial was timed."""
        trees = trees_grown(values, self.n_classes)

        def cost(trial) -> float | None:
            seconds = self.timings.seconds.get(trial.trial_id)
            footprint = self.footprints.by_trial.get(trial.trial_id, {})
            if seconds is None or "not_started" in footprint:
                return None
            seen = footprint.get("rows")
            grown = trees_grown(trial.hyperparameters.values, self.n_classes)
            if grown and footprint.get(ROUNDS_ASKED):  # stopped by the deadline: timed for the rounds it fitted
                grown = max(1, round(grown * footprint[ROUNDS_FITTED] / footprint[ROUNDS_ASKED]))
            seconds *= max(1.0, trees / grown) if trees and grown else 1.0
            return seconds * max(1.0, rows / seen) if rows and seen else seconds

        timed = [(t.hyperparameters.values, cost(t)) for t in trials]
        timed = [(v, c) for v, c in timed if c is not None]
        family = [(v, c) for v, c in timed if v.get("family") == values.get("family")]
        same = [c for v, c in family if layer_structure(v) == layer_structure(values)]
        if same:
            return max(same)
        if family:
            return NEW_STRUCTURE_FACTOR * max(c for _, c in family)
        return max((c for _, c in timed), default=None)

    def record(self, trial) -> TrialRecord:
        """The record of one keras-tuner trial."""
        footprint = self.footprints.by_trial.get(trial.trial_id, {})
        over = footprint.get("penalty") is not None
        untrained = self.footprints.untrained(trial.trial_id)
        message = (trial.message or "").strip().splitlines()
        status = TrialStatus.OVER_BUDGET if over else TrialStatus.NOT_STARTED if untrained \
            else TrialStatus(str(trial.status))
        return TrialRecord(
            trial_id=trial.trial_id,
            status=status,
            family=str(trial.hyperparameters.values.get("family", "")),
            val_score=None if untrained or trial.score is None else float(trial.score),
            seconds=self.timings.seconds.get(trial.trial_id),
            epochs=best_epochs(trial) if trial.status == KT_STATUS.COMPLETED and not untrained else None,
            hyperparameters=model_hyperparameters(trial),
            message=f"not trained: over the mobile budget ({self.options.budget_text()})" if over
            else footprint.get("not_started") or (message[-1] if message else "")
            or (f"copied from trial {footprint[COPIED_FROM]}: a later hyperband round of a model solved in closed "
                "form, on the same rows, is not solved again" if COPIED_FROM in footprint else ""),
            params=footprint.get("params"),
            int8_kb=footprint.get("int8_kb"),
            latency_ms=footprint.get("latency_ms"),
            rows=footprint.get("rows"),
            epochs_run=footprint.get("epochs_run") if not untrained else None,
            ended_at=footprint.get("ended_at"),
            copied_from=footprint.get(COPIED_FROM),
        )

    def records(self, trials) -> list[TrialRecord]:
        """Records of `trials`, by trial id."""
        return [self.record(t) for t in sorted(trials, key=lambda t: t.trial_id)]


TUNER_KEYS = "tuner/"  # keras-tuner's bookkeeping in a trial's values: the round, the trial it continues


def own_values(values: dict) -> dict:
    """Hyperparameter `values` without keras-tuner's `tuner/` bookkeeping."""
    return {k: v for k, v in values.items() if not k.startswith(TUNER_KEYS)}


def model_hyperparameters(trial) -> dict:
    """The trial's architecture and optimiser values, without keras-tuner's `tuner/` bookkeeping."""
    return own_values(trial.hyperparameters.values)


def best_epochs(trial) -> int:
    return int(trial.best_step) + 1 if trial.best_step is not None else 1


def merged(directory: Path, stem: str) -> dict:
    """One dict from the file of every process that wrote `stem` files in `directory`."""
    result: dict = {}
    for path in sorted(directory.glob(f"{stem}*.json")):
        result.update(json.loads(path.read_text()))
    return result


def _own_file(directory: Path, stem: str, worker: str | None) -> Path:
    return directory / (f"{stem}.{worker}.json" if worker else f"{stem}.json")


def layer_structure(values: dict) -> tuple:
    """The family and the values that set its layers' number and kind (`models.hypermodel.LAYER_STRUCTURE`)."""
    return (values.get("family"), *(values.get(name) for name in LAYER_STRUCTURE))


def _architecture_key(hp) -> str:
    """Hyperparameters that shape the inference graph; the optimiser's and dropout's do not."""
    skip = ("learning_rate", "dropout")
    return json.dumps({k: v for k, v in sorted(own_values(hp.values).items()) if k not in skip})
