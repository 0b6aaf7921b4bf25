"""keras-tuner search: budget, failing trials, resume, objective."""

import math

import numpy as np
import pytest

import models.hypermodel
from models import member_hyperparameters
from pipelines.errors import SearchFailed
from pipelines.search import SearchOptions, run_search


def _options(**overrides):
    """Holdout selection and no ensemble, except where a test asks (k-fold costs 5x per trial)."""
    options = dict(tuner="random", max_trials=3, max_epochs=1, batch_size=8, budget_minutes=2, ensemble_size=1,
                   selection="holdout")
    options.update(overrides)
    return SearchOptions(**options)


def test_search_records_every_trial_and_saves_the_best(image_inputs, tmp_path):
    inputs, prep = image_inputs
    seen = []
    result = run_search(inputs, prep, tmp_path / "search", _options(objective="val_macro_f1"),
                        on_trial_end=lambda record, n: seen.append((record.trial_id, n)))
    assert [n for _, n in seen] == [1, 2, 3]
    assert len(result.trials) == 3 and {t.status for t in result.trials} == {"COMPLETED"}
    assert result.best_val_score == max(t.val_score for t in result.trials)
    assert result.best_model_path.exists()
    table = result.trial_table
    assert list(table.columns[:6]) == ["trial_id", "status", "family", "val_score", "seconds", "epochs"]
    assert table["seconds"].notna().all()


def test_a_failing_trial_is_recorded_and_the_search_goes_on(image_inputs, tmp_path, monkeypatch):
    def broken_cnn(self, hp, x):
        raise RuntimeError("cnn build exploded")

    monkeypatch.setattr(models.hypermodel.KerasflowHyperModel, "_cnn", broken_cnn)
    inputs, prep = image_inputs
    result = run_search(inputs, prep, tmp_path / "search",
                        _options(max_trials=3, families=["dense", "cnn"], seed=3))
    statuses = {t.family: t.status for t in result.trials}
    assert statuses.get("cnn") in {"FAILED", "INVALID"}
    assert any("cnn build exploded" in t.message for t in result.trials if t.family == "cnn")
    assert {m["family"] for m in member_hyperparameters(result.best_hyperparameters)} == {"dense"}


def test_an_interrupted_search_resumes_where_it_stopped(image_inputs, tmp_path):
    inputs, prep = image_inputs

    def interrupt_after_two(record, n):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(inputs, prep, tmp_path / "search", _options(max_trials=4), on_trial_end=interrupt_after_two)
    result = run_search(inputs, prep, tmp_path / "search", _options(max_trials=4))
    assert result.resumed_trials == 2
    assert [t.trial_id for t in result.trials] == ["0", "1", "2", "3"]


def test_a_search_killed_as_its_ledger_records_a_trial_resumes_with_that_trial(image_inputs, tmp_path, monkeypatch):
    """The ledger's seconds file is the sign a trial ended (the kill test of `tests/flows/test_retrain.py` waits for
    it): keras-tuner's own files, which a resume reads, are written before it."""
    from pipelines.search.ledger import Timings

    inputs, prep = image_inputs

    def killed(self, trial_id, seconds):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Timings, "record", killed)
        with pytest.raises(KeyboardInterrupt):
            run_search(inputs, prep, tmp_path / "search", _options(max_trials=2))
    result = run_search(inputs, prep, tmp_path / "search", _options(max_trials=2))
    assert result.resumed_trials == 1
    assert [t.trial_id for t in result.trials] == ["0", "1"]


def test_a_spent_budget_starts_no_trial_and_says_so(image_inputs, tmp_path):
    inputs, prep = image_inputs
    with pytest.raises(SearchFailed, match="No trial ran"):
        run_search(inputs, prep, tmp_path / "search", _options(budget_minutes=1e-6))


