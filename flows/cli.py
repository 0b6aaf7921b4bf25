"""The `kerasflow` command line.

With PREFECT_API_URL set, runs show up in that Prefect server's UI; with
nothing set, Prefect runs them on its embedded local server.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional, get_args

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Column, Table

from flows.models_cli import models_app
from flows.output import console, errors, fail, quiet_user_errors_on_console
from pipelines.columns import DROPPED, from_json
from pipelines.config import (
    Backbone,
    BundledDataset,
    ClassWeight,
    ExportOptions,
    Family,
    HoldoutMetric,
    Objective,
    Options,
    RetrainConfig,
    RetrainMode,
    Selection,
    Strategy,
    Switch,
    TrainConfig,
    Tuner,
    Variant,
)
from pipelines.errors import KerasflowError
from pipelines.export.records import TRAINED_MODEL
from pipelines.load import (check_columns_present, check_sequence_file, check_source, check_test_data,
                            rows_per_class_needed)
from pipelines.preprocess import Preprocessing
from pipelines.registry import PREPROCESSING_FILE, Registry, check_model_name, parse_ref

app = typer.Typer(
    help="kerasflow: point it at data, get a searched, tuned, checked Keras model and a TFLite export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.add_typer(models_app, name="models")


def choices(name: str, literal) -> type[Enum]:
    """A typer choice list from a config Literal, so the CLI lists exactly what the config accepts."""
    return Enum(name, {value: value for value in get_args(literal)}, type=str)


def _panels(**groups: str) -> dict[str, str]:
    return {field: panel for panel, fields in groups.items() for field in fields.split()}


# Which --help panel each option is listed in, per config model.
PANELS = {
    TrainConfig: _panels(
        Data="data dataset target test_data image_size column_roles",
        Run="name runs_root run_dir seed",
        Search="budget_minutes tuner objective max_trials max_epochs finetune_epochs families batch_size min_trial_steps "
               "subsample_from class_weight selection ensemble_size",
        **{"Mobile budget and export": "max_model_kb max_latency_ms quantize int8_io quantization_tolerance prune "
                                       "distill compress_epochs",
           "Scale-out and devices": "workers scheduler_address mixed_precision xla strategy",
           "Pretrained start": "pretrained backbone backbone_weights"}),
    RetrainConfig: _panels(
        Data="data dataset target test_data image_size", Challenger="mode replay_fraction finetune_epochs learning_rate_factor "
        "budget_minutes max_trials max_epochs seed", Promotion="metric min_improvement max_recall_drop",
        Drift="psi_threshold drift_alpha", Registry="registry runs_root"),
    ExportOptions: _panels(Variants="quantize int8_io quantization_tolerance",
                           Compression="prune distill compress_epochs max_model_kb max_latency_ms"),
}


def option(model: type[Options], field: str, *flags: str, more: str = "", panel: str | None = None, **kwargs):
    """A typer option whose help is the config field's description: options are declared once, in the config."""
    return typer.Option(*flags, help=" ".join(filter(None, [model.help(field), more])),
                        rich_help_panel=panel or PANELS.get(model, {}).get(field), **kwargs)


TunerChoice = choices("Tuner", Tuner)
ObjectiveChoice = choices("Objective", Objective)
FamilyChoice = choices("Family", Family)
DatasetChoice = choices("Dataset", BundledDataset)
SwitchChoice = choices("Switch", Switch)
StrategyChoice = choices("Strategy", Strategy)
QuantizeChoice = choices("Quantize", Variant)
ModeChoice = choices("Mode", RetrainMode)
ClassWeightChoice = choices("ClassWeight", ClassWeight)
SelectionChoice = choices("Selection", Selection)
MetricChoice = choices("Metric", HoldoutMetric)
BackboneChoice = choices("Backbone", Backbone)
T, R, E = TrainConfig, RetrainConfig, ExportOptions


