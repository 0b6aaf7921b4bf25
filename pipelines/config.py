"""Options of a run, each declared once, validated at the edge (CLI, flow parameters, Python).

The option groups are the steps' own option types: `DeviceOptions` (where
training runs), `SearchOptions` (the architecture search, which runs on those
devices) and `ExportOptions` (the TFLite variants). `TrainConfig` is all of
them plus the data and the run folder, so a training run's options stay one
flat record (the flow's parameters, `run.json`, a version's `config`). The
CLI reads every default and help text from these fields (`flows/cli.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from data_checks.drift import ALPHA, PSI_THRESHOLD
from models.backbones import BACKBONES
from pipelines.columns import ROLES
from pipelines.errors import ExportError
from pipelines.export.tflite import VARIANTS
from pipelines.registry import model_name_problem, safe_model_name


def checked_model_name(value: str | None) -> str | None:
    """A model name is checked where it is given, before any work (`pipelines.registry.MODEL_NAME`)."""
    problem = None if value is None else model_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


ModelName = Annotated[str, AfterValidator(checked_model_name)]  # checked where given, before any work

Tuner = Literal["hyperband", "bayesian", "random"]
Objective = Literal["val_accuracy", "val_macro_f1"]
Family = Literal["linear", "kernel", "dense", "cnn", "lstm", "rocket", "trees", "transfer", "embedding"]
ClassWeight = Literal["auto", "balanced", "none"]
Selection = Literal["auto", "kfold", "holdout"]
Variant = Literal[VARIANTS]
Switch = Literal["auto", "on", "off"]
Strategy = Literal["default", "mirrored"]
Backbone = Literal[tuple(BACKBONES)]
BundledDataset = Literal["digits", "breast_cancer", "wine", "gunpoint"]
BUNDLED_DATASETS: tuple[str, ...] = get_args(BundledDataset)
RetrainMode = Literal["auto", "finetune", "search"]
ColumnRoleName = Literal[ROLES]
HoldoutMetric = Literal["macro_f1", "accuracy", "balanced_accuracy"]


class Options(BaseModel):
    """Base of every option group: unknown names are errors; defaults and help are read from the fields."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def default(cls, name: str) -> Any:
        return cls.model_fields[name].get_default(call_default_factory=True)

    @classmethod
    def help(cls, name: str) -> str:
        return cls.model_fields[name].description or ""


class ReadOptions(Options):
    """How a data source is read; a retrain defaults each to its champion's."""

    target: str | None = Field(None, description="Label column of a table (retrain: default the champion's).")
    image_size: tuple[int, int] | None = Field(None, description="Resize images to HxW, e.g. 32x32 (retrain: "
                                               "default the champion's).")

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value):
        if value is not None and min(value) < 1:
            raise ValueError(f"{value[0]}x{value[1]} has a side below 1 pixel; give HEIGHTxWIDTH, e.g. 32x32")
        return value


class DeviceOptions(Options):
    """Where training runs; `auto` means on with a GPU, off without (`pipelines.devices`)."""

    mixed_precision: Switch = Field("auto", description="float16 compute with float32 weights and outputs "
                                    "(auto: on with a GPU).")
    xla: Switch = Field("auto", description="XLA compilation (auto: Keras decides; on/off force it).")
    strategy: Strategy = Field("default", description="mirrored: spread each trial over all GPUs of this machine "
                               "(needs 2+).")
    memory_growth: bool = Field(True, description="Let TensorFlow take GPU memory as it needs it, not all at once.")


class MobileBudget(Options):
    """What fits a phone: the search skips architectures over it, distillation sizes its student to it."""

    max_model_kb: float | None = Field(None, gt=0, description="Mobile budget: architectures whose int8 TFLite "
                                       "model is larger (KiB) are not trained; a distilled student is sized to fit.")
    max_latency_ms: float | None = Field(None, gt=0, description="Mobile budget: architectures whose int8 batch-1 "
                                         "latency (this CPU, one thread) is slower (ms) are not trained; a distilled "
                                         "student is sized to fit.")

    @property
    def mobile_budget(self) -> bool:
        return self.max_model_kb is not None or self.max_latency_ms is not None

    def budget_text(self) -> str:
        limits = [f"int8 model <= {self.max_model_kb:g} KiB" if self.max_model_kb is not None else "",
                  f"batch-1 int8 latency <= {self.max_latency_ms:g} ms" if self.max_latency_ms is not None else ""]
        return " and ".join(limit for limit in limits if limit)


