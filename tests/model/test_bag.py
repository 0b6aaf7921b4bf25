"""Under k-fold selection a trial trained as fold towers keeps its fold models, averaged (a bag); chosen, the bag
ships as the search scored it (`pipelines.search.towers`, `pipelines.finetune`)."""

import time

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd

from models import ENSEMBLE, KerasflowHyperModel
from models.ensemble import member_models
from pipelines.finetune import build_from_hyperparameters, fine_tune
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs
from pipelines.search.fidelity import PATIENCE
from pipelines.search.selection import CrossValidation
from pipelines.search.towers import fit_towers, has_bag, load_bag, save_bag

DENSE = {"family": "dense", "dense_layers": 1, "dense_units": 16, "learning_rate": 1e-2}


def table(table_csv):
    frame = pd.read_csv(table_csv)  # labels a model cannot learn past a point: early stopping ends each fold
    frame["label"] = np.random.default_rng(0).permutation(frame["label"].to_numpy())
    frame.to_csv(table_csv, index=False)
    splits = split_dataset(load_path(table_csv, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    return prep, model_inputs(splits, prep)


def trained_bag(prep, inputs, trial_dir):
    """What the search does for a dense trial under k-fold: fold towers to convergence, the bag kept."""
    cv = CrossValidation.plan(inputs, seed=0, selection="kfold")
    hypermodel, hp = KerasflowHyperModel(prep, ["dense"]), kt.HyperParameters()
    hp.values.update(DENSE)
    members = [hypermodel.build(hp) for _ in cv.folds]
    heldout, history = fit_towers(members, cv.x, cv.y, cv.folds, epochs=200, batch_size=8, patience=PATIENCE)
    save_bag(trial_dir, members, history)
    return cv, heldout, history, lambda: hypermodel.build(hp)


def test_the_bag_a_trial_keeps_is_the_fold_models_its_score_came_from(table_csv, tmp_path):
    prep, inputs = table(table_csv)
    cv, heldout, history, build = trained_bag(prep, inputs, tmp_path)
    assert has_bag(tmp_path) and len(history.epoch) < 200, "each fold model stopped on its held-out fold"
    bag, curves = load_bag(tmp_path, build)
    members = member_models(bag)
    assert len(members) == len(cv.folds)
    for member, (_, val) in zip(members, cv.folds):  # fold k's model scored fold k's held-out rows
        np.testing.assert_allclose(member.predict(cv.x[val], verbose=0), heldout[val], atol=1e-5)
    outputs = [np.asarray(m.predict(inputs.x_test, verbose=0)) for m in members]
    np.testing.assert_allclose(bag.predict(inputs.x_test, verbose=0), np.mean(outputs, axis=0), atol=1e-5)
    assert {"loss", "val_loss", "val_accuracy"} <= set(curves) and len(curves["loss"]) == len(history.epoch)


def test_a_chosen_bag_ships_as_it_is_and_closed_form_members_are_refitted(table_csv, tmp_path):
    prep, inputs = table(table_csv)
    cv, _, _, build = trained_bag(prep, inputs, tmp_path)
    kept = load_bag(tmp_path, build)[0].predict(inputs.x_test, verbose=0)
    shipped = fine_tune(inputs, prep, DENSE, tmp_path / "bag.keras", max_epochs=5, batch_size=8, seed=0,
                        bags=[tmp_path])
    assert shipped.bagged == 1 and shipped.epochs > 5, "the bag's curves, not five epochs of a refit"
    bag = keras.models.load_model(shipped.model_path)
    np.testing.assert_allclose(bag.predict(inputs.x_test, verbose=0), kept, atol=1e-5)
    # the values it reports rebuild it: the float32 copy under mixed precision depends on it
    rebuilt = build_from_hyperparameters(prep, {"family": ENSEMBLE, "members": [DENSE] * len(cv.folds)})
    rebuilt.set_weights(bag.get_weights())
    np.testing.assert_allclose(rebuilt.predict(inputs.x_test, verbose=0), kept, atol=1e-5)
    pair = {"family": ENSEMBLE, "members": [{"family": "linear"}, DENSE]}
    mixed = fine_tune(inputs, prep, pair, tmp_path / "pair.keras", max_epochs=5, batch_size=8, seed=0,
                      bags=[None, tmp_path])
    assert mixed.bagged == 1
    assert len(member_models(keras.models.load_model(mixed.model_path))) == 1 + len(cv.folds)
    single = fine_tune(inputs, prep, DENSE, tmp_path / "one.keras", max_epochs=2, batch_size=8, seed=0)
    assert single.bagged == 0 and single.epochs == 2
    assert len(member_models(keras.models.load_model(single.model_path))) == 1


def test_a_model_named_twice_for_evaluation_is_loaded_and_run_once(tmp_path, monkeypatch):
    """When every member ships as the search's bag, the shipped model is the search's: the run names it twice."""
    from pipelines.runs import evaluate_models

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.save(tmp_path / "m.keras")
    loads = []
    load = keras.models.load_model
    monkeypatch.setattr(keras.models, "load_model", lambda path: loads.append(path) or load(path))
    x, y = np.random.default_rng(0).normal(size=(8, 3)).astype("float32"), np.arange(8) % 2
    (shipped, search), probabilities = evaluate_models([tmp_path / "m.keras"] * 2, x, y, ["a", "b"])
    assert loads == [tmp_path / "m.keras"] and shipped.headline() == search.headline()
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), atol=1e-6)


