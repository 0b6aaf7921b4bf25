"""A file-based model registry: immutable versions and an atomically moved champion pointer.

    <root>/<name>/versions/v0001/version.json   what the version is (metrics, data, code, files + sha256)
    <root>/<name>/versions/v0001/...            export/, expectations.json, reference.parquet, replay.npz, ...
    <root>/<name>/champion.json                 {"champion": "v0003", "history": ["v0001", "v0003"], ...}
    <root>/<name>/.lock                         held (fcntl) by whoever changes this model

A version folder is filled under `.staging-*` and renamed into place, and
`champion.json` is replaced with `os.replace`, so a reader sees either the
old state or the new one: a killed process leaves at most a staging folder,
which the next writer removes. Versions never change after registration;
promotion and rollback only move the pointer, and every read of a champion
re-checks its files' checksums.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipelines.errors import RegistryBusy, RegistryError

VERSION_FILE = "version.json"
CHAMPION_FILE = "champion.json"
MODEL_FILE = "export/model.keras"  # a version's Keras model and its preprocessing, under its folder
PREPROCESSING_FILE = "export/preprocessing.json"


@dataclass
class ModelVersion:
    """One registered version: its folder and its `version.json` record.

    Attributes:
        name: the model name; version: vNNNN; path: the version folder.
        record: version.json (metrics, data fingerprint, hyperparameters, config, code, decision, files + sha256).
    """

    name: str
    version: str
    path: Path
    record: dict

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def metrics(self) -> dict:
        return self.record.get("metrics", {})

    def file(self, relative: str) -> Path:
        return self.path / relative

# One rule for model names everywhere (train, retrain, predict, export, schedule, the Python API, flow parameters):
# a name is one folder under the runs and registry roots, and a part of NAME@VERSION, so it has no path separator,
# no '@', and does not start with a dot.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MODEL_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100"
VERSION_NAME = re.compile(r"v[0-9]{4,}")


def model_name_problem(name: str) -> str | None:
    """Why `name` is not a model name (`MODEL_NAME`), or None when it is one."""
    if isinstance(name, str) and MODEL_NAME.fullmatch(name):
        return None
    return f"{name!r} is not a model name: use {MODEL_NAME_RULE}"


def check_model_name(name: str) -> str:
    """`name` if it is a model name, else a `RegistryError` saying the rule."""
    problem = model_name_problem(name)
    if problem:
        raise RegistryError(problem)
    return name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """NAME@VERSION (or NAME) as (name, version or None), both checked: a `RegistryError` says which is wrong."""
    name, _, version = ref.partition("@")
    check_model_name(name)
    if version and not VERSION_NAME.fullmatch(version):
        raise RegistryError(f"{ref}: {version!r} is not a version; versions are v0001, v0002, ...")
    return name, version or None


def safe_model_name(text: str) -> str:
    """A model name made from free text (a file's name): every run of other characters becomes '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")[:100].rstrip("-")
    return name or "model"


def inside(root: Path, path: Path) -> Path:
    """`path`, after checking that it lies under `root` once both are resolved (no '..' or link leads out)."""
    if not Path(path).resolve().is_relative_to(Path(root).resolve()):
        raise RegistryError(f"{path} would be written outside {root}; refused")
    return path



class Registry:
    """Versions per model name under `root`; see the module docstring for the layout."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # Reading ---------------------------------------------------------------------------------

    def models(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "versions").is_dir() or (p / CHAMPION_FILE).exists())

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self._model_dir(name) / "versions"
        if not folder.is_dir():
            return []
        return [self._read_version(name, p) for p in sorted(folder.iterdir()) if p.is_dir()]

    def version(self, name: str, version: str) -> ModelVersion:
        parse_ref(f"{name}@{version}")
        path = self._model_dir(name) / "versions" / version
        if not path.is_dir():
            known = ", ".join(v.version for v in self.versions(name)) or "none"
            raise RegistryError(f"{name}@{version}: no such version in {self.root} (versions: {known})")
        return self._read_version(name, path)

    def resolve(self, ref: str, verify: bool = False) -> ModelVersion:
        """`NAME@VERSION`, or `NAME` for its champion (whose checksums are always verified); `verify` checks a
        named version's too."""
        name, version = parse_ref(ref)
        if version:
            found = self.version(name, version)
            if verify:
                self.verify(found)
            return found
        champion = self.champion(name)
        if champion is None:
            raise RegistryError(f"{name}: no champion in {self.root}; give NAME@VERSION")
        return champion

    def champion(self, name: str, verify: bool = True) -> ModelVersion | None:
        """The current champion, its files checked against their recorded sha256; None if there is none."""
        pointer = self._read_pointer(name)
        if pointer is None:
            return None
        champion = self.version(name, pointer["champion"])
        if verify:
            self.verify(champion)
        return champion

    def required_champion(self, name: str, verify: bool = True) -> ModelVersion:
        """The champion, or a `RegistryError` that says how to get one."""
        champion = self.champion(name, verify=verify)
        if champion is None:
            known = ", ".join(self.models()) or "none"
            raise RegistryError(f"{name!r} has no champion in {self.root} (models there: {known}); train one first: "
                                f"kerasflow train ... --name {name} --registry {self.root}")
        return champion

    def history(self, name: str) -> list[str]:
        pointer = self._read_pointer(name)
        return list(pointer["history"]) if pointer else []

    def verify(self, version: ModelVersion) -> None:
        """Raise if any recorded file is missing or changed since registration."""
        files = version.record.get("files") or {}
        changed = [f for f, digest in files.items()
                   if not version.file(f).is_file() or sha256(version.file(f)) != digest]
        if changed:
            raise RegistryError(f"{version.ref}: files changed or missing since registration: "
                                f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''} (in {version.path})")

    # Writing (callers hold `lock(name)`) -------------------------------------------------------

    @contextmanager
    def lock(self, name: str, holder: str):
        """Exclusive right to change `name`; raises `RegistryBusy` naming the holder instead of waiting.

        An fcntl lock dies with its process, so a killed retrain never leaves the model locked.
        """
        folder = self._model_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise RegistryBusy(f"model {name!r} is being changed by another process "
                                   f"({handle.read().strip() or 'unknown holder'}); nothing was done — "
                                   "run again when it has finished") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{holder}, pid {os.getpid()}, since {_now()}")
            handle.flush()
            yield
        finally:
            handle.close()

    def register(self, name: str, source: dict[str, Path], record: dict, promote: bool) -> ModelVersion:
        """Copy `source` (relative name -> file or folder) into a new version; optionally make it champion."""
        model_dir = self._model_dir(name)
        for leftover in model_dir.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = model_dir / f".staging-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir(parents=True)
            for relative, path in source.items():
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if Path(path).is_dir() else shutil.copy2)(path, target)
            version = self._next_version(name)
            record = {**record, "name": name, "version": version, "registered": _now(),
                      "files": checksums(staging)}
            (staging / VERSION_FILE).write_text(json.dumps(record, indent=2, default=str))
            (model_dir / "versions").mkdir(exist_ok=True)
            os.rename(staging, model_dir / "versions" / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        registered = self.version(name, version)
        if promote:
            self.promote(name, version)
        return registered

    def promote(self, name: str, version: str) -> ModelVersion:
        """Point the champion at `version` (checked first); the old champion stays in the history."""
        target = self.version(name, version)
        self.verify(target)
        history = self.history(name)
        if history and history[-1] == version:
            return target
        self._write_pointer(name, version, [*history, version])
        return target

    def rollback(self, name: str) -> ModelVersion:
        """Make the previous champion the champion again; its files are checked before the pointer moves."""
        history = self.history(name)
        if len(history) < 2:
            raise RegistryError(f"{name}: no earlier champion to roll back to (champions so far: {history or 'none'})")
        previous = self.version(name, history[-2])
        self.verify(previous)
        self._write_pointer(name, previous.version, history[:-1])
        return previous

    # Internals --------------------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        return inside(self.root, self.root / check_model_name(name))

    def _read_version(self, name: str, path: Path) -> ModelVersion:
        record = _read_json(path / VERSION_FILE, "a version record")
        if not isinstance(record, dict) or record.get("version") != path.name or not isinstance(record.get("files"), dict):
            raise RegistryError(f"{path / VERSION_FILE}: not a kerasflow version record for {path.name} "
                                "(needs 'version' and 'files'); restore it or remove the version folder")
        return ModelVersion(name, path.name, path, record)

    def _read_pointer(self, name: str) -> dict | None:
        path = self._model_dir(name) / CHAMPION_FILE
        if not path.exists():
            return None
        pointer = _read_json(path, "the champion pointer")
        if (not isinstance(pointer, dict) or not isinstance(pointer.get("champion"), str)
                or not isinstance(pointer.get("history"), list) or pointer.get("history", [None])[-1:] != [pointer["champion"]]):
            raise RegistryError(f"{path}: not a champion pointer (expected {{\"champion\": \"v0001\", \"history\": "
                                f"[..., \"v0001\"]}}); fix it or run `kerasflow models promote {name}@VERSION`")
        return pointer

    def _write_pointer(self, name: str, version: str, history: list[str]) -> None:
        path = self._model_dir(name) / CHAMPION_FILE
        atomic_write(path, json.dumps({"champion": version, "history": history, "updated": _now()}, indent=2))

    def _next_version(self, name: str) -> str:
        folder = self._model_dir(name) / "versions"
        numbers = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit()] if folder.exists() else []
        return f"v{max(numbers, default=0) + 1:04d}"


