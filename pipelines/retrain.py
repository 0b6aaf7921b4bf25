"""The retraining pipeline: new data against the champion, a challenger, and a decision.

Order: champion (checksums verified) -> load and split the new data (the
test split is the fresh holdout) -> validate against the champion's suite ->
drift against the champion's training data -> challenger (warm-start
fine-tune, or a fresh search when asked or when the data drifted) -> both
models scored on the holdout -> promote or keep (`pipelines.promotion`) ->
register, last. The model's registry lock is held throughout, so two
retrains of one model never race to the champion pointer.

The run folder is named after the champion, the new data's fingerprint and
the mode, so running the same retrain again after a crash reuses it and an
interrupted search resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_checks import load_suite
from data_checks.drift import DriftReport, read_reference
from models.saving import load_model
from pipelines import evaluate as evaluate_step
from pipelines.columns import from_json
from pipelines.config import RetrainConfig, RetrainMode, TrainConfig
from pipelines.errors import DriftDetected, RegistryError
from pipelines.evaluate import Evaluation
from pipelines.finetune import warm_start
from pipelines.load import Dataset, Splits, load_dataset, split_dataset
from pipelines.preprocess import Preprocessing, Replay, encode_features, model_inputs
from pipelines.text.profile import drift_against, profile
from pipelines.promotion import decide
from pipelines.registry import MODEL_FILE, PREPROCESSING_FILE, ModelVersion, Registry, run_files, version_record
from pipelines.report import write_retrain_report
from pipelines.results import Challenger, RetrainResult
from pipelines.runs import RunStatus, Step, StepRunner, Steps, call_directly, finish_candidate, write_status
from pipelines.search.parallel import Launcher
from pipelines.search.records import TrialHook
from pipelines.train import train_on_splits
from pipelines.transfer import lineage
from pipelines.validate import validate_against, validate_splits


@dataclass
class Champion:
    """The registered model to beat, with what a retrain needs from its version folder.

    Attributes:
        version: the registry version; prep: its preprocessing; suite: its great-expectations suite.
        reference: profile of its training data (drift); replay: a sample of its inputs (None if not kept).
        config: the options it was trained with.
    """

    version: ModelVersion
    prep: Preprocessing
    suite: object
    reference: pd.DataFrame
    replay: Replay | None
    config: TrainConfig

    @property
    def model_path(self) -> Path:
        return self.version.file(MODEL_FILE)

    @property
    def family(self) -> str:
        return self.version.record.get("family") or self.version.record["hyperparameters"]["family"]


def retrain(config: RetrainConfig, run_step: StepRunner = call_directly,
            on_trial_end: TrialHook | None = None, launch: Launcher | None = None) -> RetrainResult:
    """Retrain `config.name` on new data; the champion changes only if the challenger wins on the holdout.

    A search challenger uses the champion's `workers`, placed by `launch` (see `pipelines.train.train`).
    """
    registry = Registry(config.registry)
    steps = Steps(run_step)
    with registry.lock(config.name, f"kerasflow retrain --mode {config.mode}"):
        champion = steps(Step.CHAMPION, load_champion, registry, config.name)
        data_config = new_data_config(champion.config, config)
        data, given_test = steps(Step.LOAD, load_dataset, data_config, from_json(champion.prep.roles) or None)
        splits: Splits = steps(Step.SPLIT, split_dataset, data, given_test, test_fraction=data_config.test_fraction,
                               val_fraction=data_config.val_fraction, seed=config.seed)
        validation = steps(Step.VALIDATE, validate_against, splits, champion.suite, f"suite of {champion.version.ref}")
        drift = steps(Step.DRIFT, check_drift, champion, splits, config)
        mode, mode_reason = choose_mode(config.mode, drift, champion.version.ref)
        run_dir = retrain_dir(config, champion, data.fingerprint()["sha256"], mode)
        data_config = data_config.model_copy(update={"run_dir": run_dir})
        try:
            if mode == "finetune":
                challenger = finetune_challenger(champion, splits, data_config, config, steps)
            else:
                challenger = search_challenger(champion, splits, data_config, steps, on_trial_end, launch)
        except Exception:
            if run_dir.exists():
                write_status(run_dir, config, RunStatus.FAILED, steps.seconds)
            raise
        champion_eval, challenger_eval = steps(Step.COMPARE, score_on_holdout, champion, challenger, splits.test)
        decision = decide(champion_eval, challenger_eval, metric=config.metric,
                          min_improvement=config.min_improvement, max_recall_drop=config.max_recall_drop)
        result = RetrainResult(config, champion.version.ref, mode, mode_reason, run_dir, validation, drift,
                               challenger, champion_eval, challenger_eval, decision, splits.sizes(),
                               step_seconds=steps.seconds)
        challenger_eval.save(run_dir / "metrics.json", champion=champion_eval.headline())
        evaluate_step.plot_confusion_matrix(challenger_eval, run_dir / "confusion_matrix.png")
        write_retrain_report(result, run_dir / "retrain_report.md")
        result.version = steps(Step.REGISTER, register_challenger, registry, result, data_config)
        result.champion_now = registry.champion(config.name, verify=False).version
    write_status(run_dir, config, RunStatus.COMPLETED, steps.seconds)
    result.report_path = write_retrain_report(result, run_dir / "retrain_report.md")
    return result


def load_champion(registry: Registry, name: str) -> Champion:
    """The champion and its suite, drift reference, replay sample and training options; checksums first."""
    version = registry.required_champion(name)
    try:
        replay = Replay.load(version.file("replay.npz")) if version.file("replay.npz").exists() else None
        return Champion(version, Preprocessing.load(version.file(PREPROCESSING_FILE)),
                        load_suite(version.file("expectations.json")), read_reference(version.file("reference.parquet")),
                        replay, TrainConfig.model_validate(version.record["config"]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RegistryError(f"{version.ref}: cannot read its files in {version.path} ({exc})") from exc


def new_data_config(champion_config: TrainConfig, config: RetrainConfig) -> TrainConfig:
    """The champion's training options, pointed at the new data (same target, image size, families...)."""
    updates = {"data": config.data, "dataset": config.dataset, "test_data": config.test_data, "name": config.name,
               "registry": None, "runs_root": config.runs_root, "run_dir": None, "seed": config.seed}
    for option in ("target", "image_size", "budget_minutes", "max_trials", "max_epochs"):
        if getattr(config, option) is not None:
            updates[option] = getattr(config, option)
    return TrainConfig.model_validate({**champion_config.model_dump(), **updates})


