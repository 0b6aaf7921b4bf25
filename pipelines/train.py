"""The training pipeline in order: load, split, validate, preprocess, search, fine-tune, then finish.

`train` is the one place that sequences the steps; finishing the model
(evaluate, keep what re-export and retraining need, export) is the run
kernel's (`pipelines.runs.finish_candidate`), shared with retraining.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from models import describe, member_hyperparameters
from pipelines.budget import FinishCost, RunBudget
from pipelines.config import TrainConfig
from pipelines.devices import DeviceSetup, using
from pipelines.export.records import REPRESENTATIVE_SAMPLES
from pipelines.finetune import (
    FineTuneResult,
    cheap_refit,
    fine_tune,
    fitted_by_search,
    keep_search_model,
    refit_overrun,
    search_model_instead,
)
from pipelines.imbalance import imbalance_note
from pipelines.load import Splits, load_dataset, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs
from pipelines.registry import ModelVersion, Registry, run_files, version_record
from pipelines.report import write_report
from pipelines.results import RunResult
from pipelines.runs import (
    RunStatus,
    Step,
    StepRunner,
    Steps,
    call_directly,
    data_notes,
    finish_candidate,
    new_run_dir,
    timed_pass,
    write_status,
)
from pipelines.search import SearchResult, fit_to_data, run_search
from pipelines.search.anytime import ANYTIME_FILE, plot_anytime
from pipelines.search.frontier import plot_search_frontier
from pipelines.search.gradients import released_gradients
from pipelines.search.heap import frozen_heap
from pipelines.search.parallel import Launcher
from pipelines.search.records import TrialHook
from pipelines.transfer import lineage, pretrained_base
from pipelines.validate import Validation, validate_splits


PREPARED = (Step.LOAD, Step.SPLIT, Step.VALIDATE)  # the data's preparation (`RunBudget.for_rows`)
# The end of the report's note when the search's model ships in place of a fine-tune (not started, or cut short).
SEARCH_MODEL_SHIPS = ("the search's model ships instead (as its trials trained it: on the training split or a fold of "
                      "it, a head on shared features on every row); a larger --budget-minutes leaves the fine-tune "
                      "more time")


def train(config: TrainConfig, run_step: StepRunner = call_directly, on_trial_end: TrialHook | None = None,
          launch: Launcher | None = None) -> RunResult:
    """Run every step; bad data stops the run before any run folder is written.

    `launch` places parallel search workers (`config.workers` > 1); default: `pipelines.search.parallel.dask_workers`.
    """
    steps = Steps(run_step)
    data, given_test = steps(Step.LOAD, load_dataset, config)
    splits: Splits = steps(Step.SPLIT, split_dataset, data, given_test, test_fraction=config.test_fraction,
                           val_fraction=config.val_fraction, seed=config.seed)
    validation = steps(Step.VALIDATE, validate_splits, splits, config.model_name)
    result = train_on_splits(config, splits, validation, steps, on_trial_end, launch)
    if config.registry is not None:
        result.registered = steps(Step.REGISTER, register_trained, result)
    return result


def train_on_splits(config: TrainConfig, splits: Splits, validation: Validation, steps: Steps,
                    on_trial_end: TrialHook | None = None, launch: Launcher | None = None) -> RunResult:
    """Everything after validation, in `config.run_dir` or a new run folder (removed if nothing is worth resuming)."""
    run_dir, created = open_run_dir(config)
    try:
        with using(config) as devices, released_gradients(), frozen_heap():
            return _train_in(run_dir, config, splits, validation, steps, on_trial_end, launch, devices)
    except BaseException:
        if created and not (run_dir / "search").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            write_status(run_dir, config, RunStatus.FAILED, steps.seconds)
        raise


def _train_in(run_dir: Path, config: TrainConfig, splits: Splits, validation: Validation, steps: Steps,
              on_trial_end: TrialHook | None, launch: Launcher | None, devices: DeviceSetup) -> RunResult:
    write_status(run_dir, config, RunStatus.RUNNING, steps.seconds)
    prep = steps(Step.PREPROCESS, fit_preprocessing, splits)
    base, prep = pretrained_base(config, prep)
    inputs = model_inputs(splits, prep)
    options, schedule_note = fit_to_data(config, len(inputs.x_train))
    budget = RunBudget.for_rows(config.budget_minutes, len(inputs.x_train) + len(inputs.x_val),
                                prepared_seconds=sum(steps.seconds.get(step, 0.0) for step in PREPARED))
    options = options.model_copy(update={"budget_minutes": budget.search_minutes})
    finish = FinishCost.of(len(inputs.x_test), config, min(REPRESENTATIVE_SAMPLES, len(inputs.x_train)),
                           budget.finish_reserve)
    search_started = time.monotonic()
    search = steps(Step.SEARCH, run_search, inputs, prep, run_dir / "search", options, on_trial_end, launch, devices,
                   base, finish)
    budget.search_cut = search.finish_cut
    search.trial_table.to_csv(run_dir / "search_summary.csv", index=False)
    plot_search_frontier(search.trials, run_dir / "search_frontier.png", search.objective, options.max_model_kb,
                         search.best_trial_id)
    plot_anytime(search.trials, run_dir / ANYTIME_FILE, search.objective, search.seconds)
    members = member_hyperparameters(search.best_hyperparameters)
    search_seconds = time.monotonic() - search_started
    # the search's model is evaluated now, timed: a part of the finish, paid from its reserve
    searched = steps(Step.EVALUATE, timed_pass, search.best_model_path, inputs.x_test)
    budget.expect_finish(finish, searched.seconds, searched.row_seconds)
    deadline = budget.finetune_deadline(search_seconds)
    fitted = fitted_by_search(members, search.cross_validated)
    budget.refit_needed = not fitted
    overrun = None if fitted else fine_tune_overrun(budget, deadline, members, search.refit_seconds(budget.rows),
                                                    search.member_bags())
    if fitted or overrun:
        tuned = steps(Step.FINE_TUNE, search_model_instead, search.best_model_path, run_dir / "finetuned.keras",
                      fitted=fitted)
    else:
        tuned = steps(Step.FINE_TUNE, fine_tune, inputs, prep, search.best_hyperparameters,
                      run_dir / "finetuned.keras", max_epochs=finetune_epochs(config.finetune_epochs, search),
                      batch_size=options.batch_size, seed=config.seed, class_weight=config.class_weight,
                      devices=devices, deadline=deadline, bags=search.member_bags())
    budget.finetune_seconds, budget.finetune_stopped = tuned.seconds, tuned.stopped_at_deadline
    shipped_note, needed = bag_note(tuned, len(members)), search.epochs_to_best()
    if tuned.fitted_by_search:
        shipped_note = (f"{describe(search.best_hyperparameters)} ships as the search fitted it: each head solved on "
                        "every row of train+val, as a refit would (no fine-tune needed)")
    elif tuned.not_started:
        shipped_note = (f"the fine-tune of {describe(search.best_hyperparameters)} was not started: {overrun}: "
                        f"{SEARCH_MODEL_SHIPS}")
    elif tuned.cut_short(needed):
        which = " (its shortest-trained member)" if tuned.least_epochs < tuned.epochs else ""
        short = ("before its boosting rounds were all fitted" if tuned.unfinished_solves else
                 f"after {tuned.least_epochs} epochs{which}, short of the {needed} the search's trials needed")
        shipped_note = (f"the run's deadline stopped the fine-tune of {describe(search.best_hyperparameters)} {short}: "
                        f"{SEARCH_MODEL_SHIPS}")
        tuned = keep_search_model(tuned, search.best_model_path)
    # every member shipped as the search's own bag (`pipelines.finetune`): the search's model is the shipped one
    predicted = {path: searched.probabilities for path in [search.best_model_path]
                 + ([tuned.model_path] if tuned.search_model_kept else [])}
    model = finish_candidate(run_dir, config, splits, validation.suite, inputs, prep, tuned,
                             search.best_hyperparameters, steps,
                             search_best=tuned.model_path if tuned.bagged == len(members) else search.best_model_path,
                             predicted=predicted)
    chosen = any(m.get("balance_classes", True) for m in members)
    imbalance = imbalance_note(np.concatenate([inputs.y_train, inputs.y_val]), prep.class_names, config.class_weight,
                               chosen, config.objective)
    notes = data_notes(splits) + [note for note in (schedule_note, imbalance, shipped_note) if note]
    result = RunResult(config, splits.sizes(), notes, validation, search, model, steps.seconds,
                       devices=devices.describe(), budget=budget, base=base)
    result.report_path = write_report(result, run_dir / "report.md")
    write_status(run_dir, config, RunStatus.COMPLETED, steps.seconds, budget=budget.to_dict())
    return result


def fine_tune_overrun(budget: RunBudget, deadline: float, members: list[dict], expected: list[float],
                      bags: list[Path | None] | None = None) -> str | None:
    """Why the fine-tune of `members` (each's refit expected to take `expected` seconds; `bags`: the members that
    ship as their bags, `SearchResult.member_bags`) should not start, the plainest reason first: a refit that would
    overrun even the time the finish's estimate took from it (`refit_overrun`: nycflights13's kernel, 682 s expected,
    where the finish's estimate asked for 26 s), then that estimate (`finish_overrun`) unless the refit is cheap
    (`cheap_refit`: it starts, a few seconds past its deadline, noted in `budget.cheap_refit`), then a refit that would
    overrun what the estimate left; None if it should start."""
    left = deadline - time.time()
    whole = refit_overrun(members, expected, left + budget.finetune_giveup)
    if whole or not budget.finetune_giveup:
        return whole
    if cheap_refit(members, expected, bags or [None] * len(members)):
        budget.cheap_refit = True
        return None
    return finish_overrun(budget, deadline) or refit_overrun(members, expected, left)


def finish_overrun(budget: RunBudget, deadline: float) -> str | None:
    """Why the fine-tune should not start: the chosen model's evaluation and export, expected to take longer than
    the reserve holds (`RunBudget.expect_finish`) by more than the search's early end gave them, need all of its
    time; None if some is left."""
    if not budget.finetune_giveup or deadline > time.time():
        return None
    covered = f", {budget.search_cut:.0f} s of it by the search's early end" if budget.search_cut else ""
    return (f"the chosen model's evaluation and export were expected to take {budget.finish_excess:.0f} s more than "
            f"the budget's reserve for them (its evaluation took {budget.pass_seconds:.1f} s){covered}: the rest "
            "was the fine-tune's time and more")


def bag_note(tuned: FineTuneResult, members: int) -> str:
    """The report's line on what ships when the search's bags of fold models do (`pipelines.finetune`), for a
    model of `members` members (1: a single model)."""
    if not tuned.bagged:
        return ""
    if members == 1:
        which, them = "the chosen model ships", "it"
    elif tuned.bagged == 1:
        which, them = f"one of the ensemble's {members} members ships", "it"
    else:
        which, them = f"{tuned.bagged} of the ensemble's {members} members ship", "them"
    return (f"k-fold selection: {which} as the search trained and scored {them}: the average of the fold models, "
            f"each stopped at its best epoch on its own held-out fold (a bag), not refitted on train+val")


def finetune_epochs(most: int, search: SearchResult) -> int:
    """The fine-tune's epochs: at most `most`; and, where the chosen trials peaked on the validation split before
    their last epoch, the epochs they took to peak: the fine-tune's early stopping watches the training loss (the
    validation rows are training rows now), which falls long after the model starts to overfit."""
    return min(most, search.epochs_to_best()) if search.peaked_early() else most


def register_trained(result: RunResult) -> ModelVersion:
    """Register a trained run; it becomes champion only if the model has none (retrain decides after that)."""
    registry = Registry(result.config.registry)
    name = result.config.model_name
    with registry.lock(name, "kerasflow train"):
        champion = registry.champion(name, verify=False)
        reason = (f"first version of {name!r}" if champion is None else
                  f"trained outside a retrain while {champion.version} is champion; `kerasflow retrain` compares "
                  f"and promotes, or `kerasflow models promote {name}@VERSION`")
        record = version_record(result.config, "train", None, result.run_dir, result.evaluation,
                                result.search.best_hyperparameters, result.data_summary,
                                {"promoted": champion is None, "reason": reason},
                                pretrained=lineage(result.search.best_hyperparameters))
        return registry.register(name, run_files(result.run_dir), record, promote=champion is None)


def open_run_dir(config: TrainConfig) -> tuple[Path, bool]:
    """The given run folder (to resume) or a new runs/<name>/<UTC timestamp>; True if created now."""
    if config.run_dir is not None:
        existed = config.run_dir.exists()
        config.run_dir.mkdir(parents=True, exist_ok=True)
        return config.run_dir, not existed
    return new_run_dir(config.runs_root, config.model_name), True
