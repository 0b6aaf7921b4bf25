"""Keras hypermodels: one keras-tuner space over dense, CNN and LSTM families."""

from models.hypermodel import KerasflowHyperModel, families_for
from models.layers import TabularEncoder

__all__ = ["KerasflowHyperModel", "TabularEncoder", "families_for"]
