"""One conditional keras-tuner space whose top choice is the architecture family.

Families: `linear` (multinomial logistic regression on the preprocessed inputs, solved by scikit-learn:
`models.linear`), `kernel` (RBF kernel ridge classification, the closed-form cousin of an RBF SVM:
`models.kernel`), `dense` (from softmax regression, with no hidden layer, to residual
MLP blocks with batch normalisation), `cnn` (images: plain, residual or
depthwise-separable blocks; sequences: plain, FCN, ResNet-1D or
Inception-style blocks ending in global average pooling, so series of
several hundred steps are not pooled away), `lstm`, `rocket` (MiniRocket
features with a closed-form ridge head, `models.rocket`) and, for tables,
`trees` (gradient-boosted trees or a random forest fitted by scikit-learn and
evaluated with tensor ops, `models.trees`), and, given a pretrained base,
`transfer` (that base under a new head, the head solved first: `models.transfer`).
Images get augmentation as hyperparameters, on the raw pixels; augmentation
layers are identity at inference and the export traces the model with
`training=False`, so they are absent from the exported graph.

Sizes follow the input: the number of image conv blocks is bounded by how
often the input can be halved, dense widths by the feature count, and long
sequences beyond `MAX_LSTM_STEPS` are average-pooled before the LSTM
(backpropagation through time costs per step). The LSTM is `models.lstm.FusedLSTM`,
which TFLite converts to its builtin fused LSTM op at any length.
"""

from __future__ import annotations

import math

import keras
import keras_tuner as kt
import numpy as np
from sklearn.metrics import f1_score

from models.inference import log_loss_and_accuracy, model_outputs
from models.kernel import (
    DEFAULT_GAMMA_SCALE,
    GAMMA_SCALES,
    MAX_LANDMARKS,
    RBFFeatures,
    fit_rbf_features,
    landmark_count,
)
from models.layers import TabularEncoder
from models.linear import C_VALUES, DEFAULT_C, fit_logistic_head
from models.lstm import FusedLSTM
from models.rocket import MIN_LENGTH, MiniRocket, fit_dilations, fit_ridge_head
from models.text import fit_tfidf_head, text_features
from models.transfer import FROZEN_SHARES, TransferBase, fine_tune_base, freeze, probe_only
from models.trees import KINDS as TREE_KINDS
from models.trees import BOOSTED_SAMPLING, TreeEnsemble, estimator_arguments, fit_trees, trees_per_round
from models.training_state import build_training_state

FAMILIES = ("linear", "kernel", "dense", "cnn", "lstm", "rocket", "trees", "transfer", "embedding")
# seconds per trial on a small set, fewest first; a pretrained base goes first: it is what a user asked to try
CHEAPEST_FIRST = ("transfer", "linear", "kernel", "rocket", "embedding", "dense", "trees", "cnn", "lstm")
TEXT = "text"  # the kind of a table with text columns (`pipelines.preprocess.Preprocessing.search_kind`)
CLOSED_FORM_FAMILIES = ("linear", "kernel", "rocket", "trees")
# The families that draw at random when fitted (landmark rows, MiniRocket's biases, bootstrap rows), and the
# hyperparameter each draws from: 0 to SEED_VALUES - 1, sampled by the search; the portfolio's follows the run's seed.
SEED_HYPERPARAMETERS = {"kernel": "kernel_seed", "rocket": "rocket_seed", "trees": "trees_seed"}
SEED_VALUES = 10
MAX_LSTM_STEPS = 256  # a training-time bound; the fused export has none
RAW_SKIP_FEATURES = 4096  # inputs up to this size (a 64x64 gray image) may reach a pretrained base's head too
IMAGE_BLOCKS = ("plain", "residual", "separable")
SEQUENCE_BLOCKS = ("resnet", "inception", "fcn", "plain")  # the first is the default
SEQUENCE_KERNELS = (8, 5, 3)  # FCN's and ResNet's kernel lengths (Wang et al. 2017)
# The hyperparameters that set how many layers a model has and of which kind (its widths aside): a new value builds
# and traces a different graph, where a new width only rescales the same one. Word pairs add 2**18 hashed terms to a
# TF-IDF head: on 3,400 tweets its solve took 22-29 s, the words' alone 2-4 s.
LAYER_STRUCTURE = ("cnn_block", "cnn_blocks", "inception_modules", "dense_layers", "dense_residual", "lstm_layers",
                   "augment", "tfidf_bigrams")
