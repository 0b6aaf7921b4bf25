"""The Python API: `kerasflow.train(...)` and `kerasflow.load(...).predict(...)`; the CLI is a thin layer over it.

    import kerasflow
    trained = kerasflow.train(frame, target="label", budget_minutes=2)      # a DataFrame, a path, or x=, y=
    trained.metrics["accuracy"], trained.run_dir
    predictions = kerasflow.load(trained.run_dir).predict(new_frame)       # or kerasflow.load("NAME@v0002")
    predictions.to_frame()                                                   # id, label, p_<class>...
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import TrainConfig
from pipelines.errors import DataError
from pipelines.load import write_sequence_file
from pipelines.predict import Predictions, TrainedModel, open_model, predict
from pipelines.registry import check_model_name


@dataclass
class Trained:
    """What `train` returns: the run's summary, and the model on demand.

    Attributes:
        summary: the flow's return value (run folder, test metrics, family, export, report, registry version).
    """

    summary: dict

    @property
    def run_dir(self) -> Path:
        return Path(self.summary["run_dir"])

    @property
    def metrics(self) -> dict[str, float]:
        """Test-split scores: accuracy, balanced_accuracy, macro_f1, macro_precision, macro_recall."""
        return self.summary["test"]

    @property
    def family(self) -> str:
        return self.summary["family"]

    @property
    def registered(self) -> str | None:
        return self.summary.get("registered")

    def keras_model(self):
        from models.saving import load_model

        return load_model(self.run_dir / "finetuned.keras")

    def predict(self, data, variant: str | None = None, keep: str | None = None) -> Predictions:
        return load(self.run_dir).predict(data, variant, keep)


class Model:
    """A trained model to score new data with: a run folder or a registered version (see `load`)."""

    def __init__(self, trained: TrainedModel):
        self.trained = trained

    @property
    def ref(self) -> str:
        return self.trained.ref

    @property
    def class_names(self) -> list[str]:
        return list(self.trained.prep.class_names)

    @property
    def variants(self) -> list[str]:
        """`keras` and every exported TFLite variant, any of which `predict` can score with."""
        return ["keras", *self.trained.variants()]

    def predict(self, data, variant: str | None = None, keep: str | None = None) -> Predictions:
        """Labels and probabilities for `data`: a path, a DataFrame (tables) or an array of samples."""
        return predict(self.trained, data, variant, keep)

    def keras_model(self):
        from models.saving import load_model

        return load_model(self.trained.model_path)


def load(source: str | Path, registry: str | Path = "registry") -> Model:
    """A run folder, or NAME / NAME@vNNNN in `registry`."""
    return Model(open_model(source, registry))


def train(data=None, target: str | None = None, *, x=None, y=None, dataset: str | None = None, prefect: bool = True,
          **options) -> Trained:
    """Train on a path, a pandas DataFrame (with `target`), NumPy arrays `x` and `y`, or a bundled `dataset`.

    `options` are `TrainConfig`'s (`budget_minutes`, `name`, `registry`, ...). In-memory data is written to
    RUNS_ROOT/NAME/inputs/ first: the run reloads it from there, and so can the next retrain.
    `prefect=False` runs the same pipeline without Prefect.
    """
    runs_root = Path(options.get("runs_root") or TrainConfig.default("runs_root"))
    name = options.get("name") and check_model_name(options["name"])  # before in-memory data is written under it
    if isinstance(data, pd.DataFrame):
        if not target:
            raise DataError("a DataFrame needs target=, the name of its label column")
        name = name or "dataframe"
        data = _stash(runs_root, name, "parquet", lambda path: data.to_parquet(path, index=False))
    elif x is not None:
        data, target, name = _arrays(runs_root, name, np.asarray(x) if not isinstance(x, list) else x, y, target)
    config = TrainConfig(data=Path(data) if data is not None else None, dataset=dataset, target=target,
                         **{**options, "name": name})
    return run_training(config, prefect)


def run_training(config: TrainConfig, prefect: bool = True) -> Trained:
    """One training run for `config`, as the Prefect flow or directly."""
    if prefect:
        from flows.server import start_local_server
        from flows.train import train_flow

        start_local_server()

        return Trained(train_flow(config))
    from pipelines.train import train as train_pipeline

    return Trained(train_pipeline(config).summary())


def _arrays(runs_root: Path, name: str | None, x, y, target: str | None):
    if y is None or len(y) != len(x):
        raise DataError(f"x has {len(x)} samples but y has {'none' if y is None else len(y)} labels")
    name = name or "arrays"
    shape = np.asarray(x[0]).shape
    if isinstance(x, np.ndarray) and x.ndim == 2:
        target = target or "label"
        frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(**{target: np.asarray(y)})
        return _stash(runs_root, name, "parquet", lambda path: frame.to_parquet(path, index=False)), target, name
    if len(shape) in (1, 2):  # sequences: [N, T, F], [N, T] or ragged
        return _stash(runs_root, name, "npz", lambda path: write_sequence_file(path, x, y)), None, name
    raise DataError(f"x samples have shape {shape}: give tables as [rows, columns], sequences as [N, steps, features]; "
                    "for images, give the path of a folder with one subfolder per class")


def _stash(runs_root: Path, name: str, suffix: str, write) -> Path:
    folder = runs_root / name / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.{suffix}"
    write(path)
    return path