def test_hyperband_is_the_default_and_respects_max_epochs(image_inputs, tmp_path):
    inputs, prep = image_inputs
    result = run_search(inputs, prep, tmp_path / "search", _options(tuner="hyperband", max_epochs=2, budget_minutes=0.2))
    assert result.trials and all((t.epochs or 0) <= 2 for t in result.trials)
    assert {t.rows for t in result.trials if t.status == "COMPLETED"} == {len(inputs.x_train)}, "small data: all rows"


def test_on_large_data_early_hyperband_rounds_see_a_share_of_the_rows(image_inputs, tmp_path):
    inputs, prep = image_inputs  # 19 training rows count as large from subsample_from=8 on
    result = run_search(inputs, prep, tmp_path / "search", _options(
        tuner="hyperband", max_epochs=3, budget_minutes=0.15, subsample_from=8, families=["dense"]))
    n = len(inputs.x_train)
    completed = [t for t in result.trials if t.status == "COMPLETED"]
    shares = [t for t in completed if t.rows < n]
    assert shares and all(t.rows == math.ceil(n / 3) and t.epochs == 1 for t in shares), \
        "hyperband's first round (1 of 3 epochs) sees a third of the rows"
    assert result.fidelity == "hyperband" and all(t.epochs_run <= 3 for t in completed), "hyperband's rounds kept"
    assert all(t.rows <= n for t in completed) and "rows" in result.trial_table.columns


def test_a_later_hyperband_round_of_a_solved_trial_copies_it_instead_of_solving_again(image_inputs, tmp_path,
                                                                                     monkeypatch):
    """Epochs do not change a head solved in closed form: hyperband carrying one on to a later round on the same rows
    gets the earlier round's model and scores, and nothing is solved again."""
    import models.hypermodel as hypermodel
    import pipelines.search.fidelity as fidelity

    monkeypatch.setattr(fidelity, "CONVERGE_ROWS", 1)  # these 19 rows count as large: hyperband keeps its rounds
    solves = []
    solve = hypermodel.fit_logistic_head
    monkeypatch.setattr(hypermodel, "fit_logistic_head", lambda *args, **kwargs: solves.append(1) or solve(*args,
                                                                                                         **kwargs))
    inputs, prep = image_inputs
    result = run_search(inputs, prep, tmp_path / "search",
                        _options(tuner="hyperband", max_epochs=3, budget_minutes=0.3, families=["linear"]))
    assert result.fidelity == "hyperband"
    assert {t.status for t in result.trials} <= {"COMPLETED", "NOT_STARTED"}
    completed = {t.trial_id: t for t in result.trials if t.status == "COMPLETED"}
    copies = [t for t in completed.values() if t.copied_from is not None]
    assert copies, "hyperband carried a solved trial on to its next round"
    assert len(solves) == len(completed) - len(copies), "a copied trial is not solved again"
    assert all(completed[t.copied_from].copied_from is None for t in copies), "a copy names the trial solved"
    directory = tmp_path / "search"
    for copy in copies:
        earlier = completed[copy.copied_from]
        assert copy.val_score == earlier.val_score and copy.hyperparameters == earlier.hyperparameters
        assert copy.message.startswith(f"copied from trial {earlier.trial_id}")
        weights = [(directory / f"trial_{t.trial_id}" / "checkpoint.weights.h5").read_bytes() for t in (copy, earlier)]
        assert weights[0] == weights[1]


