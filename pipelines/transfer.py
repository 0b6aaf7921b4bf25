"""Pretrained start: find the base a run may start from, and check the data fits it.

`pretrained_base` turns `--pretrained NAME[@VERSION]` (a registered model,
its files checked against their sha256) or `--backbone` with a local weights
file into a `models.transfer.TransferBase`, and returns the preprocessing the
run must use: a registered table model's features are read with its own
column order and vocabularies. When the data does not fit the base, a
`DataError` says what differs, before anything is trained or written.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from models import member_hyperparameters
from models.transfer import Source, TransferBase, bases_used
from pipelines.config import TrainConfig
from pipelines.errors import DataError
from pipelines.preprocess import Preprocessing
from pipelines.registry import MODEL_FILE, PREPROCESSING_FILE, Registry, sha256

RGB_OR_GRAY = (1, 3)


def pretrained_base(config: TrainConfig, prep: Preprocessing) -> tuple[TransferBase | None, Preprocessing]:
    """The base `config` asks for (None without one) and the preprocessing to train with."""
    if config.pretrained:
        return _registered(config, prep)
    if config.backbone:
        return _backbone(config.backbone, Path(config.backbone_weights), prep), prep
    return None, prep


def _registered(config: TrainConfig, prep: Preprocessing) -> tuple[TransferBase, Preprocessing]:
    if config.registry is None:
        raise DataError(f"--pretrained {config.pretrained} is looked up in --registry, and registering is off "
                        "(--no-register); give --registry PATH")
    version = Registry(config.registry).resolve(config.pretrained, verify=True)
    parent = Preprocessing.load(version.file(PREPROCESSING_FILE))
    problem = mismatch(parent, prep)
    if problem:
        raise DataError(f"--pretrained {version.ref} does not fit this data: {problem}")
    if prep.kind == "table":  # the base reads columns in its order, categories with its codes
        prep = replace(prep, numeric_columns=parent.numeric_columns, categorical_columns=parent.categorical_columns,
                       vocabularies=parent.vocabularies, mean=parent.mean, variance=parent.variance,
                       input_shape=parent.input_shape)
    path = version.file(MODEL_FILE)
    return TransferBase(Source.REGISTERED, version.ref, str(path), sha256(path)), prep


def _backbone(name: str, weights: Path, prep: Preprocessing) -> TransferBase:
    if prep.kind != "image":
        raise DataError(f"--backbone {name} is an image model; this data is a {prep.kind}")
    channels = prep.input_shape[-1]
    if channels not in RGB_OR_GRAY:
        raise DataError(f"--backbone {name} takes grayscale or RGB images; these have {channels} channels")
    return TransferBase(Source.BACKBONE, name, str(weights.resolve()), sha256(weights))


def mismatch(parent: Preprocessing, prep: Preprocessing) -> str:
    """What differs between the input a registered model takes and this data's ("" when it fits)."""
    if parent.kind != prep.kind:
        return f"it takes {parent.kind} data, this is {prep.kind} data"
    if parent.kind == "table":
        theirs = {*parent.numeric_columns, *parent.categorical_columns}
        ours = {*prep.numeric_columns, *prep.categorical_columns}
        missing, extra = sorted(theirs - ours), sorted(ours - theirs)
        retyped = sorted(set(parent.numeric_columns) & set(prep.categorical_columns)
                         | set(parent.categorical_columns) & set(prep.numeric_columns))
        parts = ([f"missing columns {', '.join(missing)}"] if missing else []) + \
                ([f"extra columns {', '.join(extra)}"] if extra else []) + \
                ([f"numeric in one and categorical in the other: {', '.join(retyped)}"] if retyped else [])
        return f"table columns differ ({'; '.join(parts)})" if parts else ""
    if parent.input_shape == prep.input_shape:
        return ""
    if parent.kind == "image":
        (h, w, c), (h2, w2, c2) = parent.input_shape, prep.input_shape
        what = [f"image size {h}x{w} vs {h2}x{w2} (give --image-size {h}x{w})"] if (h, w) != (h2, w2) else []
        what += [f"{c} channel(s) vs {c2}"] if c != c2 else []
        return "; ".join(what)
    (t, f), (t2, f2) = parent.input_shape, prep.input_shape
    what = [f"sequence length {t} steps vs {t2}"] if t != t2 else []
    what += [f"{f} features per step vs {f2}"] if f != f2 else []
    return "; ".join(what)


def lineage(hyperparameters: dict) -> list[dict]:
    """The pretrained bases a model was started from (name, file, sha256), as a registry records them; [] when
    it was trained from scratch (also when a base was offered and the search chose not to use it)."""
    return [asdict(base) for base in bases_used(member_hyperparameters(hyperparameters))]


def describe_lineage(bases: list[dict]) -> str:
    """'registered model tab@v0001 (model.keras, sha256 3f2a...)', several joined by '; ', or ''."""
    return "; ".join(TransferBase(**base).describe() for base in bases)
