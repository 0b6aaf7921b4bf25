"""The `kernel` family: RBF kernel ridge classification, its landmarks and head solved, inside the Keras model."""

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from models import CLOSED_FORM_FAMILIES, KerasflowHyperModel, families_for
from models.inference import layer_inputs, model_outputs
from models.kernel import MAX_LANDMARK_VALUES, MAX_LANDMARKS, landmark_count
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs


def _inputs(path, target):
    splits = split_dataset(load_path(path, target), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    return model_inputs(splits, prep), prep


def _solved(prep, x, y, gamma=1.0):
    hp = kt.HyperParameters()
    hp.values.update({"family": "kernel", "kernel_gamma": gamma})
    hypermodel = KerasflowHyperModel(prep, ["kernel"], x_fit=x)
    model = hypermodel.build(hp)
    return model, hypermodel.fit(hp, model, x, y), hp


def test_kernel_fits_every_input_kind_and_is_solved_in_closed_form():
    assert "kernel" in CLOSED_FORM_FAMILIES
    for kind in ("table", "image", "sequence"):
        assert "kernel" in families_for(kind)[0], kind


def test_landmarks_are_every_row_up_to_the_bounds():
    assert landmark_count(150, 13) == 150, "below MAX_LANDMARKS rows the kernel is exact"
    assert landmark_count(5000, 13) == MAX_LANDMARKS
    assert landmark_count(5000, 10_000) == MAX_LANDMARK_VALUES // 10_000, "wide inputs take fewer landmarks"


@pytest.mark.parametrize("fixture, target", [("table_csv", "label"), ("image_folder", None)], ids=["table", "image"])
def test_the_layer_computes_sklearns_rbf_kernel_to_training_rows(request, fixture, target):
    inputs, prep = _inputs(request.getfixturevalue(fixture), target)
    model, metrics, hp = _solved(prep, inputs.x_train, inputs.y_train, gamma=2.0)
    assert hp.values["kernel_landmarks"] == len(inputs.x_train)
    rbf = model.get_layer("rbf")
    centres, _, gamma = (np.asarray(w, np.float64) for w in rbf.get_weights())
    features = layer_inputs(model, rbf, inputs.x_val).astype(np.float64)
    training = layer_inputs(model, rbf, inputs.x_train).astype(np.float64)
    assert float(gamma) == pytest.approx(2.0 / (training.shape[1] * training.var()), rel=1e-5), "2 x gamma='scale'"
    assert {tuple(np.round(c, 4)) for c in centres.T} <= {tuple(np.round(r, 4)) for r in training}, \
        "landmarks are training rows"
    expected = rbf_kernel(features, centres.T, gamma=float(gamma))
    assert layer_inputs(model, model.get_layer("probabilities"), inputs.x_val) == pytest.approx(expected, abs=1e-4)
    assert metrics["accuracy"] >= 0.9, "kernel ridge fits its training rows"
    assert model_outputs(model, inputs.x_val).sum(axis=1) == pytest.approx(1.0, abs=1e-5)


def test_kernel_ridge_separates_rings_a_linear_model_cannot(tmp_path):
    rng = np.random.default_rng(0)
    radius = np.r_[rng.uniform(0, 1, 150), rng.uniform(2, 3, 150)]
    angle = rng.uniform(0, 2 * np.pi, 300)
    frame = pd.DataFrame({"a": radius * np.cos(angle), "b": radius * np.sin(angle),
                          "label": np.where(radius < 1.5, "inner", "outer")})
    frame.to_csv(tmp_path / "rings.csv", index=False)
    inputs, prep = _inputs(tmp_path / "rings.csv", "label")
    model, _, _ = _solved(prep, inputs.x_train, inputs.y_train)
    accuracy = (model_outputs(model, inputs.x_test).argmax(1) == inputs.y_test).mean()
    assert accuracy >= 0.95, accuracy


def test_a_kernel_model_saves_and_loads_with_its_landmarks(table_csv, tmp_path):
    inputs, prep = _inputs(table_csv, "label")
    model, _, _ = _solved(prep, inputs.x_train, inputs.y_train)
    path = tmp_path / "kernel.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert model_outputs(reloaded, inputs.x_val) == pytest.approx(model_outputs(model, inputs.x_val), abs=1e-6)
