"""The search space's new architectures, MiniRocket features against aeon's, and the closed-form head."""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from models import KerasflowHyperModel, cheapest_first, describe, families_for
from models.rocket import PPV_MARGIN, MiniRocket, fit_dilations
from models.trees import make_estimator
from pipelines.finetune import build_from_hyperparameters
from pipelines.preprocess import Preprocessing


def _prep(kind, shape, classes=("a", "b", "c")):
    return Preprocessing(kind=kind, input_shape=list(shape), class_names=list(classes),
                         mean=[0.0] * shape[-1], variance=[1.0] * shape[-1])


def test_dense_spans_softmax_regression_to_residual_batchnorm_blocks():
    plain = build_from_hyperparameters(_prep("image", (8, 8, 1)), {"family": "dense", "dense_layers": 0})
    assert [type(layer).__name__ for layer in plain.layers if isinstance(layer, keras.layers.Dense)] == ["Dense"]
    deep = build_from_hyperparameters(_prep("image", (8, 8, 1)), {
        "family": "dense", "dense_layers": 3, "dense_units": 32, "dense_batchnorm": True, "dense_residual": True})
    kinds = [type(layer).__name__ for layer in deep.layers]
    assert kinds.count("Dense") == 4 and kinds.count("BatchNormalization") == 3 and kinds.count("Add") == 2


@pytest.mark.parametrize("block", ["fcn", "resnet", "inception"])
def test_sequence_blocks_keep_every_time_step_until_global_average_pooling(block):
    model = build_from_hyperparameters(_prep("sequence", (300, 2)), {"family": "cnn", "cnn_block": block})
    pooling = next(layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling1D))
    assert pooling.input.shape[1] == 300
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling1D)
                and layer.strides[0] > 1]


def test_image_augmentation_is_a_hyperparameter_and_off_at_inference():
    values = {"family": "cnn", "augment": True, "augment_flip": True, "augment_rotation": 0.08,
              "augment_zoom": 0.1, "augment_translation": 0.1, "augment_contrast": 0.1}
    model = build_from_hyperparameters(_prep("image", (8, 8, 1)), values)
    names = {type(layer).__name__ for layer in model.layers}
    assert {"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast"} <= names
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    assert np.allclose(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=False))
    hp = kt.HyperParameters()
    KerasflowHyperModel(_prep("sequence", (30, 1)), ["dense"]).build(hp)
    assert "augment" not in hp.values, "only images are augmented"


def test_rocket_is_for_sequences_long_enough_and_tried_first():
    assert "rocket" in families_for("sequence", input_shape=[30, 1])[0]
    assert "at least 9" in families_for("sequence", input_shape=[5, 1])[1]["rocket"]
    assert "rocket" in families_for("image")[1] and "rocket" in families_for("table")[1]
    assert cheapest_first(["dense", "cnn", "lstm", "rocket"])[0] == "rocket"
    assert describe({"family": "ensemble", "members": [{"family": "rocket"}, {"family": "cnn"}]}) == \
        "ensemble of 2 (rocket, cnn)"


def test_dilations_follow_aeons_minirocket():
    from aeon.transformations.collection.convolution_based._minirocket import _fit_dilations

    for length in (9, 24, 150, 251, 1000):
        dilations, counts = _fit_dilations(length, 10_000, 32)
        assert fit_dilations(length) == (list(dilations), list(counts))