def test_under_holdout_the_winner_rule_weighs_trials_trained_in_hyperbands_rounds(image_inputs, tmp_path,
                                                                                 monkeypatch):
    """A trial trained in hyperband's rounds keeps no held-out probabilities of its own (its last weights are not its
    best): the winner rule gets them from its checkpoint on the scored validation rows, so it can weigh an MLP against
    the portfolio's solved logistic regression instead of shipping the best-scored trial whatever its lead."""
    import keras

    import pipelines.search.fidelity as fidelity
    import pipelines.search.run as run

    monkeypatch.setattr(fidelity, "CONVERGE_ROWS", 1)  # these 19 rows count as large: hyperband keeps its rounds
    seen = {}
    choose = run.choose_trial

    def recording(ranked, portfolio, heldout, y, objective, solved):
        seen.update(ranked=ranked, y=y, probabilities={t.trial_id: heldout(t.trial_id) for t in ranked})
        return choose(ranked, portfolio, heldout, y, objective, solved)

    monkeypatch.setattr(run, "choose_trial", recording)
    inputs, prep = image_inputs
    result = run_search(inputs, prep, tmp_path / "search",
                        _options(tuner="hyperband", max_epochs=3, max_trials=6, budget_minutes=0.4,
                                 families=["linear", "dense"]))
    assert result.fidelity == "hyperband" and not result.cross_validated
    trained = [t for t in seen["ranked"] if t.hyperparameters.values["family"] == "dense"]
    assert trained, "MLP trials were trained in hyperband's rounds"
    assert all(seen["probabilities"][t.trial_id] is not None for t in seen["ranked"]), "every trial can be weighed"
    assert all(seen["probabilities"][t.trial_id].shape == (len(seen["y"]), len(prep.class_names)) for t in trained)
    shipped = keras.saving.load_model(result.best_model_path).predict(inputs.x_val, verbose=0)
    np.testing.assert_allclose(seen["probabilities"][result.best_trial_id], shipped, atol=1e-5)


def test_mobile_budget_trains_only_architectures_that_fit(image_inputs, tmp_path):
    inputs, prep = image_inputs
    result = run_search(inputs, prep, tmp_path / "search",
                        _options(max_trials=5, families=["dense"], max_model_kb=10))
    over = [t for t in result.trials if t.status == "OVER_BUDGET"]
    trained = [t for t in result.trials if t.status == "COMPLETED"]
    assert over and trained, "the seeded space should hold architectures on both sides of 10 KiB"
    assert all(t.int8_kb > 10 and t.val_score is None and t.epochs is None for t in over)
    assert all(t.int8_kb <= 10 and t.val_score is not None and t.latency_ms > 0 for t in trained)
    assert all("over the mobile budget (int8 model <= 10 KiB)" in t.message for t in over)
    best = next(t for t in result.trials if t.trial_id == result.best_trial_id)
    assert best.int8_kb <= 10 and result.mobile_budget == "int8 model <= 10 KiB"


def test_a_budget_no_architecture_meets_names_the_smallest_one(image_inputs, tmp_path):
    inputs, prep = image_inputs
    with pytest.raises(SearchFailed, match=r"no architecture met the mobile budget .*Smallest int8 model found: \d"):
        run_search(inputs, prep, tmp_path / "search",
                   _options(max_trials=3, families=["dense"], max_model_kb=1, max_latency_ms=1e-6))


def test_without_a_mobile_budget_trials_record_parameters_only(image_inputs, tmp_path):
    inputs, prep = image_inputs
    result = run_search(inputs, prep, tmp_path / "search", _options(max_trials=2, families=["dense"]))
    assert all(t.params > 0 and t.int8_kb is None for t in result.trials)


def test_small_training_sets_get_smaller_batches_and_more_epochs_large_ones_larger_batches():
    from pipelines.search import fit_to_data

    asked = _options(batch_size=32, max_epochs=20, min_trial_steps=250)
    small, note = fit_to_data(asked, 42)  # GunPoint's training rows
    assert (small.batch_size, small.max_epochs) == (8, 60) and "small training set (42 rows)" in note
    tiny, _ = fit_to_data(asked, 10)
    assert tiny.max_epochs == 100, "never more than 5x the asked epochs"
    digits, note = fit_to_data(asked, 1222)
    assert (digits.batch_size, digits.max_epochs) == (32, 60) and "stops when its validation loss" in note, \
        "trained to convergence, the asked epochs become a cap 3x as high, not a stop"
    assert fit_to_data(asked, 5000) == (asked, ""), "past the convergence rule, mid-sized data keeps what was asked"
    _, note = fit_to_data(_options(batch_size=512, max_epochs=20, min_trial_steps=50), 3000)
    assert "optimiser steps" in note and "validation loss" not in note, \
        "past the convergence rule, the note does not claim that early stopping ends the trials"
    large, note = fit_to_data(asked, 680_000)
    assert large.batch_size == 680 and "680,000 rows" in note, "an epoch over a million-row table takes 1,000 steps"
    assert fit_to_data(_options(batch_size=32, max_epochs=20, min_trial_steps=0), 42)[0].batch_size == 32, \
        "min_trial_steps=0: off"


