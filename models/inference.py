"""Model outputs without tracing: what a model solved in closed form is called with, a handful of times.

`Model.predict` traces a graph function the first time a model (or a
sub-model) is called: about half a second each on a CPU, several times per
closed-form trial (features to fit on, training metrics, validation scores,
held-out predictions), while the calls themselves take milliseconds on a few
hundred rows. Calling the model eagerly, in batches, gives the same outputs
without the tracing.
"""

from __future__ import annotations

import keras
import numpy as np

BATCH_ROWS = 256  # rows per eager call: bounds the memory of MiniRocket's and the trees' intermediate tensors


def model_outputs(model: keras.Model, x: np.ndarray, batch_rows: int = BATCH_ROWS) -> np.ndarray:
    """`model`'s outputs for `x` (inference mode), as float32 numpy, called eagerly in batches of `batch_rows`."""
    x = np.asarray(x)
    parts = [keras.ops.convert_to_numpy(model(x[i:i + batch_rows], training=False)).astype(np.float32)
             for i in range(0, len(x), batch_rows)]
    if not parts:
        return np.zeros((0, *model.output.shape[1:]), np.float32)
    return np.concatenate(parts)


def log_loss_and_accuracy(probabilities: np.ndarray, y: np.ndarray) -> dict:
    """The mean log loss (probabilities clipped at 1e-7, as Keras does) and the accuracy of `probabilities`."""
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0)
    return {"loss": float(-np.log(picked).mean()), "accuracy": float((probabilities.argmax(1) == y).mean())}


def layer_inputs(model: keras.Model, layer: keras.layers.Layer, x: np.ndarray) -> np.ndarray:
    """What `layer` of `model` receives for `x`: the features a closed-form head or tree ensemble is fitted on."""
    return model_outputs(keras.Model(model.input, layer.input), x)


def head_outputs(head: keras.layers.Layer, features: np.ndarray) -> np.ndarray:
    """A model's last layer's outputs on the features it receives (what `layer_inputs` returned), as float32 numpy:
    the model without its feature layers, whose dropout passes features through at inference."""
    return keras.ops.convert_to_numpy(head(np.asarray(features, dtype=np.float32))).astype(np.float32)