SKIPPED_FOR_TABLES = {
    "cnn": "tables have no spatial or temporal axis for convolutions to slide along",
    "lstm": "tables have no time axis; rows are independent samples",
    "rocket": "MiniRocket's kernels slide along a time axis; tables have none",
}
TREES_SKIPPED = "trees split on one input value at a time; single pixels and time steps carry little alone"
SKIPPED_FOR_IMAGES = {"rocket": "MiniRocket's kernels slide along one time axis; images have two",
                      "trees": TREES_SKIPPED}
SKIPPED_FOR_SEQUENCES = {"trees": TREES_SKIPPED}
NO_TOKENS = "only text has token ids to embed"
SKIPPED_FOR_TEXT = {
    "kernel": "distances between token ids mean nothing: text is read by TF-IDF (linear), embeddings, a CNN or an LSTM",
    "dense": "token ids are not quantities: text is read by TF-IDF (linear), embeddings, a CNN or an LSTM",
    "rocket": "MiniRocket's kernels slide over numbers; token ids are not numbers",
    "trees": "token ids are not quantities; trees split on one value at a time",
}
NO_BASE = "no pretrained base: give --pretrained NAME[@VERSION], or --backbone with --backbone-weights (images)"


STUDENT_TRAINING = {"dropout": 0.0, "learning_rate": 3e-3}


def student_ladder(kind: str) -> list[dict]:
    """Distillation students for an input kind, largest first: one family per kind that trains in seconds and
    exports to a small int8 file (dense for tables; plain CNNs with global pooling for images; FCNs for
    sequences), in halving widths. `pipelines.export.compress` takes the largest that fits the size budget."""
    if kind == TEXT:
        rungs = [{"family": "embedding", "embedding_dim": d} for d in (64, 32, 16)]
    elif kind == "table":
        rungs = [{"family": "dense", "dense_layers": 1, "dense_units": u, "dense_batchnorm": False}
                 for u in (256, 128, 64, 32, 16, 8)] + [{"family": "dense", "dense_layers": 0}]
    elif kind == "image":
        rungs = [{"family": "cnn", "cnn_block": "plain", "cnn_blocks": 2, "cnn_filters": f, "cnn_global_pool": True,
                  "cnn_dense_units": 4 * f} for f in (32, 16, 8, 4)]
    else:
        rungs = [{"family": "cnn", "cnn_block": "fcn", "cnn_filters": f} for f in (32, 16, 8, 4)]
    return [{**rung, **STUDENT_TRAINING} for rung in rungs]


def families_for(kind: str, requested: list[str] | None = None,
                 input_shape: list[int] | tuple[int, ...] | None = None,
                 base: TransferBase | None = None) -> tuple[list[str], dict[str, str]]:
    """Families that fit this input kind (and shape), and why each other one is skipped; `transfer` needs a
    `base`, and is searched with the others whether or not requested, so the search decides whether it pays."""
    skipped = dict({"table": SKIPPED_FOR_TABLES, "image": SKIPPED_FOR_IMAGES,
                    "sequence": SKIPPED_FOR_SEQUENCES, TEXT: SKIPPED_FOR_TEXT}.get(kind, {}))
    if kind != TEXT:
        skipped["embedding"] = NO_TOKENS
    if base is None:
        skipped["transfer"] = NO_BASE
    elif requested and "transfer" not in requested:
        requested = [*requested, "transfer"]
    if kind == "sequence" and input_shape is not None and input_shape[0] < MIN_LENGTH:
        skipped["rocket"] = f"MiniRocket needs at least {MIN_LENGTH} time steps; these sequences have {input_shape[0]}"
    fitting = [f for f in FAMILIES if f not in skipped]
    if requested:
        skipped.update({f: "not requested" for f in fitting if f not in requested})
        fitting = [f for f in fitting if f in requested]
    if not fitting:
        raise ValueError(f"none of the requested families {requested} fits {kind} data: {skipped}")
    return fitting, skipped


