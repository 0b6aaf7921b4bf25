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
from rich.console import Console
from rich.table import Table

from pipelines.config import BUNDLED_DATASETS, TrainConfig
from pipelines.errors import KerasflowError
from pipelines.tflite import VARIANTS

app = typer.Typer(
    help="kerasflow: point it at data, get a searched, tuned, checked Keras model and a TFLite export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

Tuner = Enum("Tuner", {name: name for name in ("hyperband", "bayesian", "random")}, type=str)
Objective = Enum("Objective", {name: name for name in ("val_accuracy", "val_macro_f1")}, type=str)
Family = Enum("Family", {name: name for name in ("dense", "cnn", "lstm")}, type=str)
Dataset = Enum("Dataset", {name: name for name in BUNDLED_DATASETS}, type=str)
Quantize = Enum("Quantize", {name: name for name in VARIANTS}, type=str)

QUANTIZE_HELP = ("TFLite variant to export (repeatable; default all): float32, float16 (half-size weights), "
                 "dynamic (int8 weights), int8 (weights and activations, calibrated on training samples).")
INT8_IO_HELP = "Give the int8 variant int8 input/output tensors too (scale and zero-point in model_spec.json)."
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
            max_latency_ms=max_latency_ms, **({"quantize": [q.value for q in quantize]} if quantize else {}),
        )
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()))
    from flows.train import train_flow

    try:
        result = train_flow(config)
    except KerasflowError as exc:
        _fail(str(exc))
    _print_summary(result)


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

    try:
        result = export_flow(str(run_dir), [q.value for q in quantize] if quantize else None, int8_io, tolerance)
    except KerasflowError as exc:
        _fail(str(exc))
    _print_variants(result)


@app.command()
def datasets() -> None:
    """List the bundled demo datasets (they ship with installed packages; nothing downloads)."""
    table = Table("name", "kind", "source")
    for name, kind, source in [("digits", "images 8x8", "scikit-learn"), ("breast_cancer", "table", "scikit-learn"),
                               ("wine", "table", "scikit-learn"), ("gunpoint", "sequences 150x1", "aeon (UCR)")]:
        table.add_row(name, kind, source)
    console.print(table)


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


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
