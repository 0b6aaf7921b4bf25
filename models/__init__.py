"""Keras hypermodels: one keras-tuner space over linear, dense, CNN, LSTM, MiniRocket and tree-ensemble
families, and their ensembles."""

from models.ensemble import ENSEMBLE, average, describe, member_hyperparameters
from models.hypermodel import (
    CLOSED_FORM_FAMILIES,
    FAMILIES,
    KerasflowHyperModel,
    cheapest_first,
    closed_form,
    families_for,
    features_fit_without_labels,
    trained_by_epochs,
    trial_class_weight,
)
from models.layers import TabularEncoder
from models.portfolio import PORTFOLIO, first_trials
from models.rocket import MiniRocket
from models.trees import TreeEnsemble

__all__ = ["CLOSED_FORM_FAMILIES", "ENSEMBLE", "FAMILIES", "KerasflowHyperModel", "MiniRocket", "PORTFOLIO",
           "TabularEncoder", "TreeEnsemble", "average", "cheapest_first", "closed_form", "describe", "families_for",
           "features_fit_without_labels", "first_trials", "member_hyperparameters", "trained_by_epochs",
           "trial_class_weight"]