def test_small_data_is_scored_out_of_fold_and_each_family_starts_from_its_defaults(sequences_npz, tmp_path):
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs
    from pipelines.search.selection import CrossValidation, load_heldout, scores

    splits = split_dataset(load_path(sequences_npz, None), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    options = _options(max_trials=3, families=["dense", "rocket"], max_epochs=2, ensemble_size=5, selection="auto")
    result = run_search(inputs, prep, tmp_path / "search", options)
    assert result.cross_validated
    assert [t.family for t in result.trials[:2]] == ["rocket", "dense"], "cheapest family first, at its defaults"
    assert result.trials[1].hyperparameters["dense_layers"] == 0, "dense starts as softmax regression"
    cv = CrossValidation.plan(inputs, options.seed)
    for trial in result.trials:
        heldout = load_heldout(tmp_path / "search" / f"trial_{trial.trial_id}")
        assert heldout.shape == (len(cv.y), 2)
        assert trial.val_score == pytest.approx(scores(cv.y, heldout, options.objective)["selection"], abs=1e-6)
    if result.ensemble is not None:
        assert result.best_hyperparameters["family"] == "ensemble"
        assert result.ensemble.members[0] == result.best_trial_id and result.ensemble.score > result.ensemble.single_score


def test_a_minirocket_trials_folds_share_its_features_and_each_head_leaves_its_fold_out(sequences_npz, tmp_path,
                                                                                        monkeypatch):
    """Under k-fold, MiniRocket's features of every row are computed once per trial (they were computed three
    times per fold); each fold's head is solved on the other folds' rows alone, and the trial keeps a head solved
    on every row."""
    import keras
    import keras_tuner as kt
    import numpy as np

    from models import KerasflowHyperModel, MiniRocket
    from models.inference import head_outputs, layer_inputs
    from models.rocket import fit_ridge_head
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs
    from pipelines.search.selection import CrossValidation, load_heldout

    splits = split_dataset(load_path(sequences_npz, None), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    rows_featurised = []
    ppv = MiniRocket.ppv
    monkeypatch.setattr(MiniRocket, "ppv", lambda layer, x: rows_featurised.append(len(x)) or ppv(layer, x))
    options = _options(max_trials=1, families=["rocket"], selection="kfold")
    result = run_search(inputs, prep, tmp_path / "search", options)
    cv = CrossValidation.plan(inputs, options.seed, "kfold")
    assert result.cross_validated and result.trials[0].family == "rocket"
    # keras-tuner builds a model to declare the space; the trial fits MiniRocket, then featurises for the heads;
    # after the search, models are loaded, not fitted again
    assert rows_featurised == [len(inputs.x_train), len(cv.y), len(cv.y)]
    trial_dir = tmp_path / "search" / f"trial_{result.trials[0].trial_id}"
    hp = kt.HyperParameters()
    hp.values.update(result.trials[0].hyperparameters)
    model = KerasflowHyperModel(prep, ["rocket"]).build(hp)
    model.load_weights(trial_dir / "checkpoint.weights.h5")  # MiniRocket fitted on every row, held-out ones too
    head = model.get_layer("probabilities")
    features = layer_inputs(model, head, cv.x)
    kept = [w.copy() for w in head.get_weights()]
    heldout = load_heldout(trial_dir)
    for train, val in cv.folds:
        fit_ridge_head(model, cv.x[train], cv.y[train], features=features[train])
        # relative: these toy classes part so well that the losing class's probability is 1e-12 or less
        np.testing.assert_allclose(head_outputs(head, features[val]), heldout[val], rtol=1e-3, atol=0)
    fit_ridge_head(model, cv.x, cv.y, features=features)  # a head that saw the held-out labels scores otherwise
    assert not np.allclose(head_outputs(head, features), heldout, rtol=1e-1, atol=0)
    for solved, weights in zip(head.get_weights(), kept):
        np.testing.assert_allclose(solved, weights, rtol=1e-4, atol=1e-6,
                                   err_msg="the trial keeps a head solved on every row, not its last fold's")
    keras.backend.clear_session()


@pytest.mark.parametrize("data, families, portfolio_families, selection", [
    ("table_csv", ["linear", "kernel", "trees"], ["linear", "kernel", "trees", "trees"], "kfold"),
    ("image_folder", ["linear", "kernel", "dense"], ["linear", "kernel", "dense"], "kfold"),
    ("table_csv", ["linear", "kernel", "trees"], ["linear", "kernel", "trees", "trees"], "holdout"),
])
def test_the_portfolio_trials_of_a_table_or_image_set_ship_averaged(
        data, families, portfolio_families, selection, request, tmp_path):
    """The portfolio's trials (on images, those its best does not lead clearly) are averaged unless the search's own
    choice leads them clearly (`.ensemble`), under k-fold and under holdout; that choice is the best-scored trial here
    (all but one are the portfolio's), and the leads are checked from the same held-out rows the search saved (out of
    fold, or the validation split)."""
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs
    from pipelines.search.ensemble import contenders
    from pipelines.search.selection import CrossValidation, load_heldout
    from pipelines.search.winner import Lead, min_paired_z

    label = "label" if data == "table_csv" else None
    splits = split_dataset(load_path(request.getfixturevalue(data), label), None, test_fraction=0.2,
                           val_fraction=0.3, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    options = _options(max_trials=len(portfolio_families) + 1, families=families, ensemble_size=5,
                       selection=selection)
    result = run_search(inputs, prep, tmp_path / "search", options)
    portfolio = result.trials[:len(portfolio_families)]
    assert [t.family for t in portfolio] == portfolio_families and result.cross_validated == (selection == "kfold")
    y = CrossValidation.plan(inputs, options.seed, "kfold").y if selection == "kfold" else inputs.y_val
    heldout = {t.trial_id: load_heldout(tmp_path / "search" / f"trial_{t.trial_id}") for t in result.trials}
    ranked = {t.trial_id: heldout[t.trial_id] for t in sorted(portfolio, key=lambda t: -t.val_score)}
    kept = contenders(ranked, y, options.objective) if data == "image_folder" else list(ranked)
    averaged = np.mean([ranked[m] for m in kept], axis=0)
    lead = Lead.of(y, heldout[result.best_trial_id], averaged, options.objective)
    if len(kept) < 2 or lead.mean > min_paired_z(1) * lead.standard_error:
        assert result.ensemble is None or not result.ensemble.why, "no average, or the search's choice led it"
    else:
        assert result.ensemble is not None and result.ensemble.members == kept
        assert "portfolio" in result.ensemble.why and result.best_hyperparameters["family"] == "ensemble"
        assert len(member_hyperparameters(result.best_hyperparameters)) == len(kept)
        assert result.best_model_path.exists()


def test_under_k_fold_a_sequence_portfolio_is_not_averaged(sequences_npz, tmp_path):
    """On series the portfolio's trials are not averaged (`pipelines.search.run.AVERAGED_KINDS`): MiniRocket, the
    linear and the kernel model are all tried, and what ships is one trial or the greedy ensemble of a few."""
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs

    splits = split_dataset(load_path(sequences_npz, None), None, test_fraction=0.2, val_fraction=0.3, seed=0)
    prep = fit_preprocessing(splits)
    options = _options(max_trials=3, families=["rocket", "linear", "kernel"], ensemble_size=5, selection="kfold")
    result = run_search(model_inputs(splits, prep), prep, tmp_path / "search", options)
    assert [t.family for t in result.trials] == ["rocket", "linear", "kernel"] and result.cross_validated
    assert result.ensemble is None or "portfolio" not in result.ensemble.why


def test_a_closed_form_trial_on_a_validation_split_keeps_its_checkpoint_and_can_join_an_ensemble(table_csv, tmp_path):
    """Trees are fitted, not trained by epochs: keras-tuner's checkpoint callback still sees their one 'epoch'."""
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs

    splits = split_dataset(load_path(table_csv, "label"), None, test_fraction=0.2, val_fraction=0.3, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    result = run_search(inputs, prep, tmp_path / "search", _options(max_trials=3, families=["trees", "dense"],
                                                                   ensemble_size=3))
    assert not result.cross_validated and [t.family for t in result.trials] == ["trees", "trees", "dense"], \
        "the table portfolio: a forest, boosted trees, then a regularised MLP"
    trees = next(t for t in result.trials if t.family == "trees")
    assert (tmp_path / "search" / f"trial_{trees.trial_id}" / "checkpoint.weights.h5").exists()
    assert trees.val_score is not None and 0 < trees.val_score <= 1
    assert result.best_model_path.exists()


def test_a_closed_form_trial_that_would_overrun_the_search_is_not_started(tmp_path):
    """Trees are solved in one go and cannot stop at the deadline: with less time left than the family's trials
    took, a trees trial is recorded as not started and no more trees trials are drawn, which ends a search of trees
    alone (`test_keras_tuner_bridge`: the other families go on); with enough, it starts."""
    import re
    import time

    from sklearn.datasets import make_classification

    from pipelines.preprocess import ModelInputs, Preprocessing
    from pipelines.search.selection import CrossValidation
    from pipelines.search.tuner import searching_tuner

    x, y = make_classification(160, 6, n_informative=4, n_classes=3, n_clusters_per_class=1, random_state=0)
    x = x.astype("float32")
    inputs = ModelInputs(x[:100], y[:100], x[100:130], y[100:130], x[130:], y[130:])
    prep = Preprocessing(kind="table", input_shape=[6], class_names=["a", "b", "c"], mean=[0.0] * 6,
                         variance=[1.0] * 6)
    first = run_search(inputs, prep, tmp_path / "search", _options(max_trials=2, families=["trees"]))
    took = max(t.seconds for t in first.trials)
    tuner = searching_tuner(prep, ["trees"], tmp_path / "search", _options(max_trials=3, families=["trees"]),
                            deadline=time.time() + took / 2, x_train=inputs.x_train)
    trees = {"family": "trees"}
    assert tuner.ledger.expected_seconds(trees, 100, tuner.oracle.trials.values()) == pytest.approx(took)
    assert tuner.ledger.expected_seconds(trees, 200, tuner.oracle.trials.values()) == pytest.approx(2 * took)
    trial = tuner.oracle.create_trial("tester")
    assert not tuner.time_left_for(trial, 100)
    record = tuner.ledger.record(trial)
    assert record.status == "NOT_STARTED" and record.val_score is None
    assert re.match(r"not started: trees trials .* may take \d+ s by the trials before it", record.message)
    assert tuner.oracle.left_out == {"trees"}, "no more trees trials drawn only to be left unstarted"
    assert tuner.oracle.deadline <= time.time(), "trees were the only family: the search ends"
    tuner.deadline = time.time() + 3600
    assert tuner.time_left_for(trial, 100), "time enough: it starts"
    # A trial trained by epochs can stop at the deadline after a batch; under k-fold it trains every fold to
    # convergence at once, and its first batch traces k models: it is held to the same rule.
    tuner.deadline = time.time() + took / 2
    trial.hyperparameters.values["family"] = "dense"
    assert tuner.time_left_for(trial, 100), "holdout: it starts, and stops at the deadline"
    tuner.cross_validation = CrossValidation.plan(inputs, seed=0, selection="kfold")
    assert not tuner.time_left_for(trial, 100)
    assert "dense trials train every fold to convergence at once" in tuner.ledger.record(trial).message


def _random_table(n: int, features: int = 4, seed: int = 0):
    """A table of standard-normal features; labels of three classes that the features do not predict."""
    import numpy as np

    from pipelines.preprocess import ModelInputs, Preprocessing

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.arange(n) % 3
    cut, end = n // 2, (3 * n) // 4
    inputs = ModelInputs(x[:cut], y[:cut], x[cut:end], y[cut:end], x[end:], y[end:])
    prep = Preprocessing(kind="table", input_shape=[features], class_names=["a", "b", "c"], mean=[0.0] * features,
                         variance=[1.0] * features)
    return inputs, prep


def test_on_small_data_a_gradient_trial_trains_until_its_validation_loss_stops_improving(tmp_path):
    """Hyperband would give the first trials ceil(30 / 3**3) = 2 epochs; on 60 rows the MLP trains on, past that,
    and stops well before the cap once its validation loss (labels are noise) stops improving. One trial, with time
    to spare: a deadline on a busy machine must not be what stops it."""
    from pipelines.search.fidelity import PATIENCE, Fidelity, hyperband_schedule

    inputs, prep = _random_table(120)
    cap, first_round = 30, 2
    assert hyperband_schedule(Fidelity.CONVERGED, cap)["factor"] > cap, "converging: hyperband has no short rounds"
    result = run_search(inputs, prep, tmp_path / "search", _options(
        tuner="random", max_trials=1, max_epochs=cap, budget_minutes=2, families=["dense"]))
    assert result.fidelity == Fidelity.CONVERGED
    first = result.trials[0]  # the portfolio's MLP, started long before the deadline
    assert first.status == "COMPLETED" and first.hyperparameters["dense_layers"] == 2
    assert first_round < first.epochs_run < cap and first.epochs_run > PATIENCE, first.epochs_run


def test_a_converging_fold_tower_trial_halves_its_learning_rate_on_a_plateau(tmp_path):
    """Labels are noise, so the folds' held-out loss stops improving within a few epochs: the towers' shared rate
    is halved (`lower_on_plateau`, on the mean held-out loss `FoldStopping` logs) before the patience ends the
    trial, and the kept curves show it."""
    import json

    from models.portfolio import MLP_LEARNING_RATE
    from pipelines.search.fidelity import PLATEAU_FACTOR
    from pipelines.search.towers import BAG_FILE

    inputs, prep = _random_table(120)
    result = run_search(inputs, prep, tmp_path / "search", _options(
        tuner="random", max_trials=1, max_epochs=30, budget_minutes=2, families=["dense"], selection="kfold"))
    assert result.trials[0].status == "COMPLETED" and result.trials[0].epochs_run < 30
    bags = list((tmp_path / "search").rglob(BAG_FILE))
    assert len(bags) == 1, "the portfolio MLP trained as fold towers"
    rates = json.loads(bags[0].read_text())["curves"]["learning_rate"]
    assert rates[0] == pytest.approx(MLP_LEARNING_RATE)
    assert min(rates) <= MLP_LEARNING_RATE * PLATEAU_FACTOR * (1 + 1e-6), rates
    assert all(later <= earlier * (1 + 1e-6) for earlier, later in zip(rates, rates[1:])), "only ever lowered"


def test_a_converging_holdout_fit_halves_its_learning_rate_on_a_plateau():
    """The same schedule where a trial trains one model on a validation split (`converging`)."""
    import keras

    from pipelines.search.fidelity import PLATEAU_FACTOR, converging

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = np.arange(64) % 3  # noise labels: the validation loss stops improving early
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    history = model.fit(x[:48], y[:48], verbose=0, **converging({"validation_data": (x[48:], y[48:])}, 200))
    rates = history.history["learning_rate"]
    assert len(rates) < 200, "stopped by its patience"
    assert min(rates) <= rates[0] * PLATEAU_FACTOR * (1 + 1e-6), rates


def test_the_fidelity_rule_converges_small_data_only():
    from pipelines.search.fidelity import CONVERGE_ROWS, Fidelity, fidelity_for

    hyperband = _options(tuner="hyperband")
    assert fidelity_for(CONVERGE_ROWS - 1, hyperband) == Fidelity.CONVERGED
    assert fidelity_for(CONVERGE_ROWS, hyperband) == Fidelity.HYPERBAND, "large data keeps hyperband's rounds"
    assert fidelity_for(100, _options(tuner="hyperband", subsample_from=50)) == Fidelity.HYPERBAND, \
        "rows subsampled for hyperband's rounds count as large"
    assert fidelity_for(CONVERGE_ROWS, _options(tuner="random")) == Fidelity.MAX_EPOCHS


@pytest.mark.parametrize("objective, balanced", [("val_accuracy", False), ("val_macro_f1", True)])
def test_on_imbalanced_classes_the_portfolio_weights_them_only_for_macro_f1(tmp_path, objective, balanced):
    """Under `--class-weight auto` the first trials' `balance_classes` follows the objective: balanced weights lift
    the small class's recall and cost accuracy, so a search for accuracy starts unweighted."""
    inputs, prep = _random_table(80)
    prep.class_names = ["common", "rare"]
    for split in ("train", "val", "test"):  # 4 : 1
        y = getattr(inputs, f"y_{split}")
        y[:] = (np.arange(len(y)) % 5 == 0).astype(y.dtype)
    result = run_search(inputs, prep, tmp_path / "search",
                        _options(max_trials=2, families=["linear", "kernel"], objective=objective))
    assert [t.hyperparameters.get("balance_classes") for t in result.trials] == [balanced, balanced]


def test_a_table_search_tries_the_portfolio_first(tmp_path):
    from models import PORTFOLIO
    from models.hypermodel import SEED_HYPERPARAMETERS

    inputs, prep = _random_table(60)
    portfolio = PORTFOLIO["table"]
    seed = 3  # not the seed hyperparameters' default (0)
    result = run_search(inputs, prep, tmp_path / "search",
                        _options(max_trials=len(portfolio), max_epochs=3, seed=seed))
    assert len(result.trials) == len(portfolio)
    for trial, entry in zip(result.trials, portfolio):
        assert {k: trial.hyperparameters.get(k) for k in entry} == entry, (trial.trial_id, entry)
    assert [t.family for t in result.trials] == ["linear", "kernel", "trees", "trees", "dense"]
    drawn = {t.trial_id: t.hyperparameters[SEED_HYPERPARAMETERS[t.family]]
             for t in result.trials if t.family in SEED_HYPERPARAMETERS}
    assert len(drawn) == 3 and set(drawn.values()) == {seed}, f"the portfolio draws with the run's seed: {drawn}"
    assert result.trials[0].epochs_run is None and result.trials[4].epochs_run >= 1, "closed form: no epochs"


@pytest.mark.parametrize("test_rows, cut", [(10, False), (10**6, True)])
def test_a_trial_whose_features_say_the_finish_will_overrun_ends_the_search_earlier(sequences_npz, tmp_path,
                                                                                    test_rows, cut):
    """A MiniRocket trial times its features; were the finish's passes over `test_rows` rows to take longer than
    the reserve and the fine-tune's share, the search ends as much earlier: here past its end, so the first trial
    is the last. A light finish moves nothing."""
    from pipelines.budget import FinishCost
    from pipelines.load import load_path, split_dataset
    from pipelines.preprocess import fit_preprocessing, model_inputs

    splits = split_dataset(load_path(sequences_npz, None), None, test_fraction=0.2, val_fraction=0.3, seed=0)
    prep = fit_preprocessing(splits)
    options = _options(max_trials=3, families=["rocket", "linear", "kernel"], selection="kfold")
    finish = FinishCost(rows=test_rows, variants=4)
    result = run_search(model_inputs(splits, prep), prep, tmp_path / "search", options, finish=finish)
    assert result.trials[0].family == "rocket"
    if cut:
        assert result.finish_cut > options.budget_minutes * 60 and result.budget_spent
        assert [t.family for t in result.trials] == ["rocket"], "no trial starts past the moved deadline"
    else:
        assert result.finish_cut == 0 and [t.family for t in result.trials] == ["rocket", "linear", "kernel"]