def closed_form(values: dict) -> bool:
    """Whether a model of these hyperparameters is solved in closed form (no epochs): logistic regression,
    MiniRocket's and a frozen pretrained base's heads, and trees."""
    return values.get("family") in CLOSED_FORM_FAMILIES or (values.get("family") == "transfer" and probe_only(values))


def features_fit_without_labels(values: dict) -> bool:
    """Whether a model of these hyperparameters is a solved head on features fitted without labels: MiniRocket's
    (its biases and scaling come from the series alone) or a frozen pretrained base's. Under k-fold the features of
    every row can be computed once and the head solved per fold (`pipelines.search.tuner`)."""
    return closed_form(values) and values.get("family") in ("rocket", "transfer")


def trial_class_weight(values: dict, class_weight: dict | None) -> dict | None:
    """The class weights a trial of these hyperparameters trains with: none where it chose not to balance."""
    return None if values.get("balance_classes") is False else class_weight


def trained_by_epochs(values: dict) -> bool:
    """Whether a model of these hyperparameters is trained by Keras's `fit` alone, as it was built: not solved in
    closed form, and not a pretrained base (whose fine-tune unfreezes part of it and compiles it again)."""
    return not closed_form(values) and values.get("family") != "transfer"


def cheapest_first(families: list[str]) -> list[str]:
    """The order a search tries each family's default architecture in, before sampling at random."""
    return sorted(families, key=CHEAPEST_FIRST.index)


