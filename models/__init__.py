"""Keras hypermodels: one keras-tuner space over linear, dense, CNN, LSTM, MiniRocket and tree-ensemble
families, and their ensembles.

The names below load their module on first use (PEP 562), so that importing a Keras-free module of this package
(`models.backbones`: the option values the CLI offers) does not import Keras and TensorFlow.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "models.ensemble": ("ENSEMBLE", "average", "describe", "member_hyperparameters"),
    "models.hypermodel": ("CLOSED_FORM_FAMILIES", "FAMILIES", "KerasflowHyperModel", "cheapest_first", "closed_form",
                          "families_for", "features_fit_without_labels", "trained_by_epochs", "trial_class_weight"),
    "models.layers": ("TabularEncoder",),
    "models.portfolio": ("PORTFOLIO", "first_trials"),
    "models.rocket": ("MiniRocket",),
    "models.trees": ("TreeEnsemble",),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
