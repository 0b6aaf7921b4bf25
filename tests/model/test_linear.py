"""The `linear` family: scikit-learn's logistic regression on the in-model features, inside a Keras softmax layer."""

import keras
import keras_tuner as kt
import numpy as np
import pytest
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from models import CLOSED_FORM_FAMILIES, KerasflowHyperModel, families_for
from models.linear import ROW_SPACE_MAX_ROWS, row_space, solve_logistic
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


# The image fixture has more pixels than training rows: solved on the rows' coordinates (`models.linear.row_space`),
# lbfgs stops within its tolerance (1e-4) of the same optimum by another path than on the full width.
@pytest.mark.parametrize("fixture, target, c, tolerance", [("table_csv", "label", 1.0, 1e-5),
                                                           ("image_folder", None, 0.1, 1e-3)], ids=["table", "image"])
def test_the_keras_model_is_sklearns_logistic_regression_on_the_preprocessed_features(request, fixture, target, c,
                                                                                       tolerance):
    inputs, prep = _inputs(request.getfixturevalue(fixture), target)
    model, metrics = _solved(prep, inputs.x_train, inputs.y_train, c)
    assert "encode" in [layer.name for layer in model.layers] if prep.kind == "table" else "normalize" in [
        layer.name for layer in model.layers]
    reference = LogisticRegression(C=c, max_iter=1000).fit(_features(model, inputs.x_train), inputs.y_train)
    for x in (inputs.x_train, inputs.x_val):
        expected = reference.predict_proba(_features(model, x))
        assert np.asarray(model.predict(x, verbose=0)) == pytest.approx(expected, abs=tolerance)
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


@pytest.mark.parametrize("classes", [2, 3])
def test_wider_than_tall_is_solved_on_the_rows_coordinates_and_is_the_same_optimum(classes):
    """Fewer rows than features (a long series, a wide table, pixels): the solve runs on the rows' coordinates in
    their span and maps back. Its probabilities are the full-width optimum's (scikit-learn run to a tight tolerance),
    on training rows and on rows outside the span, as close as scikit-learn's own default fit on the full width."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 300))
    y = np.arange(40) % classes
    x[:, :5] += y[:, None]  # a signal in a few columns
    held_out = rng.standard_normal((10, 300))
    basis, coordinates = row_space(x)
    assert basis.shape == (300, 40) and coordinates.shape == (40, 40)
    assert x @ basis == pytest.approx(coordinates, abs=1e-10)
    kernel, bias = solve_logistic(x, y, None, classes, c=1.0)
    optimum = LogisticRegression(C=1.0, max_iter=10_000, tol=1e-10).fit(x, y)
    default = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    errors = {}
    for name, rows in (("training", x), ("held out", held_out)):
        solved = softmax(rows @ kernel + bias, axis=1)
        errors[name] = np.abs(solved - optimum.predict_proba(rows)).max()
        assert errors[name] <= np.abs(default.predict_proba(rows) - optimum.predict_proba(rows)).max() + 1e-4, name
    assert errors["training"] < 1e-3
    assert row_space(x[:, :30])[0] is None, "a matrix taller than wide is fitted as it is"
    many = np.zeros((ROW_SPACE_MAX_ROWS + 1, ROW_SPACE_MAX_ROWS + 2))
    assert row_space(many)[0] is None, "so is one of more rows than the factorisation pays for"


@pytest.mark.parametrize("classes", [2, 4])
def test_a_sparse_problem_is_solved_on_the_columns_that_hold_an_entry_and_gives_the_full_width_optimum(classes):
    """TF-IDF with hashed word pairs is thousands of columns wide and empty in most (openintro's blizzard_salary:
    97 s a trial over every column): a column with no entry gets a zero coefficient at the optimum, so the problem is
    solved on the others and the kernel is the full-width fit's."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    y = np.arange(60) % classes
    dense = np.zeros((60, 5000))
    dense[:, rng.choice(5000, 80, replace=False)] = rng.random((60, 80)) * (rng.random((60, 80)) < 0.2)
    dense[np.arange(60), 7 + y] = 1.0  # a word per class
    x = sparse.csr_matrix(dense)
    basis, coordinates = row_space(x)
    assert basis.shape[0] == 5000 and coordinates.shape[1] == basis.shape[1] == int((x.getnnz(axis=0) > 0).sum())
    kernel, bias = solve_logistic(x, y, None, classes, c=10.0)
    full = LogisticRegression(C=10.0, max_iter=10_000, tol=1e-10).fit(x, y)
    empty = x.getnnz(axis=0) == 0
    assert np.all(kernel[empty] == 0.0)
    assert np.abs(softmax(x @ kernel + bias, axis=1) - full.predict_proba(x)).max() < 1e-3
    assert row_space(sparse.csr_matrix(dense[:, 7:7 + classes]))[0] is None, "no empty column: fitted as it is"
