"""Transfer learning: a pretrained base under a new classifier head, trained head first, then base and head.

A base is either a registered kerasflow model (every layer below its
classifier head, its own in-model preprocessing included; an ensemble's
members side by side) or a Keras application backbone read from a local
weights file (nothing is ever downloaded). `TransferBase` says which, and is
kept as the `transfer_base` hyperparameter, so a chosen model rebuilds from its
hyperparameters alone, like every other family.

Training probes, then fine-tunes (Kumar et al. 2022, "Fine-Tuning can Distort
Pretrained Features"): first the new head is solved in closed form on the
frozen base's features (`models.rocket.fit_ridge_head`: seconds, whatever the
epochs a trial is given); then, unless `transfer_frozen` is 1, the top
`1 - transfer_frozen` share of the base's layers trains with the head at a
tenth of the learning rate. As in the Keras transfer-learning guide
(https://keras.io/guides/transfer_learning/), the base is called with
`training=False`, so batch normalisation stays in inference mode.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from models.backbones import BACKBONES
from models.ensemble import member_models
from models.layers import all_layers
from models.rocket import MiniRocket
from models.saving import load_model
from models.training_state import build_training_state
from models.trees import TreeEnsemble

HEAD = "probabilities"  # the classifier layer of every kerasflow model (an ensemble's: its average)
BASE = "base"
BASE_LEARNING_RATE_FACTOR = 0.1  # the second phase's learning rate, relative to the head's
FROZEN_SHARES = (1.0, 0.5, 0.0)  # share of the base's layers kept frozen after the probe; 1.0 (default): no fine-tune


class Source:
    """Where a base comes from."""

    REGISTERED = "registered"
    BACKBONE = "backbone"


# ImageNet's RGB pixel statistics (0-255): standardised inputs are mapped onto them, so the backbone sees the
# first two moments it was trained on whatever the data's range (0-16 digits, 0-255 photos, 0-1 floats).
IMAGENET_MEAN = (123.7, 116.3, 103.5)
IMAGENET_STD = (58.4, 57.1, 57.4)


@dataclass(frozen=True)
class TransferBase:
    """A pretrained base. `path`: the registered model's .keras file, or the backbone's weights file.

    Attributes:
        source: `Source.REGISTERED` or `Source.BACKBONE`; name: NAME@VERSION, or the backbone's name.
        path: the file the base's weights come from; sha256: its checksum (the lineage a registry records).
    """

    source: str
    name: str
    path: str
    sha256: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TransferBase":
        return cls(**json.loads(text))

    def describe(self) -> str:
        what = "registered model" if self.source == Source.REGISTERED else "Keras backbone"
        return f"{what} {self.name} ({Path(self.path).name}, sha256 {self.sha256[:12]})"

    def build(self, input_shape: tuple[int, ...], mean: list[float], variance: list[float]) -> keras.Model:
        """The base as one nested model named `base`, raw features in, features out, with fresh pretrained weights.
        `mean` and `variance` (per channel) standardise images for a backbone; a registered base has its own."""
        if self.source == Source.REGISTERED:
            return registered_features(load_model(self.path, compile=False), input_shape)
        return backbone_features(self.name, self.path, input_shape, mean, variance)


def registered_features(parent: keras.Model, input_shape: tuple[int, ...]) -> keras.Model:
    """Everything below `parent`'s classifier head: an ensemble's members' features are concatenated."""
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    outputs = [keras.Model(m.inputs, m.get_layer(HEAD).input, name=f"features_{i}")(inputs)
               for i, m in enumerate(member_models(parent), start=1)]
    x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="member_features")(outputs)
    return keras.Model(inputs, x, name=BASE)


def backbone_features(name: str, weights: str, input_shape: tuple[int, ...], mean: list[float],
                      variance: list[float]) -> keras.Model:
    """standardise -> ImageNet's pixel statistics -> 3 channels -> the backbone's input side -> backbone -> pooled
    features; all Keras layers with builtin TFLite ops."""
    spec = BACKBONES[name]
    height, width, channels = input_shape
    side = next((s for s in spec.sides if s >= max(height, width)), spec.sides[-1])
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="standardize")(inputs)
    if channels == 1:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = keras.layers.Rescaling(np.asarray(IMAGENET_STD, np.float32) * spec.scale,
                               np.asarray(IMAGENET_MEAN, np.float32) * spec.scale + spec.offset, name="to_imagenet")(x)
    if (height, width) != (side, side):
        x = keras.layers.Resizing(side, side, name="resize")(x)
    application = getattr(keras.applications, spec.constructor)
    backbone = application(input_shape=(side, side, 3), include_top=False, weights=weights, pooling="avg",
                           **dict(spec.options))
    return keras.Model(inputs, backbone(x, training=False), name=BASE)


def freeze(base: keras.Model, frozen_share: float) -> None:
    """Freeze the bottom `frozen_share` of the base's weighted layers (1.0: all). Batch normalisation and
    closed-form layers (MiniRocket's fitted biases, tree thresholds) always stay frozen."""
    layers = [layer for layer in all_layers(base) if layer.weights and not isinstance(layer, keras.Model)]
    frozen = math.ceil(frozen_share * len(layers))
    for i, layer in enumerate(layers):
        layer.trainable = i >= frozen and not isinstance(
            layer, (keras.layers.BatchNormalization, MiniRocket, TreeEnsemble))


def fine_tune_base(model: keras.Model, frozen_share: float, learning_rate: float, **fit_kwargs):
    """The second phase: unfreeze the top `1 - frozen_share` of the base and train it with the (solved) head at a
    tenth of `learning_rate`; `fit_kwargs` go to `model.fit`. Returns its history."""
    freeze(model.get_layer(BASE), frozen_share)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate * BASE_LEARNING_RATE_FACTOR),
                  loss=model.loss, metrics=["accuracy"], jit_compile=model.jit_compile)
    build_training_state(model, fit_kwargs.get("x"), fit_kwargs.get("y"))
    return model.fit(**fit_kwargs)


def bases_used(members: list[dict]) -> list[TransferBase]:
    """The pretrained bases a model's members (`models.ensemble.member_hyperparameters`) start from, once each."""
    found = {m["transfer_base"]: None for m in members if m.get("family") == "transfer" and m.get("transfer_base")}
    return [TransferBase.from_json(text) for text in found]


def probe_only(values: dict) -> bool:
    """A transfer model whose base stays frozen: its training is the closed-form head alone."""
    return values.get("transfer_frozen", FROZEN_SHARES[0]) >= 1.0
