"""The one way kerasflow reads a saved Keras model: its own layers registered first.

Keras finds a saved model's custom layers (the in-model encoder, kernel ridge's features, MiniRocket, the trees,
the text layers, the fused LSTM) by the names `keras.saving.register_keras_serializable` gives them when their
modules are imported. `models` imports its modules on first use (PEP 562, so that the CLI's `--help` does not load
Keras), so a process that only scores had imported none of them: `kerasflow predict` on a table model, and a
scheduled batch-scoring run in a Prefect worker, stopped with "Could not locate class 'TabularEncoder'".
"""

from __future__ import annotations

import importlib

import keras

LAYER_MODULES = ("models.kernel", "models.layers", "models.lstm", "models.rocket", "models.text", "models.trees")


def load_model(path, **kwargs) -> keras.Model:
    """`keras.models.load_model(path, **kwargs)` with every kerasflow layer registered."""
    for module in LAYER_MODULES:
        importlib.import_module(module)
    return keras.models.load_model(path, **kwargs)