@app.command()
def train(
    data: Annotated[Optional[Path], option(T, "data")] = T.default("data"),
    dataset: Annotated[Optional[DatasetChoice], option(T, "dataset")] = T.default("dataset"),
    target: Annotated[Optional[str], option(T, "target")] = T.default("target"),
    test_data: Annotated[Optional[Path], option(T, "test_data")] = T.default("test_data"),
    name: Annotated[Optional[str], option(T, "name")] = T.default("name"),
    runs_root: Annotated[Path, option(T, "runs_root")] = T.default("runs_root"),
    run_dir: Annotated[Optional[Path], option(T, "run_dir")] = T.default("run_dir"),
    budget_minutes: Annotated[float, option(T, "budget_minutes")] = T.default("budget_minutes"),
    tuner: Annotated[TunerChoice, option(T, "tuner")] = T.default("tuner"),
    objective: Annotated[ObjectiveChoice, option(T, "objective")] = T.default("objective"),
    max_trials: Annotated[int, option(T, "max_trials")] = T.default("max_trials"),
    max_epochs: Annotated[int, option(T, "max_epochs")] = T.default("max_epochs"),
    finetune_epochs: Annotated[int, option(T, "finetune_epochs")] = T.default("finetune_epochs"),
    family: Annotated[Optional[list[FamilyChoice]], option(T, "families", more="Repeatable.")] = T.default("families"),
    batch_size: Annotated[int, option(T, "batch_size")] = T.default("batch_size"),
    image_size: Annotated[Optional[str], option(T, "image_size")] = None,
    column_role: Annotated[Optional[list[str]], option(T, "column_roles", "--column-role",
                                                       more="Repeatable, e.g. --column-role zip=categorical.")] = None,
    seed: Annotated[int, option(T, "seed")] = T.default("seed"),
    quantize: Annotated[Optional[list[QuantizeChoice]], option(T, "quantize")] = None,
    int8_io: Annotated[bool, option(T, "int8_io", "--int8-io")] = T.default("int8_io"),
    quantization_tolerance: Annotated[float, option(T, "quantization_tolerance")] = T.default("quantization_tolerance"),
    max_model_kb: Annotated[Optional[float], option(T, "max_model_kb")] = T.default("max_model_kb"),
    max_latency_ms: Annotated[Optional[float], option(T, "max_latency_ms")] = T.default("max_latency_ms"),
    prune: Annotated[Optional[float], option(T, "prune")] = T.default("prune"),
    distill: Annotated[bool, option(T, "distill", "--distill")] = T.default("distill"),
    compress_epochs: Annotated[int, option(T, "compress_epochs")] = T.default("compress_epochs"),
    min_trial_steps: Annotated[int, option(T, "min_trial_steps")] = T.default("min_trial_steps"),
    subsample_from: Annotated[int, option(T, "subsample_from")] = T.default("subsample_from"),
    class_weight: Annotated[ClassWeightChoice, option(T, "class_weight")] = T.default("class_weight"),
    selection: Annotated[SelectionChoice, option(T, "selection")] = T.default("selection"),
    ensemble_size: Annotated[int, option(T, "ensemble_size")] = T.default("ensemble_size"),
    workers: Annotated[int, option(T, "workers")] = T.default("workers"),
    scheduler_address: Annotated[Optional[str], option(T, "scheduler_address")] = T.default("scheduler_address"),
    mixed_precision: Annotated[SwitchChoice, option(T, "mixed_precision")] = T.default("mixed_precision"),
    xla: Annotated[SwitchChoice, option(T, "xla")] = T.default("xla"),
    strategy: Annotated[StrategyChoice, option(T, "strategy")] = T.default("strategy"),
    pretrained: Annotated[Optional[str], option(T, "pretrained")] = T.default("pretrained"),
    backbone: Annotated[Optional[BackboneChoice], option(T, "backbone")] = T.default("backbone"),
    backbone_weights: Annotated[Optional[Path], option(T, "backbone_weights")] = T.default("backbone_weights"),
    registry: Annotated[Path, option(R, "registry", panel="Registry")] = R.default("registry"),
    register: Annotated[bool, typer.Option(help="Register the model in --registry: champion if NAME has none yet, "
                                                "else a candidate for `kerasflow models promote`.",
                                           rich_help_panel="Registry")] = True,
) -> None:
    """Validate the data, search dense/CNN/LSTM/MiniRocket/tree models (and ensembles), fine-tune, evaluate and export one."""
    config = _config(
        TrainConfig, data=data, dataset=_value(dataset), target=target, test_data=test_data, name=name,
        runs_root=runs_root, run_dir=run_dir, budget_minutes=budget_minutes, tuner=_value(tuner),
        objective=_value(objective), max_trials=max_trials, max_epochs=max_epochs, finetune_epochs=finetune_epochs,
        families=_values(family), batch_size=batch_size, image_size=_parse_size(image_size),
        column_roles=_parse_roles(column_role), seed=seed,
        int8_io=int8_io, quantization_tolerance=quantization_tolerance, max_model_kb=max_model_kb,
        max_latency_ms=max_latency_ms, prune=prune, distill=distill, compress_epochs=compress_epochs,
        registry=registry if register else None, workers=workers,
        min_trial_steps=min_trial_steps, subsample_from=subsample_from, scheduler_address=scheduler_address,
        class_weight=_value(class_weight), selection=_value(selection), ensemble_size=ensemble_size,
        mixed_precision=_value(mixed_precision), xla=_value(xla), strategy=_value(strategy),
        pretrained=pretrained, backbone=_value(backbone), backbone_weights=backbone_weights,
        **({"quantize": _values(quantize)} if quantize else {}))
    for path, rows_per_class in ((config.data, rows_per_class_needed(config.test_data is not None)),
                                 (config.test_data, None)):
        if path is not None:
            _check(check_source, path, config.target, rows_per_class, config.column_roles)
    if config.data is not None and config.test_data is not None:
        _check(check_test_data, config.test_data, config.data, config.target, config.column_roles)
    from flows.api import run_training

    _print_summary(_run(lambda: run_training(config).summary))