def test_a_model_already_run_on_the_test_split_is_not_run_again(tmp_path, monkeypatch):
    """The search's model is evaluated (timed) before the fine-tune; a fine-tune not started ships a copy of it."""
    from pipelines.runs import evaluate_models, timed_pass

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.save(tmp_path / "search.keras")
    x, y = np.random.default_rng(0).normal(size=(40, 3)).astype("float32"), np.arange(40) % 2
    timed = timed_pass(tmp_path / "search.keras", x)
    assert timed.seconds > timed.row_seconds > 0, "40 rows: one full batch, the traced one; it again, warm, per row"
    few = timed_pass(tmp_path / "search.keras", x[:8])
    assert few.seconds > few.row_seconds * 8 > 0, "no rows after the first batch: it again, warm, per row"
    model.predict(x[:8], verbose=0)
    started = time.monotonic()
    model.predict(x[:8], verbose=0)
    call = time.monotonic() - started
    assert few.row_seconds * 8 < call / 2, "a row's time leaves out what a predict call costs whatever its rows"
    np.testing.assert_allclose(few.probabilities, model.predict(x[:8], verbose=0), atol=1e-6)
    searched = timed.probabilities
    np.testing.assert_allclose(searched, model.predict(x, verbose=0), atol=1e-6)
    loads = []
    monkeypatch.setattr(keras.models, "load_model", lambda path: loads.append(path))
    known = {tmp_path / "search.keras": searched, tmp_path / "copy.keras": searched}
    (shipped, search), probabilities = evaluate_models([tmp_path / "copy.keras", tmp_path / "search.keras"], x, y,
                                                       ["a", "b"], predicted=known)
    assert loads == [] and shipped.headline() == search.headline() and probabilities is searched


def test_the_report_says_how_many_of_an_ensembles_members_ship_as_bags(tmp_path):
    """A wine run shipped one bagged MLP among five members and the report read "the chosen model ships"."""
    from pipelines.finetune import FineTuneResult
    from pipelines.train import bag_note

    def shipped(bagged):
        return FineTuneResult(tmp_path / "m.keras", {"loss": [0.1]}, 1, 0.1, bagged=bagged)

    assert bag_note(shipped(0), 5) == ""
    assert bag_note(shipped(1), 1).startswith("k-fold selection: the chosen model ships as the search trained and "
                                              "scored it:")
    assert bag_note(shipped(1), 5).startswith("k-fold selection: one of the ensemble's 5 members ships as the "
                                              "search trained and scored it:")
    assert bag_note(shipped(2), 3).startswith("k-fold selection: 2 of the ensemble's 3 members ship as the search "
                                              "trained and scored them:")


def test_a_minirocket_model_the_search_fitted_on_every_row_ships_without_a_refit(sequences_npz, tmp_path,
                                                                               monkeypatch):
    """Under k-fold a MiniRocket trial keeps a head solved on every row: the model a refit would make. The run
    ships it as it is, runs it on the test split once, and its report says why nothing was fine-tuned."""
    import pipelines.train
    from models.saving import load_model
    from pipelines.finetune import fitted_by_search
    from pipelines.train import train
    from tests.conftest import fast_config, make_sequences

    rocket, linear = {"family": "rocket"}, {"family": "linear"}
    assert fitted_by_search([rocket, rocket], cross_validated=True)
    assert not fitted_by_search([rocket], cross_validated=False), "under holdout the search fitted the train split"
    assert not fitted_by_search([rocket, linear], cross_validated=True), "a linear member kept its last fold's fit"
    monkeypatch.setattr(pipelines.train, "fine_tune", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit")))
    result = train(fast_config(data=sequences_npz, runs_root=tmp_path / "runs", families=["rocket"], max_trials=1,
                               selection="kfold", quantize=["float32"]))
    assert result.finetune.fitted_by_search and result.finetune.search_model_kept and result.finetune.seconds == 0
    x = np.stack(make_sequences(8, seed=1, ragged=False)[0]).astype("float32")
    np.testing.assert_allclose(load_model(result.run_dir / "finetuned.keras").predict(x, verbose=0),
                               load_model(result.search.best_model_path).predict(x, verbose=0), atol=1e-6)
    report = result.report_path.read_text()
    assert "rocket ships as the search fitted it: each head solved on every row of train+val" in report
    assert "search best, shipped (fitted on every row by the search)" in report
    assert "learning_curves.png" not in report