class SearchOptions(DeviceOptions, MobileBudget):
    """The architecture search: tuner, budget, space, mobile budget, parallel workers, and its devices."""

    tuner: Tuner = Field("hyperband", description="keras-tuner algorithm.")
    objective: Objective = Field("val_accuracy", description="What the search maximises on the validation split.")
    budget_minutes: float = Field(5.0, gt=0, description="Wall-clock budget of the search and the fine-tune "
                                  "together, split by the data's size (the report says how); loading, validation, "
                                  "evaluation and export come on top.")
    max_trials: int = Field(100, ge=1, description="Most trials (bayesian, random).")
    max_epochs: int = Field(20, ge=1, description="Most epochs per search trial.")
    batch_size: int = Field(32, ge=1, description="Training batch size.")
    families: list[Family] | None = Field(None, description="Only search these families (default: all that fit "
                                          "the input).")
    seed: int = Field(42, description="Seed of the split and the search.")
    min_trial_steps: int = Field(250, ge=0, description="Small training sets: smaller batches (an eighth of the "
                                 "rows, at least 8) and more epochs per trial (up to 5x max epochs) until a trial "
                                 "takes this many optimiser steps; under 2,000 training rows, where trials stop by "
                                 "early stopping, at least 3x max epochs. 0: off.")
    subsample_from: int = Field(20_000, ge=0, description="Large training sets, hyperband: from this many "
                                "training rows on, a trial sees a stratified share of the rows (of at most 5x "
                                "this many) equal to its share of the epochs (at least a quarter of this), so "
                                "early rounds compare many architectures; trials are scored on a stratified "
                                "this many validation rows; the chosen model is fine-tuned on every row. 0: off.")
    class_weight: ClassWeight = Field("auto", description="Weight classes inversely to their counts (sklearn's "
                                      "balanced rule): auto, when the largest class has 3x+ the rows of the "
                                      "smallest, lets the search decide per trial (hyperparameter balance_classes, "
                                      "on at first when the objective is val_macro_f1, off for val_accuracy); "
                                      "balanced always; none never.")
    selection: Selection = Field("auto", description="How search trials are scored: kfold trains each on 5 "
                                 "stratified folds of train+val and scores its out-of-fold predictions (5x the "
                                 "cost per trial); holdout scores the validation split; auto: kfold when the "
                                 "validation split has fewer than 300 rows, where one error is worth a third of a point or more.")
    ensemble_size: int = Field(5, ge=1, le=10, description="Average up to this many of the best distinct trials "
                               "into one model when that scores better on held-out rows than the best single "
                               "trial; on a small table or image set (k-fold), the portfolio's trials, unless the "
                               "search's choice clearly beats their average; 1: never ensemble. Under a mobile budget "
                               "the whole ensemble must fit.")
    workers: int = Field(1, ge=1, le=64, description="Search workers training trials in parallel: keras-tuner's "
                         "chief oracle here, workers as Dask tasks. Each gets its own GPU when GPUs exist, else an "
                         "equal share of the CPU threads.")
    scheduler_address: str | None = Field(None, description="Run the workers on this Dask scheduler's workers "
                                          "(tcp://host:8786; other machines need the run folder on a shared "
                                          "filesystem). Default: a local Dask cluster.")

    @model_validator(mode="after")
    def _workers_for_a_scheduler(self):
        if self.scheduler_address and self.workers < 2:
            raise ValueError("scheduler_address places parallel search workers: give workers >= 2 too")
        return self



