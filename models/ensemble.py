"""One Keras model that averages the class probabilities of several trained models.

It is one graph (the members are nested models, each with its own
preprocessing layers), so it saves, loads and exports to TFLite like any
single model; its size and latency are the sum of its members'.
"""

from __future__ import annotations

import keras

ENSEMBLE = "ensemble"


def average(members: list[keras.Model], name: str = "kerasflow_ensemble") -> keras.Model:
    """inputs -> each member -> mean of their probabilities; members are renamed member_1..n (unique in the graph)."""
    inputs = keras.Input(shape=members[0].input_shape[1:], name="features")
    outputs = [keras.Model(m.inputs, m.output, name=f"member_{i}")(inputs) for i, m in enumerate(members, start=1)]
    averaged = keras.layers.Average(name="probabilities", dtype="float32")(outputs)
    return keras.Model(inputs, averaged, name=name)


def member_hyperparameters(values: dict) -> list[dict]:
    """The members' hyperparameters of an ensemble's values; a single model's values as its one member."""
    return list(values["members"]) if values.get("family") == ENSEMBLE else [values]


def describe(values: dict) -> str:
    """'cnn', or 'ensemble of 3 (rocket, rocket, cnn)'."""
    if values.get("family") != ENSEMBLE:
        return str(values.get("family", ""))
    families = [m.get("family", "?") for m in values["members"]]
    return f"{ENSEMBLE} of {len(families)} ({', '.join(families)})"


def member_models(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble built by `average` (also once saved and loaded), a member that is itself an
    average (a bag of fold models, `pipelines.search.towers`) by its own members; a single model alone."""
    found = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith("member_")]
    return [leaf for member in found for leaf in member_models(member)] if found else [model]
