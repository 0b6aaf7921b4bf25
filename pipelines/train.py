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
from typing import Any, Callable

from data_checks import save_suite
from pipelines import evaluate as evaluate_step
from pipelines.config import TrainConfig
from pipelines.export import ExportData, ExportOptions, ExportResult, export_model, reexport
from pipelines.finetune import FineTuneResult, fine_tune, save_history
from pipelines.load import Splits, load_dataset, split_dataset
from pipelines.model_card import CardFacts
from pipelines.preprocess import fit_preprocessing, model_inputs
from pipelines.report import replace_export_section, write_report
from pipelines.search import SearchOptions, SearchResult, TrialHook, run_search
from pipelines.validate import Validation, validate_splits

StepRunner = Callable[..., Any]


def call_directly(name: str, function: Callable, *args, **kwargs):
    return function(*args, **kwargs)


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
    step_seconds: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None


def train(config: TrainConfig, run_step: StepRunner = call_directly, on_trial_end: TrialHook | None = None) -> RunResult:
    """Run every step; bad data stops the run before any run folder is written."""
    seconds: dict[str, float] = {}

    def step(name, function, *args, **kwargs):
        started = time.monotonic()
        result = run_step(name, function, *args, **kwargs)
        seconds[name] = round(time.monotonic() - started, 2)
        return result

    data, given_test = step("load", load_dataset, config)
    splits: Splits = step("split", split_dataset, data, given_test, test_fraction=config.test_fraction,
                          val_fraction=config.val_fraction, seed=config.seed)
    validation = step("validate", validate_splits, splits, config.model_name)
    run_dir, created = open_run_dir(config)
    try:
        return _train_in(run_dir, config, splits, validation, step, on_trial_end, seconds)
    except BaseException:
        if created and not (run_dir / "search").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth resuming yet
        else:
            _write_status(run_dir, config, "failed", seconds)
        raise


def _train_in(run_dir, config, splits, validation, step, on_trial_end, seconds) -> RunResult:
    _write_status(run_dir, config, "running", seconds)
    save_suite(validation.suite, run_dir / "expectations.json")
    prep = step("preprocess", fit_preprocessing, splits)
    inputs = model_inputs(splits, prep)
    prep.save(run_dir / "preprocessing.json")
    export_data = ExportData.from_inputs(inputs, seed=config.seed)
    export_data.save(run_dir / "export_inputs.npz")
    options = search_options(config)
    search = step("search", run_search, inputs, prep, run_dir / "search", options, on_trial_end)
    search.trial_table.to_csv(run_dir / "search_summary.csv", index=False)
    evaluate_step.plot_search_frontier(search.trials, run_dir / "search_frontier.png", search.objective,
                                       options.max_model_kb, search.best_trial_id)
    tuned = step("fine_tune", fine_tune, inputs, prep, search.best_hyperparameters, run_dir / "finetuned.keras",
                 max_epochs=config.finetune_epochs, batch_size=config.batch_size, seed=config.seed)
    save_history(tuned, run_dir / "history.json")
    evaluation, search_evaluation = step("evaluate", evaluate_both, tuned.model_path, search.best_model_path,
                                         inputs.x_test, inputs.y_test, prep.class_names)
    evaluation.save(run_dir / "metrics.json", search_best=search_evaluation.headline())
    evaluate_step.plot_confusion_matrix(evaluation, run_dir / "confusion_matrix.png")
    evaluate_step.plot_learning_curves(tuned.history, run_dir / "learning_curves.png")
    facts = card_facts(config, splits, search, evaluation)
    facts.save(run_dir / "card.json")
    exported = step("export", export_model, tuned.model_path, prep, export_data, run_dir / "export",
                    export_options(config), facts)
    result = RunResult(run_dir, config, splits.sizes(), _notes(splits), validation, search, tuned,
                       evaluation, search_evaluation, exported, seconds)
    result.report_path = write_report(result, run_dir / "report.md")
    _write_status(run_dir, config, "completed", seconds)
    return result


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
                         max_latency_ms=config.max_latency_ms)


def export_options(config: TrainConfig) -> ExportOptions:
    return ExportOptions(variants=list(config.quantize), int8_io=config.int8_io,
                         tolerance=config.quantization_tolerance)


def card_facts(config: TrainConfig, splits: Splits, search: SearchResult, evaluation) -> CardFacts:
    return CardFacts(model_name=config.model_name, source=str(config.dataset or config.data),
                     family=search.best_hyperparameters["family"], split_sizes=splits.sizes(),
                     test_metrics=evaluation.headline(), per_class=evaluation.per_class,
                     trained_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), data_notes=_notes(splits))


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


def _notes(splits: Splits) -> list[str]:
    return list(dict.fromkeys([*splits.train.notes, *splits.test.notes]))


def _write_status(run_dir: Path, config: TrainConfig, status: str, seconds: dict[str, float]) -> None:
    payload = {"status": status, "updated": datetime.now(timezone.utc).isoformat(),
               "config": json.loads(config.model_dump_json()), "step_seconds": seconds}
    (run_dir / "run.json").write_text(json.dumps(payload, indent=2))


def summary(result: RunResult) -> dict:
    """A small JSON-able result for flows and the CLI; models stay on disk."""
    return {"run_dir": str(result.run_dir), "family": result.search.best_hyperparameters["family"],
            "test": result.evaluation.headline(), "export": export_summary(result.export),
            "report": str(result.report_path)}


def export_summary(export: ExportResult) -> dict:
    recommended = export.recommended
    return {"directory": str(export.directory), "recommended": recommended.variant if recommended else None,
            "keras": asdict(export.keras),
            "variants": [{k: v for k, v in asdict(variant).items() if k not in ("input", "output", "operators")}
                         for variant in export.variants]}
