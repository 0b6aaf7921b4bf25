"""The `kerasflow` command line.

With PREFECT_API_URL set, runs show up in that Prefect server's UI; with
nothing set, Prefect runs them on its embedded local server.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.table import Table

from flows.models_cli import models_app
from flows.output import console, fail as _fail
from pipelines.config import BUNDLED_DATASETS, RetrainConfig, TrainConfig
from pipelines.errors import KerasflowError
from pipelines.tflite import VARIANTS

app = typer.Typer(
    help="kerasflow: point it at data, get a searched, tuned, checked Keras model and a TFLite export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.add_typer(models_app, name="models")

Tuner = Enum("Tuner", {name: name for name in ("hyperband", "bayesian", "random")}, type=str)
Objective = Enum("Objective", {name: name for name in ("val_accuracy", "val_macro_f1")}, type=str)
Family = Enum("Family", {name: name for name in ("dense", "cnn", "lstm")}, type=str)
Dataset = Enum("Dataset", {name: name for name in BUNDLED_DATASETS}, type=str)
Switch = Enum("Switch", {name: name for name in ("auto", "on", "off")}, type=str)
StrategyChoice = Enum("StrategyChoice", {name: name for name in ("default", "mirrored")}, type=str)
Quantize = Enum("Quantize", {name: name for name in VARIANTS}, type=str)

QUANTIZE_HELP = ("TFLite variant to export (repeatable; default all): float32, float16 (half-size weights), "
                 "dynamic (int8 weights), int8 (weights and activations, calibrated on training samples).")
INT8_IO_HELP = "Give the int8 variant int8 input/output tensors too (scale and zero-point in model_spec.json)."
REGISTRY_HELP = "Model registry root: REGISTRY/NAME/versions/vNNNN and the champion pointer."
TOLERANCE_HELP = "Largest accuracy drop of a TFLite variant vs Keras that may still be recommended (0.01 = 1 point)."


@app.command()
def train(
    data: Annotated[Optional[Path], typer.Option(help="CSV/Parquet table, folder of images (one subfolder per class), or .npz with x [N,T,F] and y [N].")] = None,
    dataset: Annotated[Optional[Dataset], typer.Option(help="A bundled demo instead of --data.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Label column of a table.")] = None,
    test_data: Annotated[Optional[Path], typer.Option(help="Your own held-out test set, same format as --data.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name (default: dataset or file name).")] = None,
    runs_root: Annotated[Path, typer.Option(help="Where run folders go: RUNS_ROOT/NAME/TIMESTAMP.")] = Path("runs"),
    run_dir: Annotated[Optional[Path], typer.Option(help="Use this run folder; an interrupted search there resumes.")] = None,
    budget_minutes: Annotated[float, typer.Option(help="Wall-clock budget of the architecture search.")] = 5.0,
    tuner: Annotated[Tuner, typer.Option(help="keras-tuner algorithm.")] = Tuner.hyperband,
    objective: Annotated[Objective, typer.Option(help="What the search maximises on the validation split.")] = Objective.val_accuracy,
    max_trials: Annotated[int, typer.Option(help="Most trials (bayesian, random).")] = 100,
    max_epochs: Annotated[int, typer.Option(help="Most epochs per search trial.")] = 20,
    finetune_epochs: Annotated[int, typer.Option(help="Most epochs of the final fine-tuning.")] = 40,
    family: Annotated[Optional[list[Family]], typer.Option(help="Only search these families (repeatable).")] = None,
    batch_size: Annotated[int, typer.Option()] = 32,
    image_size: Annotated[Optional[str], typer.Option(help="Resize images to HxW, e.g. 32x32.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the search.")] = 42,
    quantize: Annotated[Optional[list[Quantize]], typer.Option(help=QUANTIZE_HELP)] = None,
    int8_io: Annotated[bool, typer.Option("--int8-io", help=INT8_IO_HELP)] = False,
    quantization_tolerance: Annotated[float, typer.Option(help=TOLERANCE_HELP)] = 0.01,
    max_model_kb: Annotated[Optional[float], typer.Option(help="Mobile budget: architectures whose int8 TFLite model is larger (KiB) are not trained.")] = None,
    max_latency_ms: Annotated[Optional[float], typer.Option(help="Mobile budget: architectures whose int8 batch-1 latency (this CPU, one thread) is slower are not trained.")] = None,
    min_trial_steps: Annotated[int, typer.Option(help="Small training sets: smaller batches (an eighth of the rows, at least 8) and more epochs per trial (up to 5x --max-epochs) until a trial takes this many optimiser steps; 0: off.")] = 250,
    workers: Annotated[int, typer.Option(help="Search workers training trials in parallel: keras-tuner's chief oracle "
                                              "here, workers as Dask tasks. Each gets its own GPU when GPUs exist, "
                                              "else an equal share of the CPU threads.")] = 1,
    scheduler_address: Annotated[Optional[str], typer.Option(help="Run the workers on this Dask scheduler's workers "
                                                                  "(tcp://host:8786; other machines need the run "
                                                                  "folder on a shared filesystem). Default: a local "
                                                                  "Dask cluster.")] = None,
    mixed_precision: Annotated[Switch, typer.Option(help="float16 compute, float32 weights and outputs; auto: on with a GPU.")] = Switch.auto,
    xla: Annotated[Switch, typer.Option(help="XLA compilation; auto leaves it to Keras.")] = Switch.auto,
    strategy: Annotated[StrategyChoice, typer.Option(help="mirrored: spread each trial over all GPUs of this machine (needs 2+).")] = StrategyChoice.default,
    registry: Annotated[Path, typer.Option(help=REGISTRY_HELP)] = Path("registry"),
    register: Annotated[bool, typer.Option(help="Register the model in --registry: champion if NAME has none yet, "
                                                "else a candidate for `kerasflow models promote`.")] = True,
) -> None:
    """Validate the data, search dense/CNN/LSTM models, fine-tune, evaluate and export one."""
    try:
        config = TrainConfig(
            data=data, dataset=dataset.value if dataset else None, target=target, test_data=test_data, name=name,
            runs_root=runs_root, run_dir=run_dir, budget_minutes=budget_minutes, tuner=tuner.value,
            objective=objective.value, max_trials=max_trials, max_epochs=max_epochs,
            finetune_epochs=finetune_epochs, families=[f.value for f in family] if family else None,
            batch_size=batch_size, image_size=_parse_size(image_size), seed=seed,
            int8_io=int8_io, quantization_tolerance=quantization_tolerance, max_model_kb=max_model_kb,
            max_latency_ms=max_latency_ms, registry=registry if register else None, workers=workers,
            min_trial_steps=min_trial_steps,
            scheduler_address=scheduler_address, mixed_precision=mixed_precision.value, xla=xla.value,
            strategy=strategy.value,
            **({"quantize": [q.value for q in quantize]} if quantize else {}),
        )
    except ValidationError as exc:
        _fail(_options_error(exc))
    from flows.train import train_flow

    _print_summary(_run(train_flow, config))


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder, e.g. runs/digits/20261122T101500Z.")],
    quantize: Annotated[Optional[list[Quantize]], typer.Option(help=QUANTIZE_HELP)] = None,
    int8_io: Annotated[bool, typer.Option("--int8-io", help=INT8_IO_HELP)] = False,
    tolerance: Annotated[float, typer.Option(help=TOLERANCE_HELP)] = 0.01,
) -> None:
    """Re-export a run's model as TFLite variants (parity, size, latency, model card) without retraining.

    The run's export/ folder is replaced only when every asked variant converted with builtin ops and was
    checked on the test split; on any error the previous export stays as it was.
    """
    from flows.train import export_flow

    _print_variants(_run(export_flow, str(run_dir), [q.value for q in quantize] if quantize else None, int8_io,
                         tolerance))


Mode = Enum("Mode", {name: name for name in ("auto", "finetune", "search")}, type=str)
Metric = Enum("Metric", {name: name for name in ("macro_f1", "accuracy", "balanced_accuracy")}, type=str)


@app.command()
def retrain(
    name: Annotated[str, typer.Argument(help="Registered model name; its champion is the model to beat.")],
    data: Annotated[Optional[Path], typer.Option(help="New data, same format (and target column) as the champion's.")] = None,
    dataset: Annotated[Optional[Dataset], typer.Option(help="A bundled demo instead of --data.")] = None,
    test_data: Annotated[Optional[Path], typer.Option(help="A fresh holdout; else the test split of the new data.")] = None,
    mode: Annotated[Mode, typer.Option(help="finetune: warm-start the champion (stops if the data drifted); search: a fresh "
                                            "architecture search; auto: fine-tune, or search when the data drifted.")] = Mode.auto,
    registry: Annotated[Path, typer.Option(help=REGISTRY_HELP)] = Path("registry"),
    runs_root: Annotated[Path, typer.Option(help="Where the retrain run folder goes.")] = Path("runs"),
    metric: Annotated[Metric, typer.Option(help="Holdout metric the challenger must improve.")] = Metric.macro_f1,
    min_improvement: Annotated[float, typer.Option(help="Smallest gain on --metric that promotes (0.005 = half a point; negative accepts a slightly worse model).")] = 0.005,
    max_recall_drop: Annotated[float, typer.Option(help="Largest recall any class may lose; more keeps the champion.")] = 0.05,
    psi_threshold: Annotated[float, typer.Option(help="PSI at or above which a column drifted (when also p < --drift-alpha).")] = 0.2,
    drift_alpha: Annotated[float, typer.Option(help="p-value (KS for numbers, chi-square for categories and labels) below which a shift is real.")] = 0.01,
    replay_fraction: Annotated[float, typer.Option(help="Fine-tune: earlier training samples replayed per new sample (0: none).")] = 0.5,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tune: most epochs (early stopping on the new validation split).")] = 20,
    learning_rate_factor: Annotated[float, typer.Option(help="Fine-tune: learning rate = the champion's x this.")] = 0.1,
    budget_minutes: Annotated[Optional[float], typer.Option(help="Search: budget (default: the champion's).")] = None,
    max_trials: Annotated[Optional[int], typer.Option(help="Search: most trials (default: the champion's).")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(help="Search: most epochs per trial (default: the champion's).")] = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Retrain a registered model on new data; promote the challenger only if it beats the champion.

    New data is checked against the champion's expectations and for drift against its training data; a
    challenger is fine-tuned from the champion (or searched afresh); both are scored on the same fresh holdout.
    The registry changes last, atomically; a rejected challenger is registered with the reason.
    """
    try:
        config = RetrainConfig(
            name=name, data=data, dataset=dataset.value if dataset else None, test_data=test_data, mode=mode.value,
            registry=registry, runs_root=runs_root, metric=metric.value, min_improvement=min_improvement,
            max_recall_drop=max_recall_drop, psi_threshold=psi_threshold, drift_alpha=drift_alpha,
            replay_fraction=replay_fraction, finetune_epochs=finetune_epochs,
            learning_rate_factor=learning_rate_factor, budget_minutes=budget_minutes,
            max_trials=max_trials, max_epochs=max_epochs, seed=seed)
    except ValidationError as exc:
        _fail(_options_error(exc))
    from flows.retrain import retrain_flow

    _print_retrain(_run(retrain_flow, config))