EXPORT_TARGET = ("A finished run folder (train or retrain), e.g. runs/digits/20261122T101500Z, or a registered model: "
                 "NAME@VERSION (NAME alone: its champion).")
EXPORT_OUT = ("Registered model only: where the export goes (default RUNS_ROOT/NAME/export-VERSION); the version "
              "folder is never written.")


@app.command()
def export(
    target: Annotated[str, typer.Argument(help=EXPORT_TARGET)],
    quantize: Annotated[Optional[list[QuantizeChoice]], option(E, "quantize")] = None,
    int8_io: Annotated[bool, option(E, "int8_io", "--int8-io")] = E.default("int8_io"),
    quantization_tolerance: Annotated[float, option(E, "quantization_tolerance", "--quantization-tolerance",
                                                    "--tolerance")] = E.default("quantization_tolerance"),
    prune: Annotated[Optional[float], option(E, "prune")] = E.default("prune"),
    distill: Annotated[bool, option(E, "distill", "--distill")] = E.default("distill"),
    compress_epochs: Annotated[int, option(E, "compress_epochs")] = E.default("compress_epochs"),
    max_model_kb: Annotated[Optional[float], option(E, "max_model_kb")] = E.default("max_model_kb"),
    max_latency_ms: Annotated[Optional[float], option(E, "max_latency_ms")] = E.default("max_latency_ms"),
    registry: Annotated[Path, option(R, "registry")] = R.default("registry"),
    out: Annotated[Optional[Path], typer.Option(help=EXPORT_OUT)] = None,
    runs_root: Annotated[Path, option(T, "runs_root")] = T.default("runs_root"),
) -> None:
    """Re-export a model as TFLite variants (parity, size, latency, model card) without retraining.

    A run folder's export/ is replaced only when every asked variant converted with builtin ops and was
    checked on the test split; on any error the previous export stays as it was. --prune and --distill add
    compressed models (see `kerasflow compress`).
    """
    options = _config(ExportOptions, int8_io=int8_io, quantization_tolerance=quantization_tolerance, prune=prune,
                      distill=distill, compress_epochs=compress_epochs, max_model_kb=max_model_kb,
                      max_latency_ms=max_latency_ms, **({"quantize": _values(quantize)} if quantize else {}))
    _export(target, options, registry, out, runs_root)


