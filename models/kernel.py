"""RBF kernel ridge classification: Gaussian similarities to training rows, then a ridge head, both solved.

On a few hundred to a few thousand rows, a support vector machine with an RBF
kernel is the one-liner to beat (scikit-learn's `SVC()`): on digits it scores
0.98-0.99 where logistic regression scores 0.97. Its closed-form cousin,
kernel ridge classification (a least-squares SVM), scores the same and fits
into the model as two layers:

- `RBFFeatures`: for each input row, `exp(-gamma * |x - c|^2)` to each of
  `landmarks` training rows `c` (all of them up to `MAX_LANDMARKS`, else a
  random sample: the Nystroem approximation), on the preprocessed, flattened
  inputs. `gamma` is scikit-learn's `gamma="scale"`, `1 / (features * variance)`,
  times the hyperparameter `kernel_gamma`.
- the `probabilities` Dense(softmax) layer, solved by ridge regression on
  those similarities with a leave-one-out choice of alpha and a calibrated
  softmax temperature (`models.rocket.fit_ridge_head`, as MiniRocket's head).

`fit_rbf_features` picks the landmarks and gamma from the training rows when
the model is fitted (no epochs); the exported graph is a matrix product, a
sum of squares and an exponential, all TFLite builtin ops.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from models.inference import layer_inputs

MAX_LANDMARKS = 2000  # training rows the similarities are taken to (CONVERGE_ROWS): exact below this many
MAX_LANDMARK_VALUES = 2_000_000  # landmarks x features: bounds the exported weights at 8 MB of float32
GAMMA_SCALES = (0.5, 1.0, 2.0)  # times scikit-learn's gamma="scale"
DEFAULT_GAMMA_SCALE = 1.0
MIN_VARIANCE = 1e-12


def landmark_count(rows: int, features: int) -> int:
    """How many landmarks a kernel model over `features` inputs takes when fitted on `rows` rows."""
    return int(max(1, min(rows, MAX_LANDMARKS, MAX_LANDMARK_VALUES // max(features, 1))))


@keras.saving.register_keras_serializable(package="kerasflow")
class RBFFeatures(keras.layers.Layer):
    """[batch, features] -> [batch, landmarks]: `exp(-gamma * squared distance)` to each landmark row.

    The landmarks and gamma are fixed weights, set by `fit_rbf_features` and saved with the model.
    """

    def __init__(self, landmarks: int, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.landmarks = int(landmarks)

    def build(self, input_shape):
        features = int(input_shape[-1])
        self.centres = self.add_weight(name="centres", shape=(features, self.landmarks), initializer="zeros",
                                       trainable=False)
        self.centre_norms = self.add_weight(name="centre_norms", shape=(self.landmarks,), initializer="zeros",
                                            trainable=False)
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="ones", trainable=False)

    def call(self, inputs):
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, clipped at 0 against rounding
        squared = ops.sum(ops.square(inputs), axis=-1, keepdims=True) - 2.0 * ops.matmul(inputs, self.centres) \
            + self.centre_norms
        return ops.exp(-self.gamma * ops.maximum(squared, 0.0))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.landmarks)

    def get_config(self):
        return {**super().get_config(), "landmarks": self.landmarks}


def fit_rbf_features(model: keras.Model, x: np.ndarray, *, gamma_scale: float, seed: int = 0) -> None:
    """Set the `rbf` layer's landmarks (training rows of `x`, a random sample when there are more than it
    holds; drawn with replacement when there are fewer) and gamma (`gamma_scale` / (features * variance))."""
    layer = model.get_layer("rbf")
    features = layer_inputs(model, layer, x).astype(np.float64)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(features), layer.landmarks, replace=len(features) < layer.landmarks)
    centres = features[rows]
    gamma = gamma_scale / (features.shape[1] * max(float(features.var()), MIN_VARIANCE))
    layer.set_weights([centres.T.astype(np.float32), np.square(centres).sum(axis=1).astype(np.float32),
                       np.asarray(gamma, dtype=np.float32)])
