"""Re-export without retraining: new TFLite variants from a run folder or from a registered version.

A run folder's `export/` is replaced (atomically) and its report's Export
section rewritten. A registry version is immutable: its re-export goes to a
folder of its own (default RUNS_ROOT/NAME/export-vNNNN) and the version
folder is only read, after its checksums are verified.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.config import ExportOptions
from pipelines.errors import ExportError
from pipelines.export.records import ExportResult
from pipelines.export.run import ExportSource, export_from, reexport
from pipelines.registry import ModelVersion, Registry
from pipelines.report import REPORT_FILES, replace_export_section


def reexport_run(run_dir: Path, options: ExportOptions | None = None) -> ExportResult:
    """Export a finished run folder again (train or retrain) and update its report; no retraining."""
    result = reexport(run_dir, options)
    for name in REPORT_FILES:
        replace_export_section(Path(run_dir) / name, result)
    return result


def reexport_version(registry: Registry, ref: str, out_dir: Path | None = None, runs_root: Path = Path("runs"),
                     options: ExportOptions | None = None) -> ExportResult:
    """Export registered version `ref` (NAME@vNNNN, or NAME for its champion) into `out_dir`."""
    version = registry.resolve(ref, verify=True)
    source = ExportSource.version_folder(version.path)
    if source.missing():
        raise ExportError(f"{version.ref}: its version folder lacks {', '.join(source.missing())} (registered by an "
                          f"older kerasflow); re-export its run folder instead: kerasflow export "
                          f"{version.record.get('run_dir', 'RUN_DIR')}")
    target = Path(out_dir) if out_dir is not None else default_export_dir(version, runs_root)
    if target.resolve().is_relative_to(version.path.resolve()):
        raise ExportError(f"{target}: inside the version folder of {version.ref}; registered versions never change, "
                          "give --out a folder outside the registry")
    target.parent.mkdir(parents=True, exist_ok=True)
    return export_from(source, target, options)


def default_export_dir(version: ModelVersion, runs_root: Path) -> Path:
    return Path(runs_root) / version.name / f"export-{version.version}"
