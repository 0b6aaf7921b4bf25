"""A training state made before the first `fit` (`models.training_state`): the train step is traced once, not twice,
and the training is the same."""

import keras
import keras_tuner as kt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import StratifiedKFold

from models import KerasflowHyperModel
from models.training_state import build_training_state
from pipelines.preprocess import Preprocessing
from pipelines.search import towers as towers_module
from pipelines.search.towers import fold_towers

MLP = dict(family="dense", dense_layers=1, dense_units=16, dense_batchnorm=False, dropout=0.0, learning_rate=1e-2,
           l2=0.0)


def _wine():
    x, y = load_wine(return_X_y=True)
    x = x.astype("float32")
    prep = Preprocessing(kind="table", input_shape=[x.shape[1]], class_names=["a", "b", "c"],
                         mean=x.mean(0).tolist(), variance=x.var(0).tolist())
    hypermodel = KerasflowHyperModel(prep, ["dense"])
    hp = kt.HyperParameters()
    hypermodel.build(hp)
    hp.values.update(MLP)
    return x, y, hypermodel, hp


def _counting_traces(model: keras.Model) -> list:
    """The times `fit` runs `model.train_step` in Python: each is a trace (the step then runs as a graph)."""
    traces, step = [], model.train_step

    def counted(data):
        traces.append(1)
        return step(data)

    model.train_step = counted
    return traces


def test_a_fresh_models_first_fit_traces_its_train_step_twice_unless_its_state_was_built():
    """Keras makes the optimizer's and the metrics' variables inside the first trace, and TensorFlow traces a
    function again when its first trace made variables: the reason `build_training_state` exists (if Keras stops
    doing so, the first count fails). Made first, the fit is the same: same curves, same weights."""
    x, y, hypermodel, hp = _wine()
    keras.utils.set_random_seed(0)
    left = hypermodel.build(hp)
    traces = _counting_traces(left)
    plain = left.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    assert len(traces) == 2
    keras.utils.set_random_seed(0)
    built = hypermodel.build(hp)
    traces = _counting_traces(built)
    made_first = build_training_state(built, x, y).fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    assert len(traces) == 1 and built.optimizer.built
    assert made_first.history == plain.history
    for a, b in zip(left.get_weights(), built.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_spaces_fit_and_the_fold_towers_trace_their_train_step_once(monkeypatch):
    x, y, hypermodel, hp = _wine()
    model = hypermodel.build(hp)
    traces = _counting_traces(model)
    hypermodel.fit(hp, model, x, y, epochs=2, batch_size=32, verbose=0)
    assert len(traces) == 1
    counted = []

    def counting_towers(members):
        joined = fold_towers(members)
        counted.append(_counting_traces(joined))
        return joined

    monkeypatch.setattr(towers_module, "fold_towers", counting_towers)
    members = [hypermodel.build(hp) for _ in range(3)]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(x, y))
    heldout, history = towers_module.fit_towers(members, x, y, folds, epochs=2, batch_size=32)
    assert len(history.epoch) == 2 and heldout.shape == (len(y), 3)
    assert [len(traces) for traces in counted] == [1], "one towers model, its train step traced once"


def test_building_again_keeps_the_state_a_fit_left():
    """A model trained before keeps its optimizer's moments and its metrics' counts: built again they would reset."""
    x, y, hypermodel, hp = _wine()
    model = build_training_state(hypermodel.build(hp), x, y)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    moments = [np.array(v) for v in model.optimizer.variables]
    counts = [np.array(v) for v in model.metrics_variables]
    build_training_state(model, x, y)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(moments, model.optimizer.variables))
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(counts, model.metrics_variables))
