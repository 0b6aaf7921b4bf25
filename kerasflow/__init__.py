"""kerasflow from Python: `train` on a path, a DataFrame or arrays; `load` a model and `predict`.

The same pipeline as the `kerasflow` command (see `flows/api.py` for an example).
"""

from flows.api import Model, Trained, load, train
from pipelines.predict import Predictions

__all__ = ["Model", "Predictions", "Trained", "load", "train"]