@pytest.mark.parametrize("channels", [3])  # aeon compiles each transform with numba (~40 s); 3 channels covers more
def test_minirocket_layer_computes_aeons_features(channels):
    """Same dilations, kernels, channel choices and biases: the Keras layer's PPV features equal aeon's transform."""
    from aeon.transformations.collection.convolution_based import MiniRocket as AeonMiniRocket

    rng = np.random.default_rng(channels)
    x = rng.normal(size=(12, 40, channels)).astype("float32")
    layer = MiniRocket.fitted(x, n_features=84 * 6, seed=1)
    kernels = np.asarray(layer.kernels)  # [dilations, 9, channels, 84]
    masks = (np.abs(kernels).sum(axis=1) > 0)  # [dilations, channels, 84]
    per_combination = np.array([masks[d, :, k].sum() for d in range(len(layer.dilations)) for k in range(84)],
                               dtype=np.int32)
    indices = np.concatenate([np.flatnonzero(masks[d, :, k]) for d in range(len(layer.dilations))
                              for k in range(84)]).astype(np.int32)
    aeon = AeonMiniRocket(n_kernels=84 * 6)
    aeon.fit(np.transpose(x, (0, 2, 1)))
    aeon.parameters = (per_combination, indices, np.array(layer.dilations, dtype=np.int32),
                       np.array(layer.features_per_dilation, dtype=np.int32), np.asarray(layer.biases))
    expected = aeon.transform(np.transpose(x, (0, 2, 1)))
    ours = np.asarray(layer.ppv(x))
    assert ours.shape == expected.shape
    # Ties of a convolution with its own bias (the quantile can land on a value) may flip: allow one step.
    assert np.abs(ours - expected).max() <= 1.0 / 40 + 1e-6
    assert np.mean(np.abs(ours - expected) < 1e-6) > 0.99


def test_minirocket_features_of_zero_padded_sequences_are_the_same_in_tflite(tmp_path):
    """Sequences of different lengths are zero-padded, a constant once standardised, over which the convolution is
    rounding noise about 0 and so were many biases: TFLite's sums flipped whole padded stretches (a padded UCR set's
    float32 model agreed with Keras on 72% of its test series)."""
    from pipelines.export.tflite import LiteModel, convert, write_saved_model

    rng = np.random.default_rng(0)
    x = np.zeros((40, 200, 1), np.float32)
    for i, n in enumerate(rng.integers(66, 200, len(x))):
        x[i, :n, 0] = rng.normal(size=n) + 1.5
    normalize = keras.layers.Normalization(mean=np.array([x.mean()]), variance=np.array([x.var()]))  # pad: constant
    layer = MiniRocket.fitted(np.asarray(normalize(x)), n_features=84 * 40, seed=0)
    assert layer.margin == PPV_MARGIN and np.mean(np.abs(np.asarray(layer.biases)) < 1e-5) > 0.1, "noise biases"
    model = keras.Sequential([keras.Input((200, 1)), normalize, layer])
    lite = LiteModel(convert(write_saved_model(model, tmp_path / "saved", [200, 1]), "float32"))
    features, scale = model.predict(x, verbose=0), np.asarray(layer.feature_scale)
    step = 1.0 / 200 * scale  # one time step's change of a feature, standardised
    assert np.mean(np.abs(lite.predict(x) - features) > step / 2) == 0.0, "a padded step counted differently"
    assert keras.layers.deserialize(keras.layers.serialize(layer)).margin == PPV_MARGIN
    config = {k: v for k, v in layer.get_config().items() if k != "margin"}
    assert MiniRocket.from_config(config).margin == 0.0, "one saved before keeps its counts"


def test_rocket_head_is_solved_in_closed_form_and_the_model_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 60)
    x = np.stack([np.sin(t * (1 + i % 2)) + rng.normal(0, 0.2, 60) for i in range(40)])[..., None].astype("float32")
    y = np.arange(40) % 2
    prep = _prep("sequence", (60, 1), classes=("slow", "fast"))
    hypermodel = KerasflowHyperModel(prep, ["rocket"], x_fit=x[:30])
    hp = kt.HyperParameters()
    hp.values["family"] = "rocket"
    model = hypermodel.build(hp)
    metrics = hypermodel.fit(hp, model, x[:30], y[:30], validation_data=(x[30:], y[30:]))
    assert metrics["accuracy"] == 1.0 and metrics["val_accuracy"] == 1.0
    assert metrics["temperature"] > 0 and np.isfinite(metrics["val_loss"])
    # the training metrics come from the head's arithmetic on the features, not a second run of the model
    from models.inference import log_loss_and_accuracy, model_outputs

    assert metrics["loss"] == pytest.approx(log_loss_and_accuracy(model_outputs(model, x[:30]), y[:30])["loss"],
                                            rel=1e-4, abs=1e-6)
    model.save(tmp_path / "rocket.keras")
    again = keras.models.load_model(tmp_path / "rocket.keras")
    assert np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("rows, columns, classes", [(29, 500, 3), (60, 20, 2), (400, 50, 4)])
