"""The fused LSTM computes what keras.layers.LSTM computes, eagerly and in a graph, and saves and loads."""

import keras
import numpy as np
import pytest

from models.lstm import FusedLSTM, export_batch_size


@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_lstm_matches_keras_lstm_with_the_same_weights(return_sequences, tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 12, 3)).astype("float32")
    reference = keras.layers.LSTM(8, return_sequences=return_sequences)
    fused = FusedLSTM(8, return_sequences=return_sequences)
    expected = reference(x).numpy()
    fused.build(x.shape)
    fused.set_weights(reference.get_weights())  # same layout: kernel, recurrent kernel, bias (gates i, f, c, o)
    assert np.allclose(fused(x).numpy(), expected, atol=1e-5), "eager"
    model = keras.Sequential([keras.Input((12, 3)), fused])
    assert np.allclose(model.predict(x, verbose=0), expected, atol=1e-5), "graph (the marked function)"
    model.save(tmp_path / "m.keras")
    assert np.allclose(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0), expected, atol=1e-5)
    assert export_batch_size(model) == 1 and export_batch_size(keras.Sequential([keras.Input((3,))])) is None
