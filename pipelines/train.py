"""The training pipeline in order: load, split, validate, preprocess, search, fine-tune, evaluate, export.

`train` is the one place that sequences the steps. Each step goes through
`run_step(name, function, *args)`: called directly by default (tests,
benchmarks), or as a Prefect task when `flows.train` passes its runner, so
the flow adds orchestration without repeating the pipeline.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from data_checks import profile_frame, save_suite
from data_checks.drift import write_reference
from pipelines import evaluate as evaluate_step
from pipelines.config import TrainConfig
from pipelines.devices import DeviceOptions, DeviceSetup, using
from pipelines.export import ExportData, ExportOptions, ExportResult, export_model, reexport
from pipelines.finetune import FineTuneResult, fine_tune, save_history
from pipelines.load import Dataset, Splits, load_dataset, split_dataset
from pipelines.model_card import CardFacts
from pipelines.preprocess import Preprocessing, Replay, fit_preprocessing, model_inputs
from pipelines.registry import ModelVersion, Registry, run_files, version_record
from pipelines.report import replace_export_section, write_report
from pipelines.search import SearchOptions, SearchResult, TrialHook, fit_to_data, run_search

if TYPE_CHECKING:
    from pipelines.parallel import Launcher
from pipelines.validate import Validation, validate_splits

StepRunner = Callable[..., Any]


def call_directly(name: str, function: Callable, *args, **kwargs):
    return function(*args, **kwargs)


class Steps:
    """Runs each named step through `runner` (directly, or as a Prefect task) and times it."""

    def __init__(self, runner: StepRunner = call_directly):
        self.runner = runner
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, function: Callable, *args, **kwargs):
        started = time.monotonic()
        try:
            return self.runner(name, function, *args, **kwargs)
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0) + time.monotonic() - started, 2)


@dataclass
class RunResult:
    """Where the run wrote its files and the numbers the report shows."""

    run_dir: Path
    config: TrainConfig
    splits: dict[str, int]
    data_notes: list[str]
    validation: Validation
    search: SearchResult
    finetune: FineTuneResult
    evaluation: evaluate_step.Evaluation
    search_evaluation: evaluate_step.Evaluation
    export: ExportResult
    prep: Preprocessing
    data_summary: dict = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None
    registered: ModelVersion | None = None
    devices: str = ""


def train(config: TrainConfig, run_step: StepRunner = call_directly, on_trial_end: TrialHook | None = None,
          launch: "Launcher | None" = None) -> RunResult:
    """Run every step; bad data stops the run before any run folder is written.

    `launch` places parallel search workers (`config.workers` > 1); default: `pipelines.parallel.dask_workers`.
    """
    steps = Steps(run_step)
    data, given_test = steps("load", load_dataset, config)
    splits: Splits = steps("split", split_dataset, data, given_test, test_fraction=config.test_fraction,
                           val_fraction=config.val_fraction, seed=config.seed)
    validation = steps("validate", validate_splits, splits, config.model_name)
    result = train_on_splits(config, splits, validation, steps, on_trial_end, launch)
    if config.registry is not None:
        result.registered = steps("register", register_trained, result)
    return result


def train_on_splits(config: TrainConfig, splits: Splits, validation: Validation, steps: Steps,
                    on_trial_end: TrialHook | None = None, launch: "Launcher | None" = None) -> RunResult:
    """Everything after validation, in `config.run_dir` or a new run folder (removed if nothing is worth resuming)."""
    run_dir, created = open_run_dir(config)
    try:
        with using(device_options(config)) as devices:
            return _train_in(run_dir, config, splits, validation, steps, on_trial_end, launch, devices)
    except BaseException:
        if created and not (run_dir / "search").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            write_status(run_dir, config, "failed", steps.seconds)
        raise


def _train_in(run_dir, config, splits, validation, step: Steps, on_trial_end, launch,
              devices: DeviceSetup) -> RunResult:
    write_status(run_dir, config, "running", step.seconds)
    save_suite(validation.suite, run_dir / "expectations.json")
    prep = step("preprocess", fit_preprocessing, splits)
    inputs = model_inputs(splits, prep)
    prep.save(run_dir / "preprocessing.json")
    trained_on = save_training_memory(splits.train.concat(splits.val), np.concatenate([inputs.x_train, inputs.x_val]),
                                      np.concatenate([inputs.y_train, inputs.y_val]), prep.class_names, run_dir,
                                      config.seed)
    export_data = ExportData.from_inputs(inputs, seed=config.seed)
    export_data.save(run_dir / "export_inputs.npz")
    options, schedule_note = fit_to_data(search_options(config), len(inputs.x_train))
    search = step("search", run_search, inputs, prep, run_dir / "search", options, on_trial_end, launch, devices)
    search.trial_table.to_csv(run_dir / "search_summary.csv", index=False)
    evaluate_step.plot_search_frontier(search.trials, run_dir / "search_frontier.png", search.objective,
                                       options.max_model_kb, search.best_trial_id)
    tuned = step("fine_tune", fine_tune, inputs, prep, search.best_hyperparameters, run_dir / "finetuned.keras",
                 max_epochs=config.finetune_epochs, batch_size=options.batch_size, seed=config.seed,
                 devices=devices)
    save_history(tuned, run_dir / "history.json")
    evaluation, search_evaluation = step("evaluate", evaluate_both, tuned.model_path, search.best_model_path,
                                         inputs.x_test, inputs.y_test, prep.class_names)
    evaluation.save(run_dir / "metrics.json", search_best=search_evaluation.headline())
    evaluate_step.plot_confusion_matrix(evaluation, run_dir / "confusion_matrix.png")
    evaluate_step.plot_learning_curves(tuned.history, run_dir / "learning_curves.png")
    facts = card_facts(config, splits, search.best_hyperparameters["family"], evaluation)
    facts.save(run_dir / "card.json")
    exported = step("export", export_model, tuned.model_path, prep, export_data, run_dir / "export",
                    export_options(config), facts)
    notes = data_notes(splits) + ([schedule_note] if schedule_note else [])
    result = RunResult(run_dir, config, splits.sizes(), notes, validation, search, tuned,
                       evaluation, search_evaluation, exported, prep, trained_on, step.seconds,
                       devices=devices.describe())
    result.report_path = write_report(result, run_dir / "report.md")
    write_status(run_dir, config, "completed", step.seconds)
    return result


def save_training_memory(seen: Dataset, x: np.ndarray, y: np.ndarray, class_names: list[str], run_dir: Path,
                         seed: int) -> dict:
    """What a later retrain needs from the data a model learnt from: its profile (drift) and a sample (replay).

    `seen` is the raw data (for the profile), `x`/`y` the model inputs learnt
    from (for replay). Returns the fingerprint of `seen`.
    """
    write_reference(profile_frame(seen.kind, seen.features, seen.labels), run_dir / "reference.parquet")
    Replay.from_arrays(x, y, class_names, seed).save(run_dir / "replay.npz")
    return seen.fingerprint()


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
                                {"promoted": champion is None, "reason": reason})
        return registry.register(name, run_files(result.run_dir), record, promote=champion is None)


def reexport_run(run_dir: Path, options: ExportOptions) -> ExportResult:
    """Export a finished run again (other quantize modes, int8 I/O) and update its report; no retraining."""
    result = reexport(run_dir, options)
    replace_export_section(Path(run_dir) / "report.md", result)
    return result


def evaluate_both(model_path: Path, search_model_path: Path, x_test, y_test, class_names):
    """Test scores of the fine-tuned model and of the search's best checkpoint, side by side."""
    import keras

    return tuple(evaluate_step.evaluate_model(keras.models.load_model(p), x_test, y_test, class_names)
                 for p in (model_path, search_model_path))


