"""pipelines.search.gradients: a fit's traced train step is freed when the block around it ends."""

import gc

import keras
import numpy as np
import pytest
from tensorflow.python.framework.func_graph import FuncGraph

from pipelines.search.gradients import custom_gradients, released_gradients


def _live_graphs() -> int:
    gc.collect()
    return sum(issubclass(type(o), FuncGraph) for o in gc.get_objects())  # type(): a dead weak proxy has no class


def _fit_once() -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.random.default_rng(0).random((16, 3)), np.arange(16) % 2, epochs=1, verbose=0)


def test_the_train_step_graph_outlives_its_model_inside_the_block_and_not_after_it():
    keras.utils.clear_session()
    baseline, before = _live_graphs(), custom_gradients()
    with released_gradients():
        _fit_once()  # the model is gone when this returns
        registered = custom_gradients() - before
        if not registered:
            pytest.skip("this TensorFlow registers no custom gradient in a fit: nothing to release")
        kept = _live_graphs()
    assert kept > baseline  # the registry's entry alone kept the traced graph of a model nothing refers to
    assert custom_gradients() == before
    assert _live_graphs() <= baseline


def test_the_block_keeps_what_was_registered_before_it_and_releases_on_error():
    outer_before = custom_gradients()
    with released_gradients():
        _fit_once()
        outer = custom_gradients() - outer_before
        with pytest.raises(RuntimeError), released_gradients():
            _fit_once()
            raise RuntimeError("a trial failed")
        assert custom_gradients() - outer_before == outer  # the inner block took only its own
    assert custom_gradients() == outer_before