def test_the_ridge_heads_leave_one_out_scores_are_scikit_learns(rows, columns, classes):
    """The softmax temperature is fitted on these scores: at a small alpha, wide features (MiniRocket's 10,000 on a
    few dozen series) once scored every left-out row as its own label, and the head came out overconfident."""
    from sklearn.linear_model import RidgeClassifierCV

    from models.rocket import RIDGE_ALPHAS, leave_one_out_scores, ridge_targets

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, columns)), np.arange(rows) % classes
    ridge = RidgeClassifierCV(alphas=RIDGE_ALPHAS, store_cv_results=True).fit(x, y)
    targets = ridge_targets(y, ridge.classes_)
    for i, alpha in enumerate(RIDGE_ALPHAS):  # scikit-learn keeps each row's squared left-out error
        ours = (targets - leave_one_out_scores(x, y, ridge.classes_, alpha)) ** 2
        np.testing.assert_allclose(ours, ridge.cv_results_[:, :, i].reshape(ours.shape), rtol=1e-6, atol=1e-8)


def test_trees_are_for_tables_only():
    assert "trees" in families_for("table")[0]
    assert "trees" in families_for("image")[1] and "trees" in families_for("sequence", input_shape=[30, 1])[1]
    assert cheapest_first(["cnn", "trees", "dense"]) == ["dense", "trees", "cnn"]


STOCHASTIC = {"row_share": 0.8, "feature_share": 0.5, "min_leaf_rows": 10}


@pytest.mark.parametrize("kind, classes, present, sampling", [
    ("boosted", 3, 3, {}), ("boosted", 2, 2, {}), ("boosted", 4, 3, {}), ("boosted", 3, 3, STOCHASTIC),
    ("forest", 3, 3, {}), ("forest", 4, 2, {})],
    ids=["boosted-3", "boosted-binary", "boosted-class-absent", "boosted-stochastic", "forest-3",
         "forest-classes-absent"])
def test_tree_layer_reproduces_sklearns_probabilities_and_round_trips(tmp_path, kind, classes, present, sampling):
    """The tensor-op trees give sklearn's predict_proba (stochastic boosting: the trial's row and feature shares
    and leaf size reach scikit-learn); a class absent from the fitted rows (a CV fold) gets ~0."""
    from sklearn.datasets import make_classification

    x, y = make_classification(300, 6, n_informative=4, n_classes=present, n_clusters_per_class=1, random_state=0)
    x = x.astype("float32")
    y = np.array([0, classes - 1, *range(1, classes - 1)])[y] if present < classes else y
    prep = _prep("table", (6,), classes=[f"c{i}" for i in range(classes)])
    values = {"family": "trees", "trees_kind": kind, "trees_count": 30, f"{kind}_leaves": 8, "trees_seed": 1,
              **{f"boosted_{name}": value for name, value in sampling.items()}}
    hp = kt.HyperParameters()
    hp.values.update(values)
    hypermodel = KerasflowHyperModel(prep, ["trees"])
    model = hypermodel.build(hp)
    metrics = hypermodel.fit(hp, model, x[:200], y[:200], validation_data=(x[200:], y[200:]))
    reference = make_estimator(kind, 30, 8, 0.1, 1, **sampling).fit(x[:200], y[:200])
    probabilities = model.predict(x, verbose=0)
    assert np.allclose(probabilities[:, reference.classes_], reference.predict_proba(x), atol=1e-5)
    absent = np.setdiff1d(np.arange(classes), reference.classes_)
    assert (probabilities[:, absent] < 1e-5).all()
    assert metrics["accuracy"] == reference.score(x[:200], y[:200]) and 0 < metrics["val_accuracy"] <= 1
    layer = model.get_layer("trees")  # each node once (its feature, threshold, first child, values), not a path matrix
    per_node = 3 + (classes if kind == "forest" else 1)
    stored = sum(int(np.prod(weight.shape)) for weight in layer.weights)
    assert stored <= layer.n_trees * ((2 * 8 - 1) * per_node + classes) + classes
    model.save(tmp_path / "trees.keras")
    again = keras.models.load_model(tmp_path / "trees.keras")
    assert np.allclose(again.predict(x, verbose=0), probabilities, atol=1e-6)