@app.command()
def compress(
    target: Annotated[str, typer.Argument(help=EXPORT_TARGET)],
    prune: Annotated[Optional[float], option(E, "prune")] = E.default("prune"),
    distill: Annotated[bool, option(E, "distill", "--distill")] = E.default("distill"),
    max_model_kb: Annotated[Optional[float], option(E, "max_model_kb")] = E.default("max_model_kb"),
    max_latency_ms: Annotated[Optional[float], option(E, "max_latency_ms")] = E.default("max_latency_ms"),
    compress_epochs: Annotated[int, option(E, "compress_epochs")] = E.default("compress_epochs"),
    quantization_tolerance: Annotated[float, option(E, "quantization_tolerance", "--quantization-tolerance",
                                                    "--tolerance")] = E.default("quantization_tolerance"),
    registry: Annotated[Path, option(R, "registry")] = R.default("registry"),
    out: Annotated[Optional[Path], typer.Option(help=EXPORT_OUT)] = None,
    runs_root: Annotated[Path, option(T, "runs_root")] = T.default("runs_root"),
) -> None:
    """Prune and/or distil a trained model and export the results beside its quantized variants.

    Example: kerasflow compress digits@v0002 --prune 0.5 --distill --max-model-kb 20. Both learn from the
    run's training sample (replay.npz), are converted to int8 and checked on the test split like any
    variant; the smallest model within tolerance is recommended.
    """
    if prune is None and not distill:
        fail("nothing to compress: give --prune SPARSITY (e.g. 0.5), --distill, or both")
    options = _config(ExportOptions, quantization_tolerance=quantization_tolerance, prune=prune, distill=distill,
                      compress_epochs=compress_epochs, max_model_kb=max_model_kb, max_latency_ms=max_latency_ms)
    _export(target, options, registry, out, runs_root)


def _export(target: str, options: ExportOptions, registry: Path, out: Path | None, runs_root: Path) -> None:
    run_folder = _is_run_folder(target, registry)
    if not run_folder:
        _check(parse_ref, target)
    from flows.export import export_flow, export_version_flow

    if run_folder:
        summary = _run(export_flow, target, options)
    else:
        summary = _run(export_version_flow, target, str(registry), str(out) if out else None, str(runs_root), options)
    _print_variants(summary)


@app.command()
def retrain(
    name: Annotated[str, typer.Argument(help=R.help("name"))],
    data: Annotated[Optional[Path], option(R, "data")] = R.default("data"),
    dataset: Annotated[Optional[DatasetChoice], option(R, "dataset")] = R.default("dataset"),
    target: Annotated[Optional[str], option(R, "target")] = R.default("target"),
    test_data: Annotated[Optional[Path], option(R, "test_data")] = R.default("test_data"),
    image_size: Annotated[Optional[str], option(R, "image_size")] = None,
    mode: Annotated[ModeChoice, option(R, "mode")] = R.default("mode"),
    registry: Annotated[Path, option(R, "registry")] = R.default("registry"),
    runs_root: Annotated[Path, option(R, "runs_root")] = R.default("runs_root"),
    metric: Annotated[MetricChoice, option(R, "metric")] = R.default("metric"),
    min_improvement: Annotated[float, option(R, "min_improvement")] = R.default("min_improvement"),
    max_recall_drop: Annotated[float, option(R, "max_recall_drop")] = R.default("max_recall_drop"),
    psi_threshold: Annotated[float, option(R, "psi_threshold")] = R.default("psi_threshold"),
    drift_alpha: Annotated[float, option(R, "drift_alpha")] = R.default("drift_alpha"),
    replay_fraction: Annotated[float, option(R, "replay_fraction")] = R.default("replay_fraction"),
    finetune_epochs: Annotated[int, option(R, "finetune_epochs")] = R.default("finetune_epochs"),
    learning_rate_factor: Annotated[float, option(R, "learning_rate_factor")] = R.default("learning_rate_factor"),
    budget_minutes: Annotated[Optional[float], option(R, "budget_minutes")] = R.default("budget_minutes"),
    max_trials: Annotated[Optional[int], option(R, "max_trials")] = R.default("max_trials"),
    max_epochs: Annotated[Optional[int], option(R, "max_epochs")] = R.default("max_epochs"),
    seed: Annotated[int, option(R, "seed")] = R.default("seed"),
) -> None:
    """Retrain a registered model on new data; promote the challenger only if it beats the champion.

    New data is checked against the champion's expectations and for drift against its training data; a
    challenger is fine-tuned from the champion (or searched afresh); both are scored on the same fresh holdout.
    The registry changes last, atomically; a rejected challenger is registered with the reason.
    """
    config = _config(
        RetrainConfig, name=name, data=data, dataset=_value(dataset), target=target, test_data=test_data,
        image_size=_parse_size(image_size), mode=_value(mode),
        registry=registry, runs_root=runs_root, metric=_value(metric), min_improvement=min_improvement,
        max_recall_drop=max_recall_drop, psi_threshold=psi_threshold, drift_alpha=drift_alpha,
        replay_fraction=replay_fraction, finetune_epochs=finetune_epochs, learning_rate_factor=learning_rate_factor,
        budget_minutes=budget_minutes, max_trials=max_trials, max_epochs=max_epochs, seed=seed)
    _check_new_data(config, config.data, config.test_data)
    from flows.retrain import retrain_flow

    _print_retrain(_run(retrain_flow, config))


