"""Keras hypermodels: one keras-tuner space over dense, CNN, LSTM and MiniRocket families, and their ensembles."""

from models.ensemble import ENSEMBLE, average, describe, member_hyperparameters
from models.hypermodel import CLOSED_FORM_FAMILIES, FAMILIES, KerasflowHyperModel, cheapest_first, families_for
from models.layers import TabularEncoder
from models.rocket import MiniRocket

__all__ = ["CLOSED_FORM_FAMILIES", "ENSEMBLE", "FAMILIES", "KerasflowHyperModel", "MiniRocket", "TabularEncoder",
           "average", "cheapest_first", "describe", "families_for", "member_hyperparameters"]