# What kerasflow keeps per version ------------------------------------------------------------

# export_inputs.npz and card.json let a version be re-exported (`pipelines.export.reexport.reexport_version`).
RUN_FILES = ("export", "expectations.json", "metrics.json", "confusion_matrix.png", "reference.parquet",
             "replay.npz", "export_inputs.npz", "card.json", "report.md", "retrain_report.md")


def run_files(run_dir: Path) -> dict[str, Path]:
    """The files of a finished run that make up a version (models, suite, drift reference, replay, reports)."""
    return {name: Path(run_dir) / name for name in RUN_FILES if (Path(run_dir) / name).exists()}


def version_record(config, mode: str, parent: str | None, run_dir: Path, evaluation, hyperparameters: dict,
                   data: dict, decision: dict, pretrained: list[dict] | None = None) -> dict:
    """The version.json of a run: what it learnt from, how, how well, with what code, and why it is (not) champion.
    `parent`: the version a retrain started from; `pretrained`: the bases (another model, a backbone) it was built
    on, each with its file's sha256 (`pipelines.transfer.lineage`)."""
    return {
        "mode": mode,
        "parent": parent,
        "pretrained": pretrained or [],
        "created": _now(),
        "run_dir": str(run_dir),
        "family": hyperparameters.get("family"),
        "metrics": {**evaluation.headline(), "n_test": evaluation.n_test,
                    "recall": {name: c["recall"] for name, c in evaluation.per_class.items()}},
        "class_names": evaluation.class_names,
        "data": data,
        "hyperparameters": hyperparameters,
        "config": json.loads(config.model_dump_json()),
        "code": code_version(),
        "decision": decision,
    }


def code_version() -> dict:
    """Package versions and, in a git checkout, the commit: enough to rebuild the environment."""
    from importlib import metadata

    versions = {}
    for package in ("kerasflow", "tensorflow", "keras", "keras-tuner", "great-expectations", "prefect"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["git"] = _git_commit()
    return versions


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by its path relative to it."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryError(f"{path}: {what} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: {what} is not valid JSON ({exc}); it was edited or truncated") from None


def atomic_write(path: Path, text: str) -> None:
    """`text` written beside `path` and renamed onto it: a reader, or a process killed mid-write, never sees half
    a file."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # left only when the write failed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