@app.command()
def predict(
    source: Annotated[str, typer.Argument(help="The model: NAME (its champion), NAME@VERSION, or a run folder.")],
    data: Annotated[Path, typer.Option(help="New data like the training data: a table (the label column may be "
                                            "absent), a folder of images or .txt files (subfolders too), an .npz "
                                            "with x (and lengths, when ragged), or a .ts file.")],
    out: Annotated[Path, typer.Option(help="CSV to write: id (row number, file name or sample number), label, "
                                           "and p_<class> per class, in the input's order.")] = Path("predictions.csv"),
    variant: Annotated[Optional[str], typer.Option(help="Score with this exported TFLite variant (float32, float16, "
                                                        "dynamic, int8, and pruned_int8 / distilled_int8 when "
                                                        "compressed) through the LiteRT interpreter, as the app "
                                                        "will; default: the Keras model.")] = None,
    keep: Annotated[Optional[str], typer.Option(help="Copy this input column (an ID) into the output.")] = None,
    registry: Annotated[Path, option(R, "registry")] = R.default("registry"),
) -> None:
    """Score new data: checked against the model's expectations and training data first, then labelled.

    Schema problems (a missing column, text in a numeric column) stop with one line; images are resized and
    sequences padded or cut to the model's input, unseen categories encoded as unknown, and drift is reported
    as a warning with its table.
    """
    from flows.api import load

    if not data.exists():
        fail(f"{data}: no such file or folder")
    if data.is_file() and data.suffix.lower() == ".npz":
        _check(check_sequence_file, data)
    if not Path(source).is_dir():
        _check(parse_ref, source)
    predictions = _check(lambda: load(source, registry).predict(data, variant, keep))
    predictions.write_csv(out)
    summary = predictions.summary()
    table = Table("label", "rows", title=f"{summary['rows']} rows scored with {summary['model']} ({summary['variant']})")
    for label, count in summary["labels"].items():
        table.add_row(label, str(count))
    console.print(table)
    for note in summary["notes"]:
        console.print(f"note: {escape(note)}", highlight=False)
    if summary["drifted"]:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(summary['drift'])}", highlight=False)
        drift = Table("column", "PSI", "p-value", "change", title="Drift against the training data")
        for row in predictions.drift.to_rows():
            if row["drifted"] == "yes":
                drift.add_row(row["column"], str(row["PSI"]), str(row["p-value"]), row["change"])
        console.print(drift)
    else:
        console.print(f"drift: {summary['drift']}", highlight=False)
    console.print(f"predictions: [bold]{out}[/bold]")