@app.command()
def datasets() -> None:
    """List the bundled demo datasets (they ship with installed packages; nothing downloads)."""
    table = Table("name", "kind", "source")
    for name, kind, source in [("digits", "images 8x8", "scikit-learn"), ("breast_cancer", "table", "scikit-learn"),
                               ("wine", "table", "scikit-learn"), ("gunpoint", "sequences 150x1", "aeon (UCR)")]:
        table.add_row(name, kind, source)
    console.print(table)


def _run(flow, *args) -> dict:
    """Run a flow; a user error (bad data, bad registry, busy model) ends as one line and exit code 2."""
    try:
        return flow(*args)
    except KerasflowError as exc:
        _fail(str(exc))


def _options_error(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        _fail(f"--image-size {text!r}: expected HEIGHTxWIDTH, e.g. 32x32")
    return height, width


def _print_summary(result: dict) -> None:
    table = Table(title="kerasflow: test split", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in result["test"].items():
        table.add_row(metric, f"{value:.4f}")
    console.print(table)
    _print_variants(result["export"])
    console.print(f"family: [bold]{result['family']}[/bold]")
    if result.get("registered"):
        console.print(f"registered: [bold]{result['registered']}[/bold]" + (" (champion)" if result["champion"] else ""))
    console.print(f"run folder: [bold]{result['run_dir']}[/bold]")
    console.print(f"report: {result['report']}")


def _print_variants(export: dict) -> None:
    table = Table("variant", "KiB", "accuracy", "macro-F1", "label agreement", "median ms", "p95 ms", "verdict",
                  title="TFLite variants vs Keras (test split)")
    keras = export["keras"]
    table.add_row("keras", f"{keras['bytes'] / 1024:.1f}", f"{keras['accuracy']:.4f}", f"{keras['macro_f1']:.4f}",
                  "", f"{keras['latency_median_ms']:.3f}", f"{keras['latency_p95_ms']:.3f}", "reference")
    for v in export["variants"]:
        verdict = "recommended" if v["recommended"] else "ok" if v["within_tolerance"] else "too lossy"
        table.add_row(v["variant"], f"{v['bytes'] / 1024:.1f}", f"{v['accuracy']:.4f}", f"{v['macro_f1']:.4f}",
                      f"{v['label_agreement']:.4f}", f"{v['latency_median_ms']:.3f}", f"{v['latency_p95_ms']:.3f}",
                      verdict)
    console.print(table)
    console.print(f"export folder: [bold]{export['directory']}[/bold]")


def _print_retrain(result: dict) -> None:
    decision = result["decision"]
    table = Table("model", decision["metric"], title=f"Holdout: {result['champion_before']} vs challenger ({result['mode']})")
    table.add_row(f"champion {result['champion_before']}", f"{decision['champion_score']:.4f}")
    table.add_row(f"challenger {result['version']}", f"{decision['challenger_score']:.4f}")
    console.print(table)
    console.print(f"drift: {result['drift']}")
    colour = "green" if result["promoted"] else "yellow"
    console.print(f"[bold {colour}]{'promoted' if result['promoted'] else 'rejected'}[/bold {colour}]: {result['reason']}")
    console.print(f"champion: [bold]{result['champion']}[/bold]")
    console.print(f"report: {result['report']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
