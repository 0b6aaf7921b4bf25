"""`kerasflow models`: list, show, promote and roll back registered versions."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.output import console, fail
from pipelines.errors import KerasflowError
from pipelines.registry import ModelVersion, Registry

models_app = typer.Typer(help="The model registry: versions, the champion, promotion and rollback.",
                         no_args_is_help=True)
RegistryOption = Annotated[Path, typer.Option(help="Model registry root.")]


@models_app.command("list")
def list_models(registry: RegistryOption = Path("registry")) -> None:
    """Every model with its champion and its versions (metrics, mode, decision)."""
    with _registry_errors():
        store = Registry(registry)
        names = store.models()
        if not names:
            console.print(f"no models in {registry}")
        for name in names:
            _print_versions(store, name)


@models_app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME (its champion) or NAME@VERSION, e.g. digits@v0002.")],
    registry: RegistryOption = Path("registry"),
) -> None:
    """One version's record: metrics, data fingerprint, hyperparameters, parent, code, decision, files."""
    with _registry_errors():
        version = Registry(registry).resolve(ref)
        record = {k: v for k, v in version.record.items() if k != "files"}
        console.print_json(json.dumps(record, default=str))
        for base in record.get("pretrained") or []:
            console.print(f"pretrained from {base['source']} [bold]{base['name']}[/bold] "
                          f"({base['path']}, sha256 {base['sha256']})")
        console.print(f"{len(version.record['files'])} files in [bold]{version.path}[/bold]")


@models_app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to make champion.")],
    registry: RegistryOption = Path("registry"),
) -> None:
    """Make a version the champion by hand (its files' checksums are checked first)."""
    name, _, version = ref.partition("@")
    if not version:
        fail(f"{ref!r}: give NAME@VERSION, e.g. {ref}@v0002")
    with _registry_errors():
        store = Registry(registry)
        with store.lock(name, "kerasflow models promote"):
            store.promote(name, version)
        console.print(f"champion of {name}: [bold]{version}[/bold]")


@models_app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    registry: RegistryOption = Path("registry"),
) -> None:
    """Make the previous champion the champion again (its files' checksums are checked first)."""
    with _registry_errors():
        store = Registry(registry)
        with store.lock(name, "kerasflow models rollback"):
            previous = store.rollback(name)
        console.print(f"champion of {name}: [bold]{previous.version}[/bold] (rolled back)")


def _print_versions(store: Registry, name: str) -> None:
    champion = store.champion(name, verify=False)
    table = Table("version", "champion", "mode", "parent", "family", "accuracy", "macro F1", "rows", "registered",
                  "decision", title=f"{name} (champion {champion.version if champion else 'none'})")
    for version in store.versions(name):
        table.add_row(*_version_row(version, champion))
    console.print(table)


def _version_row(version: ModelVersion, champion: ModelVersion | None) -> list[str]:
    record, metrics = version.record, version.metrics
    decision = record.get("decision", {})
    return [version.version, "*" if champion and champion.version == version.version else "",
            str(record.get("mode", "")), str(record.get("parent") or ""), str(record.get("family", "")),
            _number(metrics.get("accuracy")), _number(metrics.get("macro_f1")),
            str(record.get("data", {}).get("rows", "")), str(record.get("registered", ""))[:19],
            ("promoted" if decision.get("promoted") else "kept champion") + f": {decision.get('reason', '')}"]


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


@contextmanager
def _registry_errors():
    """Registry problems (a corrupt file, an unknown version, a busy model) end as one line, exit code 2."""
    try:
        yield
    except KerasflowError as exc:
        fail(str(exc))