class ExportOptions(MobileBudget):
    """Which TFLite variants to write, how strict their parity check is, and what compression to add."""

    quantize: list[Variant] = Field(list(VARIANTS), min_length=1, description=(
        "TFLite variant to export (repeatable; default all): float32, float16 (half-size weights), dynamic (int8 "
        "weights), int8 (weights and activations, calibrated on training samples)."))
    int8_io: bool = Field(False, description="Give the int8 variant int8 input/output tensors too (scale and "
                          "zero-point in model_spec.json).")
    quantization_tolerance: float = Field(0.01, ge=0, le=1, description="Largest accuracy drop of a TFLite variant "
                                          "vs Keras that may still be recommended (0.01 = 1 point).")
    latency_runs: int = Field(100, ge=1, description="Timed batch-1 calls per model for the latency columns.")
    prune: float | None = Field(None, gt=0, lt=1, description="Also export a pruned model: this share of every "
                                "kernel's smallest weights set to zero (e.g. 0.5) during a short recovery fine-tune, "
                                "int8 with sparse weight storage where LiteRT has it.")
    distill: bool = Field(False, description="Also export a distilled student: a smaller model trained on the "
                          "model's own predictions (keras.distillation), sized to the mobile budget, or to half the "
                          "model's int8 size without one.")
    compress_epochs: int = Field(20, ge=1, description="Epochs of the pruning recovery fine-tune and of the "
                                 "distillation, each (at least 500 batches, so small data gets more); both learn "
                                 "from the run's training sample (replay.npz).")

    @property
    def compressing(self) -> bool:
        return self.prune is not None or self.distill

    @property
    def checked_variants(self) -> int:
        """How many TFLite variants the export checks on the test split: one interpreter pass each."""
        return len(self.quantize) + (self.prune is not None) + self.distill

    @property
    def calibrated_variants(self) -> int:
        """How many of them are int8, each calibrated on training samples (`pipelines.export.calibration`)."""
        return ("int8" in self.quantize) + (self.prune is not None) + self.distill

    @field_validator("quantize", mode="before")
    @classmethod
    def _known_variants(cls, value):
        unknown = [v for v in value or [] if v not in VARIANTS]
        if unknown or not value:
            raise ExportError(f"unknown quantize mode {', '.join(map(repr, unknown)) or '(none given)'}; "
                              f"choose from {', '.join(VARIANTS)}")
        return [v for v in VARIANTS if v in value]


class TransferOptions(Options):
    """Where a pretrained start comes from: a registered model, or a Keras backbone with weights on disk."""

    pretrained: str | None = Field(None, description="Start from this registered model (NAME for its champion, or "
                                   "NAME@VERSION, in --registry): its layers below the classifier, with its input "
                                   "preprocessing, become a base under a new head for these labels (family "
                                   "`transfer`: the head trains first, then the unfrozen top of the base at a tenth "
                                   "of the learning rate). The search weighs it against training from scratch.")
    backbone: Backbone | None = Field(None, description="Images: start from this Keras application instead "
                                      "(resizing, channels and its own preprocessing inside the model); needs "
                                      "--backbone-weights, as nothing is downloaded.")
    backbone_weights: Path | None = Field(None, description="The backbone's weights file on this machine (Keras "
                                          "applications' include_top=False weights, .h5 or .weights.h5).")

    @model_validator(mode="after")
    def _one_local_base(self) -> "TransferOptions":
        if self.pretrained and self.backbone:
            raise ValueError("give one pretrained start: --pretrained NAME or --backbone, not both")
        if self.backbone and self.backbone_weights is None:
            raise ValueError(f"backbone {self.backbone} needs --backbone-weights PATH, a weights file on this "
                             "machine: kerasflow never downloads weights")
        if self.backbone_weights is not None and not self.backbone:
            raise ValueError("--backbone-weights is for a --backbone; give its name too")
        if self.backbone_weights is not None and not Path(self.backbone_weights).is_file():
            raise ValueError(f"backbone weights {self.backbone_weights}: no such file")
        return self


