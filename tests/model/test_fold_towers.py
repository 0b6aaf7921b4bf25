"""The fast k-fold (`pipelines.search.towers`): a trial's k fold models trained at once, each on its own rows."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold

from models import KerasflowHyperModel
from models.inference import log_loss_and_accuracy
from pipelines.preprocess import Preprocessing
from pipelines.search.towers import FoldStopping, fit_towers, fold_towers, tower_outputs, tower_weights

FOLDS = 3
MLP = dict(family="dense", dense_layers=1, dense_units=32, dense_batchnorm=False, dropout=0.0, learning_rate=1e-2,
           l2=1e-2)


def _table(rows: int = 120):
    """breast_cancer's first rows (30 numeric columns, 2 classes), its folds, and an MLP's hypermodel and values."""
    x, y = load_breast_cancer(return_X_y=True)
    x, y = x[:rows].astype("float32"), y[:rows]
    prep = Preprocessing(kind="table", input_shape=[x.shape[1]], class_names=["malignant", "benign"],
                         mean=x.mean(0).tolist(), variance=x.var(0).tolist())
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, y))
    hypermodel = KerasflowHyperModel(prep, ["dense"])
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hypermodel.build(hp)
    hp.values.update(MLP)
    return x, y, folds, hypermodel, hp


def _trained_members(x, y, folds, hypermodel, hp, epochs: int = 3):
    keras.utils.set_random_seed(0)
    members = [hypermodel.build(hp) for _ in folds]
    fit_towers(members, x, y, folds, epochs=epochs, batch_size=16)
    return members


def test_a_towers_weights_do_not_depend_on_its_held_out_labels():
    """Same seed, same rows; only fold 0's held-out labels flipped: tower 0 must end the same, tower 1 (which
    trains on those rows) must not."""
    x, y, folds, hypermodel, hp = _table()
    flipped = y.copy()
    flipped[folds[0][1]] = 1 - flipped[folds[0][1]]
    first = _trained_members(x, y, folds, hypermodel, hp)
    second = _trained_members(x, flipped, folds, hypermodel, hp)
    for a, b in zip(first[0].get_weights(), second[0].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b, atol=1e-4) for a, b in zip(first[1].get_weights(), second[1].get_weights()))


def test_each_towers_share_of_the_loss_is_the_mean_over_its_own_training_rows():
    """What the tower graph minimises (Keras's own reduction, L2 penalties included) is the sum of what each fold
    model minimises alone: its mean loss on its training rows plus its penalty, at any class weights."""
    x, y, folds, hypermodel, hp = _table()
    keras.utils.set_random_seed(1)
    members = [hypermodel.build(hp) for _ in folds]
    towers = fold_towers(members)
    class_weight = {0: 2.0, 1: 0.5}
    together = towers.evaluate(x, np.repeat(y[:, None], FOLDS, axis=1), batch_size=len(y), verbose=0,
                               sample_weight=tower_weights(y, folds, class_weight))
    alone = []
    for member, (train, _) in zip(members, folds):
        probabilities = keras.ops.convert_to_numpy(member(x[train]))
        weights = np.array([class_weight[label] for label in y[train]])
        picked = probabilities[np.arange(len(train)), y[train]]
        penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in member.losses)
        alone.append(float(np.mean(-np.log(picked) * weights)) + penalty)
    assert together == pytest.approx(sum(alone), rel=1e-4)


def test_each_tower_keeps_its_own_best_epoch_and_the_fit_ends_when_all_have_stopped_improving():
    """Labels that the features do not predict: every tower's held-out loss soon rises. Each tower ends at the
    epoch of its lowest held-out loss, and the out-of-fold probabilities are those of that epoch."""
    x, _, folds, hypermodel, hp = _table(150)
    y = np.arange(len(x)) % 2
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(x, y))
    keras.utils.set_random_seed(0)
    members = [hypermodel.build(hp) for _ in folds]
    towers = fold_towers(members)
    stopping = FoldStopping(members, x, y, folds, patience=3)
    history = towers.fit(x, np.repeat(y[:, None], FOLDS, axis=1), sample_weight=tower_weights(y, folds),
                         epochs=200, batch_size=16, verbose=0, callbacks=[stopping])
    ran = len(history.epoch)
    assert ran < 200 and ran == max(stopping.epochs_to_best) + 3, (ran, stopping.epochs_to_best)
    heldout = tower_outputs(towers, x, folds)
    for tower, (_, val) in enumerate(folds):
        assert log_loss_and_accuracy(heldout[val], y[val])["loss"] == pytest.approx(stopping.best[tower], rel=1e-5)


def test_towers_are_for_small_inputs_only():
    """Tables, series and small images train their fold models as towers; larger images one after another."""
    from pipelines.search.towers import towers_pay

    assert towers_pay([30]) and towers_pay([251, 1]) and towers_pay([64, 64, 1])
    assert not towers_pay([64, 64, 3]) and not towers_pay([224, 224, 3])


def test_a_tower_saved_as_the_trials_checkpoint_loads_into_the_model_the_space_builds(tmp_path):
    """The tuner keeps the last tower as the trial's checkpoint; its weights load into the model that
    `get_best_models` and the ensemble build from the same hyperparameters (a tower is renamed in the graph)."""
    x, y, folds, hypermodel, hp = _table()
    last = _trained_members(x, y, folds, hypermodel, hp)[-1]
    last.save_weights(tmp_path / "checkpoint.weights.h5")
    again = hypermodel.build(hp)
    again.load_weights(tmp_path / "checkpoint.weights.h5")
    np.testing.assert_allclose(again.predict(x, verbose=0), last.predict(x, verbose=0), atol=1e-6)
