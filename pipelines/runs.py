"""The run kernel: named steps, run folders, and the one function that finishes a trained model.

Train (`pipelines.train`) and both retrain paths (`pipelines.retrain`) use
it, so every run folder holds the same files whatever made its model:

    run.json            status, options and step seconds
    expectations.json   the great-expectations suite the data passed
    preprocessing.json  statistics and vocabularies inside the model
    export_inputs.npz   test and calibration samples (re-export)
    card.json           facts for the model card (re-export)
    reference.parquet   profile of the data learnt from (drift, next retrain)
    replay.npz          a sample of the inputs learnt from (replay, next retrain)
    finetuned.keras, history.json, learning_curves.png (when the fine-tune ran), metrics.json,
    confusion_matrix.png, export/

Each step goes through `Steps`: called directly by default (tests,
benchmarks, Python), or as a Prefect task when a flow passes its runner.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel

from data_checks import save_suite
from data_checks.drift import write_reference
from models import describe
from pipelines import evaluate as evaluate_step
from pipelines.budget import PredictBatchTimes
from pipelines.config import TrainConfig
from pipelines.evaluate import Evaluation
from pipelines.export.model_card import CardFacts
from pipelines.export.records import ExportData
from pipelines.export.run import export_model
from pipelines.finetune import FineTuneResult, save_history
from pipelines.load import Dataset, Splits
from pipelines.preprocess import ModelInputs, Preprocessing, Replay
from pipelines.text.profile import marked, profile
from pipelines.registry import check_model_name, inside
from pipelines.results import Candidate
from pipelines.transfer import describe_lineage, lineage

# The batch of a timed test pass (`timed_pass`): Keras's predict batch; the first traces the function.
TIMING_BATCH = 32


class Step(StrEnum):
    """Names of the pipeline steps: task names in the Prefect UI, keys of `step_seconds`."""

    CHAMPION = "champion"
    LOAD = "load"
    SPLIT = "split"
    VALIDATE = "validate"
    DRIFT = "drift"
    PREPROCESS = "preprocess"
    SEARCH = "search"
    FINE_TUNE = "fine_tune"
    EVALUATE = "evaluate"
    EXPORT = "export"
    PREDICT = "predict"
    COMPARE = "compare"
    REGISTER = "register"


class RunStatus(StrEnum):
    """`status` in run.json."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


StepRunner = Callable[..., Any]


def call_directly(name: Step, function: Callable, *args, **kwargs):
    return function(*args, **kwargs)


class Steps:
    """Runs each named step through `runner` (directly, or as a Prefect task) and times it."""

    def __init__(self, runner: StepRunner = call_directly):
        self.runner = runner
        self.seconds: dict[str, float] = {}

    def __call__(self, name: Step, function: Callable, *args, **kwargs):
        started = time.monotonic()
        try:
            return self.runner(name, function, *args, **kwargs)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0) + time.monotonic() - started, 2)


@dataclass
class TimedPass:
    """A saved model's test probabilities, the seconds loading and predicting took, and the seconds a row took once
    its predict function was traced."""

    probabilities: np.ndarray
    seconds: float
    row_seconds: float


