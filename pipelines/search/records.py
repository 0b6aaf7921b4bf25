"""What a search leaves behind: one record per trial, the workers' reports and the search result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Callable

import pandas as pd

from pipelines.search.fidelity import PATIENCE


class TrialStatus(StrEnum):
    """Status of a trial record: keras-tuner's trial statuses, plus `OVER_BUDGET` (not trained: too big or slow
    for the phone) and `NOT_STARTED` (solved in one go, or every fold trained at once, and its family's trials
    too slow for the search time left: no more of that family are drawn)."""

    RUNNING = "RUNNING"
    IDLE = "IDLE"
    INVALID = "INVALID"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    OVER_BUDGET = "OVER_BUDGET"
    NOT_STARTED = "NOT_STARTED"


@dataclass
class TrialRecord:
    """One row of search_summary.csv.

    Attributes:
        trial_id: keras-tuner's trial id.
        status: a `TrialStatus` value.
        family: architecture family (dense, cnn, lstm).
        val_score: the objective on the validation split; None if not trained or failed.
        seconds: wall time of the trial.
        epochs: epochs to the best score (completed trials only).
        hyperparameters: the architecture and optimiser values, without keras-tuner's `tuner/` keys.
        message: why a trial failed or was not trained.
        params: parameter count of the trial's model.
        int8_kb: int8 TFLite size of the architecture (under a mobile budget only).
        latency_ms: batch-1 int8 latency of the architecture (under a mobile budget only).
        rows: training rows the trial learnt from (a share of them on large data: `pipelines.search.subsample`;
            under k-fold, one fold's training rows).
        epochs_run: epochs the trial trained (under k-fold, the most of its folds); None if solved in closed form
            or not trained. Trained to convergence (`pipelines.search.fidelity`), fewer than the cap when its
            validation loss stopped improving.
        ended_at: when the trial ended (Unix time), for the best score against elapsed time (`.anytime`).
        copied_from: the trial whose model and scores this one copied instead of training: a later hyperband round
            of a trial solved in closed form, on the same rows (`pipelines.search.tuner`); None for a trained one.
    """

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
    rows: int | None = None
    epochs_run: int | None = None
    ended_at: float | None = None
    copied_from: str | None = None


TrialHook = Callable[[TrialRecord, int], None]
"""Called after every finished trial with its record and the number of trials so far."""


@dataclass
class WorkerReport:
    """One parallel search worker: where it ran and which trials it trained.

    Attributes:
        tuner_id: keras-tuner's worker id (worker1, worker2, ...).
        host: the machine's host name.
        pid: the worker's process id.
        trials: ids of the trials this worker trained.
        seconds: the worker's wall time.
        devices: `DeviceSetup.describe()` of the worker.
    """

    tuner_id: str
    host: str
    pid: int
    trials: list[str]
    seconds: float
    devices: str


@dataclass
class EnsembleChoice:
    """Trials averaged into one model.

    Attributes:
        members: trial ids, in the order they were added (the best single trial first).
        score: the ensemble's selection score on the held-out rows; single_score: the best trial's.
        why: how the members were chosen, for the report ("" for greedy selection on held-out rows).
    """

    members: list[str]
    score: float
    single_score: float
    why: str = ""


@dataclass
class SearchResult:
    """The outcome of an architecture search.

    Attributes:
        objective: what was maximised (val_accuracy or val_macro_f1).
        best_trial_id, best_val_score, best_hyperparameters, best_epochs: the chosen trial.
        best_model_path: the chosen model as the search trained it (the best trial's, or the ensemble's members
            averaged), saved in float32 (`search_best.keras`).
        trials: a record per trial, by trial id.
        families: the families searched; skipped_families: the others, with why.
        seconds: wall time of this search call; budget_spent: it stopped at the deadline.
        resumed_trials: trials found from an interrupted earlier search.
        mobile_budget: the mobile budget in words ("" without one).
        workers: one report per parallel worker (empty in a one-process search).
        cross_validated: trials were scored by k-fold on train+val (`pipelines.search.selection`).
        ensemble: the trials averaged into `best_hyperparameters` (family "ensemble"), or None.
        scored_rows: validation rows the trials were scored on, when fewer than the split's
            (`pipelines.search.subsample.validation_rows`); None: all of them.
        fidelity: how long trials trained, a `pipelines.search.fidelity.Fidelity` value: converged (small data),
            hyperband (its rounds) or max_epochs; "" for a result saved before it was recorded.
        bags: chosen trial id -> the trial folder whose bag of fold models ships as it (`pipelines.search.towers`).
        choice: why the chosen trial is not the best-scored one (`pipelines.search.winner`); "" when it is.
        finish_cut: seconds the search ended earlier for its trials' expected finish
            (`pipelines.budget.FeatureTimes.search_cut`).
    """

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
    workers: list[WorkerReport] = field(default_factory=list)
    cross_validated: bool = False
    ensemble: EnsembleChoice | None = None
    scored_rows: int | None = None
    fidelity: str = ""
    bags: dict[str, str] = field(default_factory=dict)
    choice: str = ""
    finish_cut: float = 0.0

    def epochs_to_best(self) -> int:
        """Epochs the chosen trials (an ensemble's members) trained to their best score: the best epoch on the
        validation split; under k-fold, the folds' epochs less the patience that ended them."""
        trained = self._chosen_by_epochs()
        if self.cross_validated:
            return max([1, *[t.epochs_run - PATIENCE for t in trained]])
        return max([self.best_epochs, *[t.epochs or 1 for t in trained]])

    def peaked_early(self) -> bool:
        """Whether every chosen trial trained by epochs (an ensemble's members) reached its best validation score
        before its last epoch, on a holdout split: it then overfits past `epochs_to_best`."""
        if self.cross_validated:
            return False
        trained = self._chosen_by_epochs()
        return bool(trained) and all((t.epochs or t.epochs_run) < t.epochs_run for t in trained)

    def refit_seconds(self, rows: int) -> list[float]:
        """For each chosen trial (`chosen_ids`), the seconds its refit on `rows` rows (train+val) may take: one fit
        of its trial (of the trial it copied, for a copy) scaled to `rows`; 0 for a member that ships as its bag.
        Under k-fold a trial's seconds are its k fits, whose held-out folds partition the `rows`: one fit is the
        share of its held-out fold. Rows scale the seconds linearly, which a solve that grows faster (trees, the
        kernel's) outgrows: an estimate on the short side."""
        by_id = {t.trial_id: t for t in self.trials}
        expected = []
        for trial_id in self.chosen_ids:
            trial = by_id[trial_id]
            trial = by_id.get(trial.copied_from, trial)
            if trial_id in self.bags or not trial.seconds or not trial.rows:
                expected.append(0.0)
                continue
            one_fit = trial.seconds * (rows - trial.rows) / rows if self.cross_validated else trial.seconds
            expected.append(one_fit * max(1.0, rows / trial.rows))
        return expected

    def member_bags(self) -> list[Path | None]:
        """For each chosen trial (an ensemble's members, or the best one), the folder of the bag that ships as it."""
        return [Path(self.bags[m]) if m in self.bags else None for m in self.chosen_ids]

    @property
    def chosen_ids(self) -> list[str]:
        """The chosen trials: an ensemble's members, or the best one."""
        return self.ensemble.members if self.ensemble else [self.best_trial_id]

    def _chosen_by_epochs(self) -> list[TrialRecord]:
        """The chosen trials that were trained by epochs."""
        return [t for t in self.trials if t.trial_id in self.chosen_ids and t.epochs_run]

    @property
    def trial_table(self) -> pd.DataFrame:
        rows = [{**asdict(t), "hyperparameters": json.dumps(t.hyperparameters)} for t in self.trials]
        return pd.DataFrame(rows, columns=list(TrialRecord.__dataclass_fields__))