def check_drift(champion: Champion, splits: Splits, config: RetrainConfig) -> DriftReport:
    new = splits.train.concat(splits.val).concat(splits.test)
    current = profile(new.kind, new.features, new.labels, champion.prep.text_columns, champion.prep.text_tokenizer)
    return drift_against(champion.reference, current, psi_threshold=config.psi_threshold, alpha=config.drift_alpha)


def choose_mode(requested: RetrainMode, drift: DriftReport, champion: str) -> tuple[RetrainMode, str]:
    """finetune stops on drift; auto switches to a fresh search; search always searches."""
    if requested == "search":
        return "search", "asked for a fresh search"
    if not drift.drifted:
        return "finetune", f"{drift.summary()}: warm start from {champion}"
    if requested == "finetune":
        raise DriftDetected(f"The new data drifted from {champion}'s training data beyond the thresholds; a fine-tune "
                            "was asked for, so nothing was trained or promoted. Retrain with --mode search (or auto) "
                            f"if the change is real.\n\n{drift.to_markdown()}")
    return "search", f"{drift.summary()}: switched to a fresh search"


def retrain_dir(config: RetrainConfig, champion: Champion, fingerprint: str, mode: str) -> Path:
    return config.runs_root / config.name / f"retrain-{champion.version.version}-{fingerprint[:10]}-{mode}"


def finetune_challenger(champion: Champion, splits: Splits, data_config: TrainConfig, config: RetrainConfig,
                        steps: Steps) -> Challenger:
    """Warm-start the champion on the new data plus replayed earlier samples, then finish it like any model."""
    run_dir = data_config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    write_status(run_dir, config, RunStatus.RUNNING, steps.seconds)
    prep = champion.prep
    validation = validate_splits(splits, config.name, classes=prep.class_names)
    inputs = model_inputs(splits, prep)
    replay = None
    if champion.replay is not None and config.replay_fraction > 0:
        replay = champion.replay.sample(int(config.replay_fraction * len(inputs.x_train)), prep.class_names,
                                        config.seed)
    hyperparameters = champion.version.record["hyperparameters"]
    learning_rate = hyperparameters.get("learning_rate", 1e-3) * config.learning_rate_factor
    tuned = steps(Step.FINE_TUNE, warm_start, champion.model_path, inputs, run_dir / "finetuned.keras",
                  learning_rate=learning_rate, replay=replay, max_epochs=config.finetune_epochs,
                  batch_size=data_config.batch_size, seed=config.seed)
    learnt_x = [inputs.x_train, inputs.x_val, *([replay[0]] if replay else [])]
    learnt_y = [inputs.y_train, inputs.y_val, *([replay[1]] if replay else [])]
    candidate = finish_candidate(run_dir, data_config, splits, validation.suite, inputs, prep, tuned,
                                 {**hyperparameters, "family": champion.family}, steps,
                                 learnt=(np.concatenate(learnt_x), np.concatenate(learnt_y)), prep_fitted=False)
    return Challenger("finetune", candidate, len(replay[0]) if replay else 0)


def search_challenger(champion: Champion, splits: Splits, data_config: TrainConfig, steps: Steps,
                      on_trial_end: TrialHook | None, launch: Launcher | None = None) -> Challenger:
    """A fresh search, fine-tune and export on the new data, in a resumable run folder."""
    validation = validate_splits(splits, data_config.model_name)
    run = train_on_splits(data_config, splits, validation, steps, on_trial_end, launch)
    return Challenger("search", run.candidate, search=run.search)


def score_on_holdout(champion: Champion, challenger: Challenger, holdout: Dataset) -> tuple[Evaluation, Evaluation]:
    """Both models on the same fresh rows, each through its own preprocessing, scored over the champion's classes."""
    classes = champion.prep.class_names

    def score(model_path: Path, prep: Preprocessing) -> Evaluation:
        model = load_model(model_path)
        return evaluate_step.evaluate_by_name(model, encode_features(holdout, prep), holdout.labels,
                                              prep.class_names, classes)

    return score(champion.model_path, champion.prep), score(challenger.candidate.model_path, challenger.candidate.prep)


def register_challenger(registry: Registry, result: RetrainResult, data_config: TrainConfig) -> ModelVersion:
    """Record the challenger as a new version, champion or not; the pointer moves only on promotion."""
    challenger, decision = result.challenger, result.decision
    model = challenger.candidate
    parent = result.champion.partition("@")[2]
    record = version_record(data_config, challenger.mode, parent, model.run_dir, result.challenger_evaluation,
                            model.hyperparameters, model.trained_on,
                            {**decision.to_dict(), "compared_with": result.champion,
                             "holdout_rows": result.challenger_evaluation.n_test},
                            pretrained=lineage(model.hyperparameters))
    record["drift"] = {"summary": result.drift.summary(), "drifted": [c.column for c in result.drift.drifted]}
    return registry.register(result.config.name, run_files(model.run_dir), record, promote=decision.promote)