@app.command()
def schedule(
    name: Annotated[Optional[str], typer.Argument(help="Registered model to retrain on a schedule (its champion "
                                                       "is the model to beat).")] = None,
    data: Annotated[Optional[Path], option(R, "data", panel="Retrain")] = R.default("data"),
    dataset: Annotated[Optional[DatasetChoice], option(R, "dataset", panel="Retrain")] = R.default("dataset"),
    mode: Annotated[ModeChoice, option(R, "mode", panel="Retrain")] = R.default("mode"),
    registry: Annotated[Path, option(R, "registry", panel="Retrain")] = R.default("registry"),
    runs_root: Annotated[Path, option(R, "runs_root", panel="Retrain")] = R.default("runs_root"),
    cron: Annotated[Optional[str], typer.Option(help="When to retrain, as cron: '0 2 * * *' is 02:00 every night.",
                                                rich_help_panel="When")] = None,
    interval: Annotated[Optional[float], typer.Option(help="Or every this many seconds.",
                                                      rich_help_panel="When")] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of --cron.", rich_help_panel="When")] = "UTC",
    pool: Annotated[str, typer.Option(help="Prefect process work pool (created if missing); run `prefect worker "
                                           "start --pool POOL` to execute the runs.",
                                      rich_help_panel="Where")] = "kerasflow",
    serve: Annotated[bool, typer.Option("--serve", help="Run the schedule from this process instead (no pool, no "
                                                        "worker; stops with Ctrl-C).", rich_help_panel="Where")] = False,
    score: Annotated[bool, typer.Option("--predict", help="Schedule batch scoring of --data instead of a retrain: "
                                                          "each run writes OUT_DIR/NAME-<time>.csv.",
                                        rich_help_panel="Batch scoring")] = False,
    out_dir: Annotated[Path, typer.Option(help="Where scheduled predictions go.",
                                          rich_help_panel="Batch scoring")] = Path("predictions"),
    list_: Annotated[bool, typer.Option("--list", help="List every scheduled retrain and scoring, and their next "
                                                       "runs.")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Remove NAME's schedule (with --predict: its scoring).")] = False,
) -> None:
    """Retrain (or, with --predict, score with) a registered model on a schedule: a Prefect deployment on a server.

    With PREFECT_API_URL pointing at a server (`make ui`), e.g.:
    kerasflow schedule wine --data /data/wine/latest.csv --cron "0 2 * * *", then
    prefect worker start --pool kerasflow. Each run checks the new data, builds a challenger and promotes it only
    if it beats the champion.
    """
    from prefect.settings import PREFECT_API_URL

    if name is not None:
        _check(check_model_name, name)
    if not PREFECT_API_URL.value():
        fail("schedules need a Prefect server, whose scheduler creates the runs (the embedded one has none): start "
             "one (make ui) and set PREFECT_API_URL=http://127.0.0.1:4200/api")
    from flows import schedule as schedules

    if list_:
        table = Table("deployment", "model", "schedule", "pool", "next runs", "paused",
                      title="Scheduled retrains and scoring")
        for item in _check(schedules.scheduled):
            table.add_row(item.deployment, item.model, item.schedule, item.pool, "\n".join(item.next_runs) or "-",
                          "yes" if item.paused else "no")
        console.print(table)
        return
    if not name:
        fail("give the model NAME to schedule (or --list)")
    if remove:
        removed = _check(schedules.unschedule, name, score)
        console.print(f"schedule of {name}: {'removed' if removed else 'there was none'}")
        return
    config = _config(RetrainConfig, name=name, data=data, dataset=_value(dataset), mode=_value(mode),
                     registry=registry, runs_root=runs_root)
    if score:
        if data is None:
            fail("--predict scores a file: give --data")
        deployment = _check(schedules.build_scoring, config, out_dir, cron, interval, timezone)
    else:
        deployment = _check(schedules.build, config, cron, interval, timezone)
    if not score:
        _check_new_data(config, data)
    if serve:
        console.print(f"serving [bold]{deployment.name}[/bold]; Ctrl-C stops it")
        schedules.serve_forever(deployment)
        return
    deployment_id = _check(schedules.apply_to_pool, deployment, pool)
    console.print(f"scheduled [bold]{deployment.flow_name}/{deployment.name}[/bold] ({deployment_id}) on work pool "
                  f"[bold]{pool}[/bold]; start a worker: prefect worker start --pool {pool}")


@app.command()
def datasets() -> None:
    """List the bundled demo datasets (they ship with installed packages; nothing downloads)."""
    table = Table("name", "kind", "source")
    for name, kind, source in [("digits", "images 8x8", "scikit-learn"), ("breast_cancer", "table", "scikit-learn"),
                               ("wine", "table", "scikit-learn"), ("gunpoint", "sequences 150x1", "aeon (UCR)")]:
        table.add_row(name, kind, source)
    console.print(table)


@app.command("convert-sequences")
def convert_sequences(
    old: Annotated[Path, typer.Argument(help="An old-style .npz whose x is an object array of ragged sequences.")],
    new: Annotated[Path, typer.Argument(help="The .npz to write: x (every step, one sequence after another), "
                                             "lengths and y.")],
) -> None:
    """Convert an old-style sequence file, which kerasflow refuses, to the pickle-free format it reads.

    An object array is a pickle: reading it runs whatever code it holds, so kerasflow never reads one from
    --data. This command does, for a file you trust (you wrote it, or know who did). Ragged sequences are
    then stored as x = np.concatenate(sequences) and lengths = [len(s) for s in sequences].
    """
    from pipelines.load import convert_trusted_sequences

    count = _check(convert_trusted_sequences, old, new)
    console.print(f"{count} sequences written to [bold]{escape(str(new))}[/bold]")


def _run(flow, *args) -> dict:
    """Run a flow (or the API); a user error (bad data, bad registry, busy model) ends as one line and exit code 2.

    Prefect's local server is started first (`flows.server`), so a fresh or busy machine does not time out.
    """
    from flows.server import start_local_server

    quiet_user_errors_on_console()
    try:
        seconds = start_local_server()
        if seconds is not None:
            errors.print(f"Prefect's local server is ready ({seconds:.1f} s)", style="dim", highlight=False)
        return flow(*args)
    except KerasflowError as exc:
        fail(str(exc))


def _check(function, *args):
    """A check that runs before any work (and before Prefect starts): a user error is one line and exit code 2."""
    try:
        return function(*args)
    except KerasflowError as exc:
        fail(str(exc))


def _check_new_data(config: RetrainConfig, *paths: Path | None) -> None:
    """The model has a champion, and each given path exists with the champion's target column (tables)."""
    champion = _check(Registry(config.registry).required_champion, config.name, False)
    target = config.target or champion.record.get("config", {}).get("target")
    try:  # a table's columns are checked in the champion's terms; a damaged file is the flow's to report
        roles = from_json(Preprocessing.load(champion.file(PREPROCESSING_FILE)).roles)
    except (OSError, ValueError, TypeError):
        roles = {}
    given = {name: role.role for name, role in roles.items()} or None
    taken = [name for name, role in roles.items() if role.role not in DROPPED]
    for path in paths:
        if path is not None:
            _check(check_source, path, target, None, given)
            _check(check_columns_present, path, taken, f"the champion {champion.ref} was trained on",
                   "a retrain's data holds the champion's columns (their cells may be empty)")


def _config(model: type[Options], **values):
    """Validated options, or one line naming each bad option and exit code 2, before any work."""
    try:
        return model(**values)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg'].removeprefix('Value error, ')}"
                       for e in exc.errors()))
    except KerasflowError as exc:
        fail(str(exc))


