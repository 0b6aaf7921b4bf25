"""Options of a training run, validated once at the edge (CLI or flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Tuner = Literal["hyperband", "bayesian", "random"]
Objective = Literal["val_accuracy", "val_macro_f1"]
Variant = Literal["float32", "float16", "dynamic", "int8"]
Switch = Literal["auto", "on", "off"]
Strategy = Literal["default", "mirrored"]
BUNDLED_DATASETS = ("digits", "breast_cancer", "wine", "gunpoint")


class TrainConfig(BaseModel):
    """Everything a training run needs to know; shown as the flow's parameters."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(None, description="CSV/Parquet table, image folder, or .npz of sequences.")
    dataset: Literal["digits", "breast_cancer", "wine", "gunpoint"] | None = Field(
        None, description="A bundled demo dataset instead of --data."
    )
    target: str | None = Field(None, description="Label column of a table.")
    test_data: Path | None = Field(None, description="A held-out test set in the same format as data.")
    name: str | None = Field(None, description="Model name; the run folder is runs/<name>/<timestamp>.")
    runs_root: Path = Field(Path("runs"), description="Folder that holds all run folders.")
    registry: Path | None = Field(None, description="Model registry root to register the trained model in "
                                  "(champion if the model has none); None: do not register.")
    run_dir: Path | None = Field(None, description="Reuse this run folder: resumes an interrupted search.")
    budget_minutes: float = Field(5.0, gt=0, description="Wall-clock budget of the search.")
    tuner: Tuner = "hyperband"
    objective: Objective = "val_accuracy"
    max_trials: int = Field(100, ge=1, description="Upper bound on trials (bayesian/random).")
    max_epochs: int = Field(20, ge=1, description="Most epochs a search trial trains.")
    finetune_epochs: int = Field(40, ge=1, description="Most epochs of the final fine-tuning.")
    families: list[Literal["dense", "cnn", "lstm"]] | None = Field(
        None, description="Restrict the search to these families (default: all that fit the input)."
    )
    batch_size: int = Field(32, ge=1)
    image_size: tuple[int, int] | None = Field(None, description="Resize images to (height, width).")
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: int = 42
    quantize: list[Variant] = Field(["float32", "float16", "dynamic", "int8"],
                                    min_length=1, description="TFLite variants to export.")
    int8_io: bool = Field(False, description="int8 input and output tensors in the int8 variant (else float I/O).")
    quantization_tolerance: float = Field(0.01, ge=0, le=1, description="Largest accuracy drop (0.01 = 1 point) "
                                          "a TFLite variant may show against the Keras model and still be recommended.")
    max_model_kb: float | None = Field(None, gt=0, description="Mobile budget: largest int8 TFLite model, KiB.")
    max_latency_ms: float | None = Field(None, gt=0, description="Mobile budget: slowest batch-1 int8 latency, ms "
                                         "(measured on the training machine's CPU, one thread).")
    min_trial_steps: int = Field(250, ge=0, description="Small training sets: batches shrink to an eighth of the "
                                 "rows (not below 8) and trials get more epochs (up to 5x max_epochs) until one "
                                 "trial takes this many optimiser steps; 0 turns this off.")
    workers: int = Field(1, ge=1, le=64, description="Search workers training trials in parallel (keras-tuner "
                         "chief + workers, placed by Dask); each gets a GPU of its own, or a share of the CPU threads.")
    scheduler_address: str | None = Field(None, description="Dask scheduler (tcp://host:8786) whose workers run the "
                                          "search; None: a local Dask cluster with one process per worker.")
    mixed_precision: Switch = Field("auto", description="float16 compute with float32 weights and outputs "
                                    "(auto: on with a GPU).")
    xla: Switch = Field("auto", description="XLA compilation (auto: Keras decides; on/off force it).")
    strategy: Strategy = Field("default", description="mirrored: spread each trial over all GPUs of the machine.")

    @model_validator(mode="after")
    def _one_source(self) -> "TrainConfig":
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give exactly one of data (a path) or dataset (a bundled demo)")
        if self.scheduler_address and self.workers < 2:
            raise ValueError("scheduler_address places parallel search workers: give workers >= 2 too")
        return self

    @property
    def model_name(self) -> str:
        if self.name:
            return self.name
        return self.dataset or Path(self.data).stem  # type: ignore[arg-type]


RetrainMode = Literal["finetune", "search", "auto"]


class RetrainConfig(BaseModel):
    """A retrain of a registered model on new data; every threshold of the promotion rule is here."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registered model name; its champion is the one to beat.")
    data: Path | None = Field(None, description="New data, in the format the champion was trained on.")
    dataset: Literal["digits", "breast_cancer", "wine", "gunpoint"] | None = Field(
        None, description="A bundled demo dataset instead of data.")
    test_data: Path | None = Field(None, description="A fresh holdout; else one is split off the new data.")
    mode: RetrainMode = Field("auto", description="finetune: warm-start the champion (stops on drift); search: new "
                              "architecture search; auto: fine-tune, or search when the data drifted.")
    registry: Path = Field(Path("registry"), description="Model registry root.")
    runs_root: Path = Field(Path("runs"), description="Where retrain run folders go: RUNS_ROOT/NAME/retrain-...")
    metric: Literal["accuracy", "macro_f1", "balanced_accuracy"] = Field(
        "macro_f1", description="Holdout metric the challenger must improve.")
    min_improvement: float = Field(0.005, ge=-1, le=1, description="Smallest gain over the champion that promotes "
                                   "(0.005 = half a point; negative accepts a slightly worse challenger).")
    max_recall_drop: float = Field(0.05, ge=0, le=1, description="Largest recall any class may lose.")
    psi_threshold: float = Field(0.2, gt=0, description="PSI at or above which a column has drifted (with p < alpha).")
    drift_alpha: float = Field(0.01, gt=0, lt=1, description="p-value below which a shift is not sampling noise.")
    replay_fraction: float = Field(0.5, ge=0, description="Fine-tune: replayed earlier samples per new training sample.")
    learning_rate_factor: float = Field(0.1, gt=0, le=1, description="Fine-tune learning rate = champion's x this.")
    finetune_epochs: int = Field(20, ge=1, description="Most epochs of the warm-start fine-tune.")
    budget_minutes: float | None = Field(None, gt=0, description="Search budget (default: the champion's).")
    max_trials: int | None = Field(None, ge=1, description="Search trials (default: the champion's).")
    max_epochs: int | None = Field(None, ge=1, description="Epochs per search trial (default: the champion's).")
    seed: int = 42

    @model_validator(mode="after")
    def _one_source(self) -> "RetrainConfig":
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give exactly one of data (a path) or dataset (a bundled demo)")
        return self