def new_run_dir(runs_root: Path, name: str) -> Path:
    """A new RUNS_ROOT/NAME/<UTC timestamp> folder; NAME is a model name, so the folder stays under RUNS_ROOT."""
    run_dir = inside(runs_root, runs_root / check_model_name(name) / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    run_dir.mkdir(parents=True)
    return run_dir


def write_status(run_dir: Path, config: BaseModel, status: RunStatus, seconds: dict[str, float],
                 budget: dict | None = None) -> None:
    payload = {"status": status, "updated": datetime.now(timezone.utc).isoformat(),
               "config": json.loads(config.model_dump_json()), "step_seconds": seconds,
               **({"budget": budget} if budget else {})}
    (run_dir / "run.json").write_text(json.dumps(payload, indent=2))


def data_notes(splits: Splits) -> list[str]:
    """The training data's notes, then the test set's own (a --test-data file's), marked as such."""
    own = [f"test set: {note}" for note in splits.test.notes if note not in splits.train.notes]
    return list(dict.fromkeys([*splits.train.notes, *own]))


def finish_candidate(run_dir: Path, config: TrainConfig, splits: Splits, suite, inputs: ModelInputs,
                     prep: Preprocessing, trained: FineTuneResult, hyperparameters: dict, steps: Steps, *,
                     learnt: tuple[np.ndarray, np.ndarray] | None = None,
                     search_best: Path | None = None, prep_fitted: bool = True,
                     predicted: dict[Path, np.ndarray] | None = None) -> Candidate:
    """Score a trained model on the test split, keep what re-export and the next retrain need, and export it.

    `suite` is the great-expectations suite the data passed; `learnt` is what
    the model learnt from as model inputs (default: train + val);
    `search_best`, the search's best checkpoint, is scored beside it;
    `prep_fitted`: `prep` was fitted on `splits.train` (a warm start keeps its champion's);
    `predicted`: test probabilities of saved models already run (`evaluate_models`).
    """
    save_suite(suite, run_dir / "expectations.json")
    save_history(trained, run_dir / "history.json")
    if not trained.not_started:  # a fine-tune that did not start has no curves
        evaluate_step.plot_learning_curves(trained.history, run_dir / "learning_curves.png")
    prep.save(run_dir / "preprocessing.json")
    export_data = ExportData.from_inputs(inputs, seed=config.seed)
    export_data.save(run_dir / "export_inputs.npz")
    x, y = learnt or (np.concatenate([inputs.x_train, inputs.x_val]), np.concatenate([inputs.y_train, inputs.y_val]))
    trained_on = save_training_memory(splits.train.concat(splits.val), x, y, prep, run_dir, config.seed,
                                      counted_rows=len(splits.train.labels) if prep_fitted else 0)
    models = [trained.model_path, *([search_best] if search_best else [])]
    (evaluation, *others), probabilities = steps(Step.EVALUATE, evaluate_models, models, inputs.x_test, inputs.y_test,
                                                 prep.class_names, confusion_png=run_dir / "confusion_matrix.png",
                                                 predicted=predicted)
    search_evaluation = others[0] if others else None
    evaluation.save(run_dir / "metrics.json",
                    **({"search_best": search_evaluation.headline()} if search_evaluation else {}))
    facts = card_facts(config, splits, describe(hyperparameters), evaluation,
                       describe_lineage(lineage(hyperparameters)))
    facts.save(run_dir / "card.json")
    exported = steps(Step.EXPORT, export_model, trained.model_path, prep, export_data, run_dir / "export", config,
                     facts, training=run_dir / "replay.npz", test_probabilities=probabilities)
    return Candidate(run_dir, trained.model_path, prep, hyperparameters, trained, evaluation, exported, trained_on,
                     search_evaluation)


def save_training_memory(seen: Dataset, x: np.ndarray, y: np.ndarray, prep: Preprocessing, run_dir: Path,
                         seed: int, counted_rows: int = 0) -> dict:
    """What a later retrain needs from the data a model learnt from: its profile (drift) and a sample (replay).

    `seen` is the raw data (for the profile), `x`/`y` the model inputs learnt
    from (for replay); its first `counted_rows` rows are those `prep`'s
    vocabulary was counted from. Returns the fingerprint of `seen`.
    """
    write_reference(marked(profile(seen.kind, seen.features, seen.labels, prep.text_columns, prep.text_tokenizer,
                                   counted_rows)), run_dir / "reference.parquet")
    Replay.from_arrays(x, y, prep.class_names, seed).save(run_dir / "replay.npz")
    return seen.fingerprint()


def timed_pass(model_path: Path, x_test: np.ndarray) -> TimedPass:
    """The saved model's probabilities on the test rows, timed: loading and predicting, and apart a row of a batch
    after the first, whose call traced the predict function (the first batch again, warm, when no other is full):
    what the finish's passes cost (`pipelines.budget.RunBudget.expect_finish`). Timed by batch, a row's time
    leaves out what each call costs: a small dense model's read 14 ms over 6 rows, and 0.5 ms so."""
    from models.saving import load_model

    started = time.monotonic()
    model = load_model(model_path)
    batches = PredictBatchTimes()
    probabilities = model.predict(x_test, verbose=0, batch_size=TIMING_BATCH, callbacks=[batches])
    seconds = time.monotonic() - started
    row_seconds = batches.row_seconds(len(x_test), TIMING_BATCH)
    if row_seconds is None:
        first = x_test[:TIMING_BATCH]
        again = PredictBatchTimes()
        model.predict(first, verbose=0, batch_size=TIMING_BATCH, callbacks=[again])
        row_seconds = again.row_seconds(len(first), len(first), skip_first=False)
    return TimedPass(probabilities, seconds, row_seconds)


def evaluate_models(model_paths: list[Path], x_test, y_test, class_names: list[str],
                    confusion_png: Path | None = None,
                    predicted: dict[Path, np.ndarray] | None = None) -> tuple[list[Evaluation], np.ndarray]:
    """Test scores of each saved model, in order, and the first one's test probabilities (the export checks the
    TFLite variants against them instead of predicting again: 5-9 s for a MiniRocket ensemble on 175 series); the
    first one's confusion matrix drawn to `confusion_png`. A path named twice is loaded and run once; a path in
    `predicted` (its test probabilities, from `timed_pass`) is not run again."""
    predicted = dict(predicted or {})
    for path in dict.fromkeys(model_paths):
        if path not in predicted:
            predicted[path] = timed_pass(path, x_test).probabilities
    probabilities = [predicted[path] for path in model_paths]
    evaluations = [evaluate_step.evaluate_predictions(y_test, p, class_names) for p in probabilities]
    if confusion_png is not None:
        evaluate_step.plot_confusion_matrix(evaluations[0], confusion_png)
    return evaluations, probabilities[0]


def card_facts(config: TrainConfig, splits: Splits, family: str, evaluation: Evaluation,
               pretrained: str = "") -> CardFacts:
    return CardFacts(model_name=config.model_name, source=str(config.dataset or config.data),
                     family=family, split_sizes=splits.sizes(),
                     test_metrics=evaluation.headline(), per_class=evaluation.per_class,
                     trained_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     data_notes=data_notes(splits), pretrained=pretrained)