def _value(choice: Enum | str | None):
    return choice.value if isinstance(choice, Enum) else choice


def _values(chosen: list | None) -> list | None:
    return [_value(c) for c in chosen] if chosen else None


def _is_run_folder(target: str, registry: Path) -> bool:
    """A path (existing, or with a separator) is a run folder; NAME@VERSION or a registered NAME is a version."""
    if "@" in target:
        return False
    path = Path(target)
    if path.is_dir() or len(path.parts) > 1:
        return True
    try:
        return target not in Registry(registry).models()
    except KerasflowError:
        return True


def _parse_roles(given: list[str] | None) -> dict[str, str]:
    """NAME=ROLE pairs of --column-role (the role is checked with the other options)."""
    roles = {}
    for text in given or []:
        name, sep, role = text.rpartition("=")
        if not sep or not name:
            fail(f"--column-role {text!r}: expected NAME=ROLE, e.g. customer_id=identifier")
        roles[name] = role
    return roles


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        fail(f"--image-size {text!r}: expected HEIGHTxWIDTH, e.g. 32x32")
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
    table = Table("KiB", "gzip KiB", "accuracy", "agreement", "median ms",
                  title="TFLite variants vs Keras (test split; macro-F1 and p95 in report.md)")
    table.columns[0:0] = [Column("verdict", no_wrap=True, min_width=11), Column("variant", no_wrap=True)]
    keras = export["keras"]
    table.add_row("reference", "keras", f"{keras['bytes'] / 1024:.1f}", "", f"{keras['accuracy']:.4f}", "",
                  f"{keras['latency_median_ms']:.3f}")
    for v in export["variants"]:
        verdict = "[bold]recommended[/bold]" if v["recommended"] else "ok" if v["within_tolerance"] else "too lossy"
        gzipped = f"{v['gzip_bytes'] / 1024:.1f}" if v.get("gzip_bytes") else ""
        table.add_row(verdict, v["variant"], f"{v['bytes'] / 1024:.1f}", gzipped, f"{v['accuracy']:.4f}",
                      f"{v['label_agreement']:.4f}", f"{v['latency_median_ms']:.3f}")
    console.print(table)
    for v in export["variants"]:
        if v.get("source", TRAINED_MODEL) != TRAINED_MODEL:
            console.print(f"{v['variant']}: {v['source']}")
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