def test_boosting_stops_adding_rounds_at_the_deadline_and_the_layer_holds_the_rounds_fitted():
    """A search or fine-tune callback's deadline reaches scikit-learn's `monitor`: past it, boosting keeps the rounds
    fitted (one here: the monitor is asked after each) and the layer gives that smaller model's probabilities."""
    import time

    from sklearn.datasets import make_classification

    from models.trees import ROUNDS_FITTED
    from pipelines.budget import StopAtDeadline

    x, y = make_classification(200, 6, n_informative=4, n_classes=3, n_clusters_per_class=1, random_state=0)
    x = x.astype("float32")
    prep = _prep("table", (6,), classes=["a", "b", "c"])
    hp = kt.HyperParameters()
    hp.values.update({"family": "trees", "trees_kind": "boosted", "trees_count": 30, "boosted_leaves": 8,
                      "trees_seed": 1})
    hypermodel = KerasflowHyperModel(prep, ["trees"])
    model = hypermodel.build(hp)
    metrics = hypermodel.fit(hp, model, x, y, callbacks=[StopAtDeadline(time.time())])
    assert metrics[ROUNDS_FITTED] == 1
    reference = make_estimator("boosted", 1, 8, 0.1, 1).fit(x, y)
    assert np.allclose(model.predict(x, verbose=0), reference.predict_proba(x), atol=1e-5)
    assert hypermodel.fit(hp, model, x, y, callbacks=[StopAtDeadline(time.time() + 600)])[ROUNDS_FITTED] == 30


def test_tree_layer_walks_trees_as_deep_as_their_leaves_allow_after_a_shallow_fit():
    """Each split of a one-hot table isolates one row, so best-first trees grow as chains: a tree of 16 leaves is 15
    deep, the most steps the layer's walk takes. Fitted first where one split suffices (a one-step walk, traced by
    Keras' predict), then refitted on the chains, the layer gives sklearn's probabilities."""
    x, y = np.eye(64, dtype="float32"), np.arange(64)
    prep = _prep("table", (64,), classes=[f"c{i}" for i in range(64)])
    hp = kt.HyperParameters()
    hp.values.update({"family": "trees", "trees_kind": "forest", "trees_count": 50, "forest_leaves": 16,
                      "trees_seed": 1})
    hypermodel = KerasflowHyperModel(prep, ["trees"])
    model = hypermodel.build(hp)
    shallow_x, shallow_y = np.zeros_like(x), y % 2
    shallow_x[:, 0] = shallow_y
    hypermodel.fit(hp, model, shallow_x, shallow_y)
    assert model.get_layer("trees").depth == 1 and model.predict(shallow_x, verbose=0)[:, :2].argmax(1).tolist() == (
        shallow_y.tolist())
    hypermodel.fit(hp, model, x, y)
    reference = make_estimator("forest", 50, 16, 0.1, 1).fit(x, y)
    assert max(tree.tree_.max_depth for tree in reference.estimators_) == 15 == model.get_layer("trees").depth
    assert np.allclose(model.predict(x, verbose=0), reference.predict_proba(x), atol=1e-5)


def test_class_weights_are_a_hyperparameter_when_the_search_may_choose_them():
    """A trial with balance_classes off ignores the weights it is given: the same forest as without weights."""
    from sklearn.datasets import make_classification

    x, y = make_classification(200, 5, n_informative=3, weights=[0.85], random_state=0)
    x = x.astype("float32")
    prep = _prep("table", (5,), classes=("common", "rare"))
    weights = {0: 0.6, 1: 3.0}
    probabilities = {}
    for balance, given in ((True, weights), (False, weights), (None, None)):
        hp = kt.HyperParameters()
        hypermodel = KerasflowHyperModel(prep, ["trees"], balance_choice=balance is not None)
        model = hypermodel.build(hp)
        assert ("balance_classes" in hp.values) == (balance is not None)
        if balance is not None:
            hp.values["balance_classes"] = balance
        hypermodel.fit(hp, model, x, y, class_weight=given)
        probabilities[balance] = model.predict(x, verbose=0)
    assert np.allclose(probabilities[False], probabilities[None], atol=1e-6)
    assert not np.allclose(probabilities[True], probabilities[None], atol=1e-3)