class TrainConfig(ReadOptions, SearchOptions, ExportOptions, TransferOptions):
    """Everything a training run needs to know; shown as the flow's parameters."""

    data: Path | None = Field(None, description="CSV, TSV or Parquet table, folder of images or of .txt files "
                              "(one subfolder per class), or .npz of sequences: x [N,T,F] and y [N], or, ragged, "
                              "x [L,F] (L the sum of lengths), lengths [N] and y [N] (never pickled object arrays: "
                              "see convert-sequences), "
                              "or a .ts file of sequences as the UCR/UEA archives ship them.")
    dataset: BundledDataset | None = Field(None, description="A bundled demo instead of --data.")
    test_data: Path | None = Field(None, description="Your own held-out test set, same format as --data.")
    column_roles: dict[str, ColumnRoleName] = Field(default_factory=dict, description="A table column's role, "
                                                    "NAME=ROLE: numeric, categorical, date (year, month, day, "
                                                    "weekday, and hour where times are given, as numbers), clock "
                                                    "(H:MM[:SS] as hours), text (token ids), or identifier or "
                                                    "ignore (dropped). "
                                                    "Columns not named are inferred; the report says how.")
    name: ModelName | None = Field(None, description="Model name (default: dataset or file name): letters, digits, "
                                   "'.', '_' and '-'.")
    runs_root: Path = Field(Path("runs"), description="Where run folders go: RUNS_ROOT/NAME/TIMESTAMP.")
    registry: Path | None = Field(None, description="Model registry root: REGISTRY/NAME/versions/vNNNN and the "
                                  "champion pointer; None: do not register.")
    run_dir: Path | None = Field(None, description="Use this run folder; an interrupted search there resumes.")
    finetune_epochs: int = Field(40, ge=1, description="Most epochs of the final fine-tuning.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Share of the rows held out for the test split.")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of the rest the search validates on.")

    @field_validator("run_dir")
    @classmethod
    def _run_dir_is_a_folder(cls, value):
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file; give a new folder or an interrupted run's folder")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "TrainConfig":
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give exactly one of data (a path) or dataset (a bundled demo)")
        return self

    @property
    def model_name(self) -> str:
        """--name, else the dataset's or the file's name made a model name (`pipelines.registry.MODEL_NAME`)."""
        if self.name:
            return self.name
        return self.dataset or safe_model_name(Path(self.data).stem)  # type: ignore[arg-type]


class RetrainConfig(ReadOptions):
    """A retrain of a registered model on new data; every threshold of the promotion rule is here."""

    name: ModelName = Field(description="Registered model name; its champion is the model to beat.")
    data: Path | None = Field(None, description="New data, same format (and target column) as the champion's.")
    dataset: BundledDataset | None = Field(None, description="A bundled demo instead of --data.")
    test_data: Path | None = Field(None, description="A fresh holdout; else the test split of the new data.")
    mode: RetrainMode = Field("auto", description="finetune: warm-start the champion (stops if the data drifted); "
                              "search: a fresh architecture search; auto: fine-tune, or search when the data drifted.")
    registry: Path = Field(Path("registry"), description="Model registry root: REGISTRY/NAME/versions/vNNNN and "
                           "the champion pointer.")
    runs_root: Path = Field(Path("runs"), description="Where the retrain run folder goes: RUNS_ROOT/NAME/retrain-...")
    metric: HoldoutMetric = Field("macro_f1", description="Holdout metric the challenger must improve.")
    min_improvement: float = Field(0.005, ge=-1, le=1, description="Smallest gain on --metric that promotes "
                                   "(0.005 = half a point; negative accepts a slightly worse model).")
    max_recall_drop: float = Field(0.05, ge=0, le=1, description="Largest recall any class may lose; more keeps "
                                   "the champion.")
    psi_threshold: float = Field(PSI_THRESHOLD, gt=0, description="PSI at or above which a column drifted (when also "
                                 "p < --drift-alpha).")
    drift_alpha: float = Field(ALPHA, gt=0, lt=1, description="p-value (KS for numbers, chi-square for categories "
                               "and labels) below which a shift is real.")
    replay_fraction: float = Field(0.5, ge=0, description="Fine-tune: earlier training samples replayed per new "
                                   "sample (0: none).")
    learning_rate_factor: float = Field(0.1, gt=0, le=1, description="Fine-tune: learning rate = the champion's "
                                        "x this.")
    finetune_epochs: int = Field(20, ge=1, description="Fine-tune: most epochs (early stopping on the new "
                                 "validation split).")
    budget_minutes: float | None = Field(None, gt=0, description="Search: budget (default: the champion's).")
    max_trials: int | None = Field(None, ge=1, description="Search: most trials (default: the champion's).")
    max_epochs: int | None = Field(None, ge=1, description="Search: most epochs per trial (default: the champion's).")
    seed: int = Field(42, description="Seed of the split, the replay sample and the training.")

    @model_validator(mode="after")
    def _one_source(self) -> "RetrainConfig":
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give exactly one of data (a path) or dataset (a bundled demo)")
        return self

