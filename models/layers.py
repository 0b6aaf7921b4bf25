"""Preprocessing layers that live inside the exported model.

They use only ops that TFLite has as builtins (sub, mul, sum, not_equal, select,
one_hot, concat), so the .tflite model takes raw features too; `GrayFromRgb` lets a
model trained on gray images take the RGB images mobile clients give. `all_layers` walks
a model's layers through nested models (the export and transfer learning look inside).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

MIN_VARIANCE = 1e-12  # a column's variance is floored here before its inverse square root is taken


@keras.saving.register_keras_serializable(package="kerasflow")
class TabularEncoder(keras.layers.Layer):
    """Standardise numeric columns, impute NaN with the training mean, one-hot category codes.

    Input: float32 [batch, n_numeric + n_categorical], numbers first, then
    integer category codes (0 = unseen or missing) as floats.

    A column is scaled by its inverse standard deviation, worked out here in
    float64 and rounded once (`inverse_std`), rather than divided by a standard
    deviation computed in the graph. Where every variance was 1 (a test's
    identity preprocessing), the TFLite converter folded that division into a
    multiplication by a reciprocal square root that is not correctly rounded
    (0.99999994), so the exported features came out one float step off the
    Keras model's (with real variances they were exact). A tree's threshold can sit
    exactly on a training value (the midpoint of its neighbours in the tree's
    bootstrap sample), and one step moved whole trees: a forest's float32 TFLite
    probabilities were 0.02 off the Keras model's on wine so preprocessed. With
    the constant given, Keras and TFLite multiply by the same float32 numbers.
    """

    def __init__(self, mean, variance, cardinalities, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.variance = [float(v) for v in variance]
        self.cardinalities = [int(c) for c in cardinalities]

    @property
    def inverse_std(self) -> np.ndarray:
        """1 / sqrt(variance) per numeric column (variance floored at `MIN_VARIANCE`), float64 rounded to float32."""
        return (1.0 / np.sqrt(np.maximum(np.asarray(self.variance, np.float64), MIN_VARIANCE))).astype(np.float32)

    def call(self, inputs):
        n_numeric = len(self.mean)
        parts = []
        if n_numeric:
            numeric = inputs[:, :n_numeric]
            scaled = (numeric - ops.convert_to_tensor(self.mean)) * ops.convert_to_tensor(self.inverse_std)
            parts.append(ops.where(ops.not_equal(scaled, scaled), ops.zeros_like(scaled), scaled))
        for i, depth in enumerate(self.cardinalities):
            codes = ops.cast(inputs[:, n_numeric + i], "int32")
            parts.append(ops.one_hot(codes, depth))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.mean) + sum(self.cardinalities))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "variance": self.variance,
                "cardinalities": self.cardinalities}


# ITU-R 601-2 luma: the weights of PIL's convert("L"), which reads gray image files for training and `kerasflow predict`.
LUMA = (0.299, 0.587, 0.114)


@keras.saving.register_keras_serializable(package="kerasflow")
class GrayFromRgb(keras.layers.Layer):
    """RGB pixels [..., 3] to one gray channel [..., 1] with the `LUMA` weights (MUL and SUM, TFLite builtins).

    A gray pixel given as three equal channels comes out as itself, since the weights sum to 1.
    """

    def call(self, inputs):
        return ops.sum(inputs * ops.convert_to_tensor(LUMA, dtype=inputs.dtype), axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)


def all_layers(model):
    """Every layer of `model`, depth first, nested models and their layers included."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from all_layers(layer)