class KerasflowHyperModel(kt.HyperModel):
    """Builds a compiled classifier for `prep` (a `pipelines.preprocess.Preprocessing`).

    `x_fit` (model inputs of the training rows) is what data-fitted layers
    (MiniRocket's biases) are fitted on; without it they are built empty, to
    receive saved weights. `balance_choice` (imbalanced classes, class weights
    left to the search) adds the hyperparameter `balance_classes`: whether a
    trial uses the class weights it is given; `balanced_first` is its default,
    so the portfolio's trials (at their defaults) are trained that way.
    """

    def __init__(self, prep, families: list[str], jit_compile: bool | str = "auto", x_fit: np.ndarray | None = None,
                 balance_choice: bool = False, base: TransferBase | None = None, balanced_first: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.prep = prep
        self.families = list(families)
        self.jit_compile = jit_compile
        self.x_fit = x_fit
        self.balance_choice = balance_choice
        self.balanced_first = balanced_first
        self.base = base

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        family = hp.Choice("family", self.families)
        if self.balance_choice:
            hp.Boolean("balance_classes", default=self.balanced_first)
        inputs = keras.Input(shape=tuple(self.prep.input_shape), name="features")
        # Augmentation sees raw pixels (RandomContrast clips to 0-255); a pretrained base holds its own preprocessing.
        x = self._augmentation(hp, inputs) if self.prep.kind == "image" else inputs
        if family != "transfer" and not self._text():
            x = self._preprocessing(x)
        with hp.conditional_scope("family", family):
            x = text_features(hp, family, x, self.prep) if self._text() else getattr(self, f"_{family}")(hp, x)
            l2 = hp.Choice("l2", [0.0, 1e-4, 1e-3, 1e-2]) if family == "dense" else 0.0
        x = keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1))(x)
        # float32 softmax even under mixed precision: float16 probabilities underflow.
        outputs = keras.layers.Dense(len(self.prep.class_names), activation="softmax", name="probabilities",
                                     kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
                                     dtype="float32")(x)
        model = keras.Model(inputs, outputs, name=f"kerasflow_{family}")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=self.jit_compile,
        )
        return model

    def fit(self, hp, model, x=None, y=None, validation_data=None, class_weight=None, **kwargs):
        """Keras training, except for a closed-form family: it is solved, and metrics come back as a dict."""
        class_weight = trial_class_weight(hp.values, class_weight)
        family = hp.get("family")
        if family not in CLOSED_FORM_FAMILIES and family != "transfer":
            build_training_state(model, x, y)
            return super().fit(hp, model, x=x, y=y, validation_data=validation_data, class_weight=class_weight,
                               **kwargs)
        if family == "transfer":  # a linear probe on the frozen base, solved; then, maybe, the base fine-tuned
            metrics = fit_ridge_head(model, *_arrays(x, y), class_weight)
            if not probe_only(hp.values):
                return fine_tune_base(model, hp.get("transfer_frozen"), hp.get("learning_rate"), x=x, y=y,
                                      validation_data=validation_data, class_weight=class_weight, **kwargs)
        elif family == "linear" and self._text():
            metrics = fit_tfidf_head(model, *_arrays(x, y), class_weight, c=hp.get("linear_c"))
        elif family == "linear":
            metrics = fit_logistic_head(model, *_arrays(x, y), class_weight, c=hp.get("linear_c"))
        elif family == "kernel":
            x, y = _arrays(x, y)
            fit_rbf_features(model, x, gamma_scale=hp.get("kernel_gamma"),
                             seed=hp.get(SEED_HYPERPARAMETERS["kernel"]))
            metrics = fit_ridge_head(model, x, y, class_weight)
        elif family == "trees":
            metrics = fit_trees(model, *_arrays(x, y), class_weight, **estimator_arguments(hp.values),
                                seed=hp.values[SEED_HYPERPARAMETERS["trees"]],
                                deadline=callbacks_deadline(kwargs.get("callbacks")))
        else:
            metrics = fit_ridge_head(model, *_arrays(x, y), class_weight)
        if validation_data is not None:
            x_val, y_val = _arrays(*validation_data) if isinstance(validation_data, tuple) else _arrays(validation_data)
            probabilities = model_outputs(model, x_val)
            scores = log_loss_and_accuracy(probabilities, y_val)
            metrics.update({f"val_{name}": value for name, value in scores.items()})
            predicted = np.argmax(probabilities, axis=1)
            metrics["val_macro_f1"] = float(f1_score(y_val, predicted, average="macro", zero_division=0))
        for callback in kwargs.get("callbacks") or []:  # one epoch to the callbacks: keras-tuner's saves the weights
            callback.set_model(model)
            callback.on_epoch_end(0, logs=metrics)
        return metrics

    def _text(self) -> bool:
        """Whether the input holds token ids (a table with text columns): the text families read it."""
        return bool(getattr(self.prep, "text_columns", None))

    def _preprocessing(self, inputs):
        if self.prep.kind == "table":
            return TabularEncoder(self.prep.mean, self.prep.variance, self.prep.cardinalities, name="encode",
                                  dtype="float32")(inputs)
        return keras.layers.Normalization(axis=-1, mean=self.prep.mean, variance=self.prep.variance,
                                          name="normalize", dtype="float32")(inputs)

    def _augmentation(self, hp, x):
        """Random flips, rotations, zooms, shifts and contrast while training; identity at inference."""
        if not hp.Boolean("augment"):
            return x
        with hp.conditional_scope("augment", [True]):
            layers = []
            if hp.Boolean("augment_flip"):
                layers.append(keras.layers.RandomFlip("horizontal"))
            rotation = hp.Choice("augment_rotation", [0.0, 0.03, 0.08])
            zoom = hp.Choice("augment_zoom", [0.0, 0.1])
            translation = hp.Choice("augment_translation", [0.0, 0.1])
            contrast = hp.Choice("augment_contrast", [0.0, 0.1])
        fill = dict(fill_mode="constant")
        layers += ([keras.layers.RandomRotation(rotation, **fill)] if rotation else []) + \
                  ([keras.layers.RandomZoom(zoom, **fill)] if zoom else []) + \
                  ([keras.layers.RandomTranslation(translation, translation, **fill)] if translation else []) + \
                  ([keras.layers.RandomContrast(contrast)] if contrast else [])
        for layer in layers:
            x = layer(x)
        return x

    def _feature_count(self) -> int:
        return math.prod(self.prep.input_shape)

    def _linear(self, hp, x):
        """The flattened preprocessed inputs; `fit` solves the softmax layer on them (`models.linear`)."""
        hp.Choice("linear_c", list(C_VALUES), default=DEFAULT_C)
        return keras.layers.Flatten()(x)

    def _kernel(self, hp, x):
        """Gaussian similarities of the flattened preprocessed inputs to training rows; `fit` picks the rows and
        solves the ridge head on them (`models.kernel`). The landmark count follows the rows it is fitted on."""
        hp.Choice("kernel_gamma", list(GAMMA_SCALES), default=DEFAULT_GAMMA_SCALE)
        hp.Int(SEED_HYPERPARAMETERS["kernel"], 0, SEED_VALUES - 1)
        x = keras.layers.Flatten()(x)
        landmarks = hp.Fixed("kernel_landmarks", landmark_count(MAX_LANDMARKS, int(x.shape[-1])))
        if self.x_fit is not None:  # fitted now: every row it is fitted on, up to the bounds (saved with the values)
            landmarks = hp.values["kernel_landmarks"] = landmark_count(len(self.x_fit), int(x.shape[-1]))
        return RBFFeatures(landmarks, name="rbf", dtype="float32")(x)

    def _dense(self, hp, x):
        """Zero hidden layers is softmax regression; more are MLP blocks, optionally residual and batch-normalised."""
        x = keras.layers.Flatten()(x)
        layers = hp.Int("dense_layers", 0, 3)
        if not layers:
            return x
        widest = max(64, min(512, 4 * self._feature_count()))
        units = hp.Choice("dense_units", [w for w in (32, 64, 128, 256, 512) if w <= widest])
        norm = hp.Boolean("dense_batchnorm")
        residual = hp.Boolean("dense_residual") if layers > 1 else False
        for i in range(layers):
            y = keras.layers.Dense(units, use_bias=not norm)(x)
            if norm:
                y = keras.layers.BatchNormalization()(y)
            y = keras.layers.Activation("relu")(y)
            x = keras.layers.Add()([x, y]) if residual and i > 0 else y
        return x

    def _cnn(self, hp, x):
        spatial = self.prep.input_shape[:-1]
        if len(spatial) == 2:
            return self._image_cnn(hp, x, spatial)
        return self._sequence_cnn(hp, x, spatial[0])

    def _image_cnn(self, hp, x, spatial):
        max_blocks = max(1, min(4, int(math.log2(max(min(spatial), 2) / 2))))
        block = hp.Choice("cnn_block", IMAGE_BLOCKS)
        filters = hp.Choice("cnn_filters", [16, 32, 64] if min(spatial) <= 32 else [32, 64, 128])
        for i in range(hp.Int("cnn_blocks", 1, max_blocks)):
            width = filters * 2**i
            if block == "separable":
                x = _conv_bn(x, keras.layers.SeparableConv2D, width, 3)
            elif block == "residual":
                shortcut = keras.layers.Conv2D(width, 1, use_bias=False)(x) if x.shape[-1] != width else x
                y = _conv_bn(x, keras.layers.Conv2D, width, 3)
                y = _conv_bn(y, keras.layers.Conv2D, width, 3, activation=None)
                x = keras.layers.Activation("relu")(keras.layers.Add()([shortcut, y]))
            else:
                x = _conv_bn(x, keras.layers.Conv2D, width, 3)
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
        x = keras.layers.GlobalAveragePooling2D()(x) if hp.Boolean("cnn_global_pool") else keras.layers.Flatten()(x)
        return keras.layers.Dense(hp.Choice("cnn_dense_units", [64, 128]), activation="relu")(x)

    def _sequence_cnn(self, hp, x, steps):
        block = hp.Choice("cnn_block", SEQUENCE_BLOCKS)
        filters = hp.Choice("cnn_filters", [16, 32, 64])
        if block == "plain":
            max_blocks = max(1, min(4, int(math.log2(max(steps, 2) / 2))))
            kernel = hp.Choice("cnn_kernel", [3, 5, 7])
            for i in range(hp.Int("cnn_blocks", 1, max_blocks)):
                x = _conv_bn(x, keras.layers.Conv1D, filters * 2**i, kernel)
                x = keras.layers.MaxPooling1D(2, padding="same")(x)
            return keras.layers.GlobalAveragePooling1D()(x)
        if block == "fcn":  # Wang et al. 2017: three conv blocks, no pooling, global average pooling
            for width, kernel in zip((filters, 2 * filters, filters), SEQUENCE_KERNELS):
                x = _conv_bn(x, keras.layers.Conv1D, width, kernel)
        elif block == "resnet":  # three residual blocks of three convolutions
            for width in (filters, 2 * filters, 2 * filters):
                shortcut = keras.layers.BatchNormalization()(keras.layers.Conv1D(width, 1, use_bias=False)(x)) \
                    if x.shape[-1] != width else x
                y = x
                for j, kernel in enumerate(SEQUENCE_KERNELS):
                    y = _conv_bn(y, keras.layers.Conv1D, width, kernel, activation="relu" if j < 2 else None)
                x = keras.layers.Activation("relu")(keras.layers.Add()([shortcut, y]))
        else:  # InceptionTime-style modules, a residual shortcut every three
            longest = max(3, min(40, steps // 4))
            sizes = sorted({max(3, longest // 4), max(3, longest // 2), longest})
            shortcut = x
            for i in range(hp.Int("inception_modules", 3, 6, step=3)):
                x = _inception_module(x, filters, sizes)
                if i % 3 == 2:
                    projected = keras.layers.BatchNormalization()(
                        keras.layers.Conv1D(x.shape[-1], 1, use_bias=False)(shortcut))
                    x = keras.layers.Activation("relu")(keras.layers.Add()([projected, x]))
                    shortcut = x
        return keras.layers.GlobalAveragePooling1D()(x)

    def _lstm(self, hp, x):
        shape = self.prep.input_shape
        if len(shape) == 3:  # images: rows are the time steps
            x = keras.layers.Reshape((shape[0], shape[1] * shape[2]))(x)
        steps = x.shape[1]
        if steps > MAX_LSTM_STEPS:
            x = keras.layers.AveragePooling1D(math.ceil(steps / MAX_LSTM_STEPS), padding="same")(x)
        n_layers = hp.Int("lstm_layers", 1, 2)
        units = hp.Choice("lstm_units", [16, 32, 64])
        for i in range(n_layers):
            x = FusedLSTM(units, return_sequences=i < n_layers - 1)(x)
        return x

    def _transfer(self, hp, x):
        """The pretrained base (`models.transfer`), frozen; `fit` solves the head, then maybe tunes the base.

        Where the raw input is small (`RAW_SKIP_FEATURES`), the head may also see it, preprocessed and flattened
        (`transfer_with_inputs`, on by default): the probe is then never weaker than softmax regression on the
        inputs, and the base's features add what they know.
        """
        base = TransferBase.from_json(hp.Fixed("transfer_base", self.base.to_json() if self.base else ""))
        hp.Choice("transfer_frozen", list(FROZEN_SHARES))
        features = base.build(tuple(self.prep.input_shape), self.prep.mean, self.prep.variance)
        freeze(features, 1.0)
        learnt = features(x, training=False)
        if self._feature_count() > RAW_SKIP_FEATURES or not hp.Boolean("transfer_with_inputs", default=True):
            return learnt
        raw = keras.layers.Flatten()(self._preprocessing(x))
        return keras.layers.Concatenate(name="features_and_inputs")([learnt, raw])

    def _rocket(self, hp, x):
        """MiniRocket features (fixed, fitted on `x_fit`); the head on top is solved in closed form (`fit`, `models.rocket.fit_ridge_head`)."""
        seed = hp.Int(SEED_HYPERPARAMETERS["rocket"], 0, SEED_VALUES - 1)
        if self.x_fit is None:
            layer = MiniRocket(*fit_dilations(self.prep.input_shape[0]), name="rocket", dtype="float32")
        else:
            std = np.sqrt(np.maximum(np.asarray(self.prep.variance, dtype=np.float32), 1e-12))
            normalized = (np.asarray(self.x_fit, dtype=np.float32) - np.asarray(self.prep.mean, np.float32)) / std
            # float32 even under mixed precision: thresholds on a float16 convolution would flip.
            layer = MiniRocket.fitted(normalized, seed=seed, name="rocket", dtype="float32")
        return layer(x)

    def _trees(self, hp, x):
        """Room for the trees `fit` grows (`models.trees.fit_trees`): a forest (the default: few settings matter,
        strong on small tables) or boosted rounds x classes, each with its own leaf counts; boosting may be
        stochastic (`models.trees.BOOSTED_SAMPLING`)."""
        kind = hp.Choice("trees_kind", list(TREE_KINDS))
        count = hp.Choice("trees_count", [50, 100, 200], default=100)
        with hp.conditional_scope("trees_kind", "forest"):
            forest_leaves = hp.Choice("forest_leaves", [16, 32, 64], default=32)
        with hp.conditional_scope("trees_kind", "boosted"):
            boosted_leaves = hp.Choice("boosted_leaves", [4, 8, 16, 32], default=8)  # default: sklearn's depth 3
            hp.Float("trees_learning_rate", 0.02, 0.3, sampling="log", default=0.1)
            for name, choices in BOOSTED_SAMPLING.items():  # stochastic boosting; scikit-learn's defaults first
                hp.Choice(f"boosted_{name}", list(choices))
        hp.Int(SEED_HYPERPARAMETERS["trees"], 0, SEED_VALUES - 1)
        leaves = forest_leaves if kind == "forest" else boosted_leaves
        n_classes = len(self.prep.class_names)
        n_trees = count if kind == "forest" else count * trees_per_round(n_classes)
        return TreeEnsemble(n_trees, leaves, n_classes, average=kind == "forest", name="trees", dtype="float32")(x)


def callbacks_deadline(callbacks) -> float | None:
    """The earliest `deadline` (time.time()) among Keras `callbacks` that stop training at one (the run's
    `StopAtDeadline`), for a family solved without epochs that can still stop early (boosting: `fit_trees`)."""
    deadlines = [callback.deadline for callback in callbacks or [] if getattr(callback, "deadline", None) is not None]
    return min(deadlines, default=None)


def _arrays(x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays from arrays or from a batched (x, y) dataset (the GPU input pipeline)."""
    if y is not None or isinstance(x, np.ndarray):
        return np.asarray(x), np.asarray(y)
    batches = list(x.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _conv_bn(x, conv, width: int, kernel: int, activation: str | None = "relu"):
    x = conv(width, kernel, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation(activation)(x) if activation else x


def _inception_module(x, filters: int, sizes: list[int]):
    bottleneck = keras.layers.Conv1D(filters, 1, padding="same", use_bias=False)(x) if x.shape[-1] > 1 else x
    branches = [keras.layers.Conv1D(filters, k, padding="same", use_bias=False)(bottleneck) for k in sizes]
    pooled = keras.layers.MaxPooling1D(3, strides=1, padding="same")(x)
    branches.append(keras.layers.Conv1D(filters, 1, padding="same", use_bias=False)(pooled))
    x = keras.layers.Concatenate()(branches)
    return keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))