def search_options(config: TrainConfig) -> SearchOptions:
    return SearchOptions(tuner=config.tuner, objective=config.objective, budget_minutes=config.budget_minutes,
                         max_trials=config.max_trials, max_epochs=config.max_epochs, batch_size=config.batch_size,
                         families=config.families, seed=config.seed, max_model_kb=config.max_model_kb,
                         max_latency_ms=config.max_latency_ms, min_trial_steps=config.min_trial_steps,
                         workers=config.workers,
                         scheduler_address=config.scheduler_address, devices=device_options(config))


def device_options(config: TrainConfig) -> DeviceOptions:
    return DeviceOptions(mixed_precision=config.mixed_precision, xla=config.xla, strategy=config.strategy)


def export_options(config: TrainConfig) -> ExportOptions:
    return ExportOptions(variants=list(config.quantize), int8_io=config.int8_io,
                         tolerance=config.quantization_tolerance)


def card_facts(config: TrainConfig, splits: Splits, family: str, evaluation) -> CardFacts:
    return CardFacts(model_name=config.model_name, source=str(config.dataset or config.data),
                     family=family, split_sizes=splits.sizes(),
                     test_metrics=evaluation.headline(), per_class=evaluation.per_class,
                     trained_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), data_notes=data_notes(splits))


def open_run_dir(config: TrainConfig) -> tuple[Path, bool]:
    """The given run folder (to resume) or a new runs/<name>/<UTC timestamp>; True if created now."""
    if config.run_dir is not None:
        existed = config.run_dir.exists()
        config.run_dir.mkdir(parents=True, exist_ok=True)
        return config.run_dir, not existed
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = config.runs_root / config.model_name / stamp
    run_dir.mkdir(parents=True)
    return run_dir, True


def data_notes(splits: Splits) -> list[str]:
    return list(dict.fromkeys([*splits.train.notes, *splits.test.notes]))


def write_status(run_dir: Path, config, status: str, seconds: dict[str, float]) -> None:
    payload = {"status": status, "updated": datetime.now(timezone.utc).isoformat(),
               "config": json.loads(config.model_dump_json()), "step_seconds": seconds}
    (run_dir / "run.json").write_text(json.dumps(payload, indent=2))


def summary(result: RunResult) -> dict:
    """A small JSON-able result for flows and the CLI; models stay on disk."""
    return {"run_dir": str(result.run_dir), "family": result.search.best_hyperparameters["family"],
            "test": result.evaluation.headline(), "export": export_summary(result.export),
            "report": str(result.report_path),
            "registered": result.registered.ref if result.registered else None,
            "champion": bool(result.registered and result.registered.record["decision"]["promoted"])}


def export_summary(export: ExportResult) -> dict:
    recommended = export.recommended
    return {"directory": str(export.directory), "recommended": recommended.variant if recommended else None,
            "keras": asdict(export.keras),
            "variants": [{k: v for k, v in asdict(variant).items() if k not in ("input", "output", "operators")}
                         for variant in export.variants]}
