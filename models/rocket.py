"""MiniRocket features as a Keras layer: fixed dilated Conv1D kernels and proportion-of-positive-values pooling.

MiniRocket (Dempster, Schmidt and Webb 2021) convolves a series with the 84
length-9 kernels whose weights are -1 except for three 2s, at dilations
spread over the series length, and describes each (kernel, dilation) by the
share of time steps above a few biases taken from quantiles of the
convolution of a training series. A linear classifier on those features is
about as accurate as the best deep models on the UCR archive, and fits in
seconds. This layer computes the same features as aeon's `MiniRocket`
transform (`aeon.transformations.collection.convolution_based`) with Conv1D,
greater, cast, mean and select: builtin TFLite ops, so the whole classifier
exports like any other kerasflow model. Nothing in it is trained.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
from keras import ops
from scipy.special import softmax

from models.inference import layer_inputs, log_loss_and_accuracy, model_outputs

KERNEL_LENGTH = 9
KERNELS = np.array(list(itertools.combinations(range(KERNEL_LENGTH), 3)), dtype=np.int32)  # the 84 kernels
MAX_DILATIONS_PER_KERNEL = 32
DEFAULT_FEATURES = 10_000
MIN_LENGTH = KERNEL_LENGTH
MAX_CHANNELS_PER_KERNEL = 9
# A step counts as above a bias only by this much more. Over a constant stretch (a sequence's zero padding, a flat
# signal) the convolution is 0 in exact arithmetic (each kernel's weights sum to 0) and rounding noise of 1e-7 in
# float32, and 42% of the biases of a padded set came out as such noise: whether a padded step was "above" then
# depended on the order of the sums, which TFLite's kernels change (PickupGestureWiimoteZ, padded to 361 steps:
# its float32 TFLite model agreed with Keras on 72% of the test series). Standardised inputs make the convolution
# of order 1: the margin moves a count only where a step is within 1e-4 of a bias.
PPV_MARGIN = 1e-4


def fit_dilations(length: int, n_features: int = DEFAULT_FEATURES,
                  max_dilations_per_kernel: int = MAX_DILATIONS_PER_KERNEL) -> tuple[list[int], list[int]]:
    """Dilations spread exponentially up to the series length, and how many features each gets (aeon's rule)."""
    per_kernel = max(1, n_features // len(KERNELS))
    n_dilations = min(per_kernel, max_dilations_per_kernel)
    multiplier = per_kernel / n_dilations
    max_exponent = np.log2((length - 1) / (KERNEL_LENGTH - 1))
    dilations, counts = np.unique(np.logspace(0, max_exponent, n_dilations, base=2).astype(np.int32),
                                  return_counts=True)
    counts = (counts * multiplier).astype(np.int32)
    for i in range(per_kernel - int(counts.sum())):
        counts[i % len(counts)] += 1
    return [int(d) for d in dilations], [int(c) for c in counts]


def golden_quantiles(n: int) -> np.ndarray:
    """MiniRocket's low-discrepancy quantiles: the fractional parts of k times the golden ratio."""
    return np.array([(k * ((np.sqrt(5) + 1) / 2)) % 1 for k in range(1, n + 1)], dtype=np.float32)


def kernel_weights(n_channels: int, channel_masks: np.ndarray) -> np.ndarray:
    """Conv1D kernels [dilations, 9, channels, 84]: -1 everywhere, 2 at the kernel's three positions, per channel mask."""
    base = -np.ones((KERNEL_LENGTH, len(KERNELS)), dtype=np.float32)
    for k, positions in enumerate(KERNELS):
        base[positions, k] = 2.0
    # channel_masks: [dilations, 84, channels] of 0/1
    return np.einsum("pk,dkc->dpck", base, channel_masks.astype(np.float32))


@keras.saving.register_keras_serializable(package="kerasflow")
class MiniRocket(keras.layers.Layer):
    """[batch, time, channels] -> [batch, features] MiniRocket features, standardised by their training mean and std.

    Build it with `MiniRocket.fitted(x)`; its fixed weights (kernels,
    biases, feature mean and scale) are saved with the model.
    """

    def __init__(self, dilations, features_per_dilation, margin: float = PPV_MARGIN, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.dilations = [int(d) for d in dilations]
        self.features_per_dilation = [int(n) for n in features_per_dilation]
        self.margin = float(margin)  # `PPV_MARGIN`; 0 for a layer saved before it (`from_config`)

    @property
    def n_features(self) -> int:
        return len(KERNELS) * sum(self.features_per_dilation)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernels = self.add_weight(name="kernels", shape=(len(self.dilations), KERNEL_LENGTH, channels,
                                                              len(KERNELS)), initializer="zeros", trainable=False)
        self.biases = self.add_weight(name="biases", shape=(self.n_features,), initializer="zeros", trainable=False)
        self.feature_mean = self.add_weight(name="feature_mean", shape=(self.n_features,), initializer="zeros",
                                            trainable=False)
        self.feature_scale = self.add_weight(name="feature_scale", shape=(self.n_features,), initializer="ones",
                                             trainable=False)

    @classmethod
    def fitted(cls, x: np.ndarray, n_features: int = DEFAULT_FEATURES, seed: int = 0, **kwargs) -> "MiniRocket":
        """Dilations from the length of `x` [N, time, channels], biases from quantiles of its convolutions."""
        x = np.asarray(x, dtype=np.float32)
        _, length, channels = x.shape
        if length < MIN_LENGTH:
            raise ValueError(f"MiniRocket needs sequences of at least {MIN_LENGTH} steps, got {length}")
        rng = np.random.default_rng(seed)
        dilations, counts = fit_dilations(length, n_features)
        # Each (dilation, kernel) reads a random subset of 1 to 9 channels, as in MiniRocket's multivariate form.
        masks = np.zeros((len(dilations), len(KERNELS), channels), dtype=np.float32)
        top = np.log2(min(channels, MAX_CHANNELS_PER_KERNEL) + 1)
        for d in range(len(dilations)):
            for k in range(len(KERNELS)):
                n = int(2 ** rng.uniform(0, top))
                masks[d, k, rng.choice(channels, n, replace=False)] = 1.0
        layer = cls(dilations, counts, **kwargs)
        layer.build((None, length, channels))
        layer.kernels.assign(kernel_weights(channels, masks))
        quantiles = golden_quantiles(layer.n_features)
        biases, start = [], 0
        for d, (dilation, count) in enumerate(zip(dilations, counts)):
            # One random training series per (dilation, kernel) sets that kernel's biases.
            picks = x[rng.integers(len(x), size=len(KERNELS))]
            conv = np.asarray(ops.conv(picks, layer.kernels[d], padding="same", dilation_rate=dilation))
            for k in range(len(KERNELS)):
                q = quantiles[start:start + count]
                biases.append(np.quantile(conv[k, :, k], q).astype(np.float32))
                start += count
        layer.biases.assign(np.concatenate(biases))
        features = np.concatenate([np.asarray(layer.ppv(x[i:i + 256])) for i in range(0, len(x), 256)])
        layer.feature_mean.assign(features.mean(axis=0))
        layer.feature_scale.assign(1.0 / np.maximum(features.std(axis=0), 1e-3))
        return layer

    def ppv(self, inputs):
        """The raw features: for each (dilation, kernel, bias), the share of time steps where the convolution exceeds the bias."""
        length = inputs.shape[1]
        parts, start = [], 0
        for d, (dilation, count) in enumerate(zip(self.dilations, self.features_per_dilation)):
            conv = ops.conv(inputs, self.kernels[d], padding="same", dilation_rate=dilation)  # [B, T, 84]
            bias = ops.reshape(self.biases[start:start + len(KERNELS) * count], (len(KERNELS), count))
            start += len(KERNELS) * count
            above = ops.cast(ops.greater(ops.expand_dims(conv, -1), bias + self.margin), "float32")  # [B,T,84,count]
            whole = ops.mean(above, axis=1)
            pad = (KERNEL_LENGTH - 1) * dilation // 2
            inner = ops.mean(above[:, pad:length - pad], axis=1) if length - 2 * pad > 0 else whole
            # Every other kernel (alternating with the dilation) ignores the zero-padded ends.
            cropped = np.array([(d + k) % 2 == 1 for k in range(len(KERNELS))])[:, None]
            parts.append(ops.reshape(ops.where(cropped, inner, whole), (-1, len(KERNELS) * count)))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def call(self, inputs):
        return (self.ppv(inputs) - self.feature_mean) * self.feature_scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_features)

    @classmethod
    def from_config(cls, config):
        return cls(**{"margin": 0.0, **config})  # a layer saved before `PPV_MARGIN` counts as it did

    def get_config(self):
        return {**super().get_config(), "dilations": self.dilations,
                "features_per_dilation": self.features_per_dilation, "margin": self.margin}


RIDGE_ALPHAS = np.logspace(-3, 3, 10)  # MiniRocket's RidgeClassifierCV grid
TEMPERATURES = np.logspace(-1, 2.5, 36)
ABSENT_CLASS_LOGIT = -30.0
MIN_FEATURE_STD = 1e-8  # a constant feature is left unscaled


def fit_ridge_head(model: keras.Model, x: np.ndarray, y: np.ndarray, class_weight: dict | None = None,
                   features: np.ndarray | None = None) -> dict:
    """Fit the `probabilities` layer on its input features with ridge regression, as MiniRocket does (on the
    `rocket` layer's features; a pretrained base's, for a linear probe: `models.transfer`).

    The features are scaled to unit variance first (the scale is folded into
    the kernel), so one alpha suits features of different units: a pretrained
    base's activations beside standardised inputs (MiniRocket's come
    standardised). The alpha is chosen by leave-one-out error (sklearn's
    `RidgeClassifierCV`). Ridge gives scores, not probabilities: the softmax
    temperature is the one that minimises the log loss of the leave-one-out
    scores, so the model's probabilities are calibrated enough to average in an
    ensemble. `features`: the head's inputs for `x`, when the caller has them
    (`layer_inputs`); k folds of one trial share them. Returns the training
    loss and accuracy.
    """
    from sklearn.linear_model import RidgeClassifierCV

    head = model.get_layer("probabilities")
    features = (layer_inputs(model, head, x) if features is None else features).astype(np.float64)
    scale = features.std(axis=0)
    scale[scale < MIN_FEATURE_STD] = 1.0
    features = features / scale
    n_classes = head.units
    ridge = RidgeClassifierCV(alphas=RIDGE_ALPHAS, class_weight=class_weight).fit(features, y)
    coef = np.atleast_2d(ridge.coef_) / scale
    intercept = np.atleast_1d(ridge.intercept_)
    scores = leave_one_out_scores(features, y, ridge.classes_, ridge.alpha_)
    temperature = _temperature(scores, y, ridge.classes_)
    kernel = np.zeros((features.shape[1], n_classes), dtype=np.float32)
    bias = np.full(n_classes, ABSENT_CLASS_LOGIT, dtype=np.float32)
    if len(ridge.classes_) == 2:  # one score column: positive means the second class
        (negative, positive), bias[[negative, positive]] = ridge.classes_, 0.0
        kernel[:, positive], bias[positive] = coef[0] * temperature, intercept[0] * temperature
    else:
        for column, label in enumerate(ridge.classes_):
            kernel[:, label], bias[label] = coef[column] * temperature, intercept[column] * temperature
    head.set_weights([kernel, bias])
    # The head's own arithmetic on the features at hand: running the model again would recompute them (MiniRocket's
    # convolutions were a quarter of a rocket trial).
    logits = (features * scale) @ kernel.astype(np.float64) + bias
    return {**log_loss_and_accuracy(softmax(logits, axis=1), y), "temperature": float(temperature),
            "ridge_alpha": float(ridge.alpha_)}


def training_metrics(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict:
    """Log loss and accuracy of a model solved in closed form, on the rows it was fitted on."""
    return log_loss_and_accuracy(model_outputs(model, x), y)


def ridge_targets(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Ridge's ±1 targets: one column per class, or one column for two classes."""
    columns = classes[1:] if len(classes) == 2 else classes
    return np.where(y[:, None] == columns[None, :], 1.0, -1.0)


def leave_one_out_scores(features: np.ndarray, y: np.ndarray, classes: np.ndarray, alpha: float) -> np.ndarray:
    """Leave-one-out ridge scores at `alpha` with an unpenalised intercept, as scikit-learn's `RidgeClassifierCV`
    scores them, from whichever of the two square systems is smaller: rows x rows (MiniRocket's 10,000 features on a
    few dozen series) or features x features (kernel ridge's 2,000 landmarks on 6,703 rows: 16 s as rows x rows,
    2.2 s as features x features).

    Rows x rows: y - G^-1 (y - mean) / (diag(G^-1) - 1/n^2), with G = K + alpha P + 11^T, K the centred Gram
    matrix and P the centring projection. G acts as K + alpha I on centred vectors and as n on the constant one.
    The intercept is not penalised, so the constant direction must not count in the leverage: (K + alpha I)^-1
    gives it 1/(alpha n), which at a small alpha outweighs the rest and made every row's left-out score match its
    label. Features x features: y - (y - fitted) / (1 - h), the hat matrix's diagonal h = 1/n + x_c^T (X_c^T X_c +
    alpha I)^-1 x_c over the centred rows x_c (the 1/n is the intercept's).
    """
    targets = ridge_targets(y, classes)
    n, p = features.shape
    centred = features - features.mean(axis=0)
    centred_targets = targets - targets.mean(axis=0)
    if n > p:
        inverse = np.linalg.inv(centred.T @ centred + alpha * np.eye(p))
        projected = centred @ inverse
        fitted = projected @ (centred.T @ centred_targets)
        leverage = 1.0 / n + np.einsum("ij,ij->i", projected, centred)
        return targets - (centred_targets - fitted) / (1.0 - leverage)[:, None]
    gram_inverse = np.linalg.inv(centred @ centred.T + alpha * (np.eye(n) - 1.0 / n) + np.ones((n, n)))
    left_out_scale = np.diag(gram_inverse) - 1.0 / n ** 2  # (1 - the hat matrix's diagonal) / alpha
    residual = gram_inverse @ centred_targets / left_out_scale[:, None]
    return targets - residual


def _temperature(scores: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    logits = np.concatenate([np.zeros_like(scores), scores], axis=1) if len(classes) == 2 else scores
    index = np.searchsorted(classes, y)

    def log_loss(t: float) -> float:
        z = t * logits
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(y)), index] - np.log(np.exp(z).sum(axis=1))).mean())

    return float(min(TEMPERATURES, key=log_loss))
