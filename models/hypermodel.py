"""One conditional keras-tuner space whose top choice is the architecture family.

Sizes follow the input: the number of conv blocks is bounded by how often
the input can be halved, dense widths by the feature count, and long
sequences are average-pooled before the LSTM so it stays small once
unrolled. LSTMs are built with `unroll=True` on a fixed sequence length:
that is what converts to TFLite with builtin ops only.
"""

from __future__ import annotations

import math

import keras
import keras_tuner as kt

from models.layers import TabularEncoder

FAMILIES = ("dense", "cnn", "lstm")
MAX_LSTM_STEPS = 64
SKIPPED_FOR_TABLES = {
    "cnn": "tables have no spatial or temporal axis for convolutions to slide along",
    "lstm": "tables have no time axis; rows are independent samples",
}


def families_for(kind: str, requested: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Families that fit this input kind, and why each other one is skipped."""
    skipped = dict(SKIPPED_FOR_TABLES) if kind == "table" else {}
    fitting = [f for f in FAMILIES if f not in skipped]
    if requested:
        skipped.update({f: "not requested" for f in fitting if f not in requested})
        fitting = [f for f in fitting if f in requested]
    if not fitting:
        raise ValueError(f"none of the requested families {requested} fits {kind} data: {skipped}")
    return fitting, skipped


class KerasflowHyperModel(kt.HyperModel):
    """Builds a compiled classifier for `prep` (a `pipelines.preprocess.Preprocessing`)."""

    def __init__(self, prep, families: list[str], jit_compile: bool | str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.prep = prep
        self.families = list(families)
        self.jit_compile = jit_compile

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        family = hp.Choice("family", self.families)
        inputs = keras.Input(shape=tuple(self.prep.input_shape), name="features")
        x = self._preprocessing(inputs)
        with hp.conditional_scope("family", family):
            x = getattr(self, f"_{family}")(hp, x)
        x = keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1))(x)
        # float32 softmax even under mixed precision: float16 probabilities underflow.
        outputs = keras.layers.Dense(len(self.prep.class_names), activation="softmax", name="probabilities",
                                     dtype="float32")(x)
        model = keras.Model(inputs, outputs, name=f"kerasflow_{family}")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=self.jit_compile,
        )
        return model

    def _preprocessing(self, inputs):
        if self.prep.kind == "table":
            return TabularEncoder(self.prep.mean, self.prep.variance, self.prep.cardinalities, name="encode",
                                  dtype="float32")(inputs)
        return keras.layers.Normalization(axis=-1, mean=self.prep.mean, variance=self.prep.variance,
                                          name="normalize", dtype="float32")(inputs)

    def _feature_count(self) -> int:
        return math.prod(self.prep.input_shape)

    def _dense(self, hp, x):
        x = keras.layers.Flatten()(x)
        widest = max(64, min(512, 4 * self._feature_count()))
        widths = [w for w in (32, 64, 128, 256, 512) if w <= widest]
        for i in range(hp.Int("dense_layers", 1, 3)):
            x = keras.layers.Dense(hp.Choice(f"dense_units_{i}", widths), activation="relu")(x)
        return x

    def _cnn(self, hp, x):
        spatial = self.prep.input_shape[:-1]
        conv, pool, global_pool = (
            (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.GlobalAveragePooling2D)
            if len(spatial) == 2 else
            (keras.layers.Conv1D, keras.layers.MaxPooling1D, keras.layers.GlobalAveragePooling1D)
        )
        max_blocks = max(1, min(4, int(math.log2(max(min(spatial), 2) / 2))))
        filters = hp.Choice("cnn_filters", [16, 32, 64] if min(spatial) <= 32 else [32, 64, 128])
        kernel = hp.Choice("cnn_kernel", [3] if len(spatial) == 2 else [3, 5, 7])
        for i in range(hp.Int("cnn_blocks", 1, max_blocks)):
            x = conv(filters * 2**i, kernel, padding="same", activation="relu")(x)
            x = keras.layers.BatchNormalization()(x)
            x = pool(2, padding="same")(x)
        x = global_pool()(x) if hp.Boolean("cnn_global_pool") else keras.layers.Flatten()(x)
        return keras.layers.Dense(hp.Choice("cnn_dense_units", [64, 128]), activation="relu")(x)

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
            x = keras.layers.LSTM(units, unroll=True, return_sequences=i < n_layers - 1)(x)
        return x
