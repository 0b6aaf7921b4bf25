"""Preprocessing inside the model, and the search space's families and sizes."""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from models import KerasflowHyperModel, families_for
from models.hypermodel import MAX_LSTM_STEPS
from models.lstm import FusedLSTM
from pipelines.finetune import build_from_hyperparameters
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import Preprocessing, encode_features, fit_preprocessing
from tests.conftest import make_table


def _table_prep(table_csv):
    splits = split_dataset(load_path(table_csv, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    return splits, fit_preprocessing(splits)


def test_table_preprocessing_adapts_on_train_and_keeps_vocabularies(table_csv, tmp_path):
    splits, prep = _table_prep(table_csv)
    assert prep.numeric_columns == ["x1", "x2"] and prep.categorical_columns == ["colour"]
    assert prep.vocabularies["colour"] == ["blue", "green", "red"]
    assert prep.mean[0] == pytest.approx(splits.train.features["x1"].mean())
    assert Preprocessing.load(prep.save(tmp_path / "p.json")) == prep


def test_model_takes_raw_features_nan_and_unseen_categories(table_csv):
    splits, prep = _table_prep(table_csv)
    x = encode_features(splits.train, prep)
    assert x.shape[1] == 3 and np.isnan(x[:, 1]).any()
    assert set(np.unique(x[:, 2])) <= {0.0, 1.0, 2.0, 3.0}  # 0 = missing
    encoder = build_from_hyperparameters(prep, {"family": "dense"}).get_layer("encode")
    encoded = keras.ops.convert_to_numpy(encoder(x))
    assert encoded.shape == (len(x), 2 + 4)
    assert np.isfinite(encoded).all()
    assert np.allclose(encoded[:, 2:].sum(axis=1), 1.0)
    assert abs(encoded[:, 0].mean()) < 1e-5  # standardised on train


def test_a_column_constant_on_the_training_split_is_scaled_by_one_not_blown_up(tmp_path):
    """A descriptor that is 0 on every training row and 1 on a later one: standardised by its training variance
    (0, floored at 1e-12) the later 1 came out as 1e6, and the kernel's similarities of every row collapsed."""
    frame = make_table(60)
    frame["flag"] = 0.0
    frame.to_csv(tmp_path / "t.csv", index=False)
    splits = split_dataset(load_path(tmp_path / "t.csv", "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    flag = prep.numeric_columns.index("flag")
    assert prep.variance[flag] == 1.0 and prep.variance[0] == pytest.approx(np.var(splits.train.features["x1"]))
    x = encode_features(splits.test, prep)
    x[0, flag] = 1.0
    encoder = build_from_hyperparameters(prep, {"family": "dense"}).get_layer("encode")
    encoded = keras.ops.convert_to_numpy(encoder(x))
    assert encoded[0, flag] == pytest.approx(1.0) and (encoded[1:, flag] == 0).all()


def test_tables_search_linear_kernel_dense_and_trees_only_and_say_why():
    families, skipped = families_for("table")
    assert families == ["linear", "kernel", "dense", "trees"]
    assert "no spatial" in skipped["cnn"] and "no time axis" in skipped["lstm"]
    families, skipped = families_for("image", ["cnn"])
    assert families == ["cnn"] and skipped["dense"] == skipped["lstm"] == "not requested"
    assert "pixels" in skipped["trees"]
    assert "two" in skipped["rocket"], "MiniRocket is for one time axis"


def _prep(kind, shape):
    channels = shape[-1]
    return Preprocessing(kind=kind, input_shape=list(shape), class_names=["a", "b", "c"],
                         mean=[0.0] * channels, variance=[1.0] * channels)


@pytest.mark.parametrize("kind, shape", [("image", (8, 8, 1)), ("sequence", (20, 2))])
@pytest.mark.parametrize("family", ["linear", "kernel", "dense", "cnn", "lstm", "rocket"])
def test_every_family_builds_for_images_and_sequences(kind, shape, family):
    if family not in families_for(kind, input_shape=shape)[0]:
        pytest.skip(f"{family} does not fit {kind} data")
    model = build_from_hyperparameters(_prep(kind, shape), {"family": family})
    assert model.output_shape == (None, 3)
    assert model.predict(np.zeros((2, *shape), np.float32), verbose=0).shape == (2, 3)


def test_sizes_follow_the_input():
    hp = kt.HyperParameters()
    KerasflowHyperModel(_prep("image", (8, 8, 1)), ["cnn"]).build(hp)
    assert hp.space[[p.name for p in hp.space].index("cnn_blocks")].max_value == 2
    assert max(hp.space[[p.name for p in hp.space].index("cnn_filters")].values) == 64
    big = kt.HyperParameters()
    KerasflowHyperModel(_prep("image", (64, 64, 3)), ["cnn"]).build(big)
    assert big.space[[p.name for p in big.space].index("cnn_blocks")].max_value == 4


def test_lstm_sees_every_step_up_to_the_training_bound_and_pooled_steps_beyond():
    model = build_from_hyperparameters(_prep("sequence", (150, 1)), {"family": "lstm", "lstm_layers": 1})
    lstm = next(layer for layer in model.layers if isinstance(layer, FusedLSTM))
    assert lstm.input.shape[1] == 150
    long = build_from_hyperparameters(_prep("sequence", (1000, 2)), {"family": "lstm", "lstm_layers": 1})
    lstm = next(layer for layer in long.layers if isinstance(layer, FusedLSTM))
    assert lstm.input.shape[1] <= MAX_LSTM_STEPS


@pytest.mark.parametrize("unit_variance", [True, False], ids=["unit-variance", "wine-variance"])
def test_the_float32_tflite_encoder_gives_the_keras_features_bit_for_bit(tmp_path, unit_variance):
    """A tree's threshold can sit exactly on a training value, so one float step in the exported features moves
    whole trees. With every variance 1 the converter used to fold the division by the standard deviation into an
    inexact reciprocal square root (0.99999994): 1,424 of wine's 2,314 features came out one step off."""
    from sklearn.datasets import load_wine

    from models.layers import TabularEncoder
    from pipelines.export.tflite import LiteModel, convert, write_saved_model

    x = load_wine(return_X_y=True)[0].astype("float32")
    variance = np.ones(x.shape[1]) if unit_variance else x.var(axis=0)
    inputs = keras.Input((x.shape[1],), name="features")
    model = keras.Model(inputs, TabularEncoder(x.mean(axis=0).tolist(), variance.tolist(), [])(inputs))
    expected = np.asarray(model.predict(x, verbose=0))
    lite = LiteModel(convert(write_saved_model(model, tmp_path / "saved", [x.shape[1]]), "float32"))
    exported = np.concatenate([lite.predict(x[i:i + 1]) for i in range(len(x))])
    assert np.array_equal(exported, expected)
