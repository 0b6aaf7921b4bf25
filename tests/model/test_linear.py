"""The `linear` family: scikit-learn's logistic regression on the in-model features, inside a Keras softmax layer."""

import keras
import keras_tuner as kt
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from models import CLOSED_FORM_FAMILIES, KerasflowHyperModel, families_for
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs


def _inputs(path, target):
    splits = split_dataset(load_path(path, target), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    return model_inputs(splits, prep), prep


def _solved(prep, x, y, c, class_weight=None):
    hp = kt.HyperParameters()
    hp.values.update({"family": "linear", "linear_c": c})
    hypermodel = KerasflowHyperModel(prep, ["linear"])
    model = hypermodel.build(hp)
    metrics = hypermodel.fit(hp, model, x, y, class_weight=class_weight)
    return model, metrics


def _features(model, x):
    """What the softmax layer sees: the encoded (tables) or normalised (images) inputs, flattened."""
    head = model.get_layer("probabilities")
    return np.asarray(keras.Model(model.inputs, head.input).predict(x, verbose=0), dtype=np.float64)


@pytest.mark.parametrize("fixture, target, c", [("table_csv", "label", 1.0), ("image_folder", None, 0.1)],
                         ids=["table", "image"])
def test_the_keras_model_is_sklearns_logistic_regression_on_the_preprocessed_features(request, fixture, target, c):
    inputs, prep = _inputs(request.getfixturevalue(fixture), target)
    model, metrics = _solved(prep, inputs.x_train, inputs.y_train, c)
    assert "encode" in [layer.name for layer in model.layers] if prep.kind == "table" else "normalize" in [
        layer.name for layer in model.layers]
    reference = LogisticRegression(C=c, max_iter=1000).fit(_features(model, inputs.x_train), inputs.y_train)
    for x in (inputs.x_train, inputs.x_val):
        expected = reference.predict_proba(_features(model, x))
        assert np.asarray(model.predict(x, verbose=0)) == pytest.approx(expected, abs=1e-5)
    assert 0 <= metrics["loss"] and metrics["accuracy"] == pytest.approx(
        float((reference.predict(_features(model, inputs.x_train)) == inputs.y_train).mean()))


def test_two_classes_and_class_weights_match_sklearn(table_csv):
    inputs, prep = _inputs(table_csv, "label")
    keep = inputs.y_train != 2  # two of the three classes: one coefficient row, a never-winning third logit
    x, y = inputs.x_train[keep], inputs.y_train[keep]
    weights = {0: 1.0, 1: 5.0}
    model, _ = _solved(prep, x, y, 10.0, class_weight=weights)
    features = _features(model, x)
    reference = LogisticRegression(C=10.0, max_iter=1000, class_weight=weights).fit(features, y)
    probabilities = np.asarray(model.predict(x, verbose=0))
    assert probabilities[:, :2] == pytest.approx(reference.predict_proba(features), abs=1e-5)
    assert probabilities[:, 2].max() < 1e-6, "a class absent from training never wins"
    unweighted = LogisticRegression(C=10.0, max_iter=1000).fit(features, y).predict_proba(features)
    assert np.abs(unweighted - reference.predict_proba(features)).max() > 1e-3, "the weights changed the solution"


def test_linear_fits_every_input_kind_and_is_solved_in_closed_form():
    assert "linear" in CLOSED_FORM_FAMILIES
    for kind in ("table", "image", "sequence"):
        assert "linear" in families_for(kind)[0], kind
