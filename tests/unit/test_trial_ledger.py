"""How long the ledger expects a trial to take, from the trials before it (the deadline rule in
`pipelines.search.tuner.Budgeted.time_left_for`)."""

from types import SimpleNamespace

import numpy as np
import pytest

from pipelines.config import SearchOptions
from models.trees import ROUNDS_FITTED
from pipelines.search.ledger import NEW_STRUCTURE_FACTOR, ROUNDS_ASKED, TrialLedger, layer_structure

FCN = {"family": "cnn", "cnn_block": "fcn", "cnn_filters": 32, "learning_rate": 1e-3}
RESNET = {"family": "cnn", "cnn_block": "resnet", "cnn_filters": 32, "learning_rate": 1e-3}
ROCKET = {"family": "rocket", "rocket_seed": 0}


def _ledger(tmp_path, timed: dict[str, tuple[dict, float, int]]):
    """A ledger holding the seconds and rows of `timed` (trial id -> values, seconds, rows), and those trials."""
    ledger = TrialLedger(tmp_path, SearchOptions(), [20, 1], np.zeros((1, 20, 1), np.float32))
    trials = []
    for trial_id, (values, seconds, rows) in timed.items():
        ledger.timings.record(trial_id, seconds)
        ledger.footprints.note(trial_id, rows=rows)
        trials.append(SimpleNamespace(trial_id=trial_id, hyperparameters=SimpleNamespace(values=values)))
    return ledger, trials


def test_a_layer_structure_its_family_has_not_run_is_expected_to_cost_more_than_the_familys_slowest(tmp_path):
    ledger, trials = _ledger(tmp_path, {"0": (ROCKET, 2.0, 30), "1": (FCN, 16.0, 30)})
    assert ledger.expected_seconds({**FCN, "cnn_filters": 64, "learning_rate": 1e-2}, 30, trials) == 16.0, \
        "another width or learning rate of a structure that ran: that structure's time"
    assert ledger.expected_seconds(RESNET, 30, trials) == pytest.approx(NEW_STRUCTURE_FACTOR * 16.0), \
        "a ResNet after an FCN: more than the FCN took"
    assert ledger.expected_seconds(RESNET, 60, trials) == pytest.approx(NEW_STRUCTURE_FACTOR * 32.0), "scaled to rows"
    assert ledger.expected_seconds({"family": "lstm", "lstm_layers": 1}, 30, trials) == 16.0, \
        "a family that has not run: the slowest trial of any"
    assert ledger.expected_seconds(FCN, 30, []) is None


def test_the_layer_structure_leaves_out_widths_and_the_optimiser():
    assert layer_structure(FCN) == layer_structure({**FCN, "cnn_filters": 8, "dropout": 0.3})
    assert layer_structure(FCN) != layer_structure(RESNET)
    assert layer_structure({"family": "dense", "dense_layers": 1}) != layer_structure({"family": "dense",
                                                                                      "dense_layers": 3})
    words = {"family": "linear", "tfidf_bigrams": False, "linear_c": 1.0}
    assert layer_structure(words) == layer_structure({**words, "linear_c": 10.0})
    assert layer_structure(words) != layer_structure({**words, "tfidf_bigrams": True}), \
        "word pairs: 2**18 more terms, ten times the solve"


def test_a_tree_ensemble_is_expected_to_cost_as_many_times_more_as_it_fits_trees(tmp_path):
    forest = {"family": "trees", "trees_kind": "forest", "trees_count": 100}
    boosted = {"family": "trees", "trees_kind": "boosted", "trees_count": 200}
    ledger, trials = _ledger(tmp_path, {"0": (forest, 3.0, 100)})
    ledger.n_classes = 9  # 200 rounds of 9 trees: 18 times the forest's 100
    assert ledger.expected_seconds(boosted, 100, trials) == pytest.approx(54.0)
    assert ledger.expected_seconds(boosted, 200, trials) == pytest.approx(108.0), "and scaled to rows"
    ledger.n_classes = 2  # one tree a round
    assert ledger.expected_seconds(boosted, 100, trials) == pytest.approx(6.0)
    assert ledger.expected_seconds({**forest, "trees_count": 50}, 100, trials) == 3.0, "never scaled down"


def test_a_boosted_trial_the_deadline_stopped_is_timed_for_the_rounds_it_fitted(tmp_path):
    boosted = {"family": "trees", "trees_kind": "boosted", "trees_count": 200}
    ledger, trials = _ledger(tmp_path, {"0": (boosted, 10.0, 100)})
    assert ledger.expected_seconds(boosted, 100, trials) == pytest.approx(10.0), "all its rounds fitted"
    # five folds asked for 200 rounds each; the deadline let them fit 250 of the 1,000
    ledger.footprints.note("0", **{ROUNDS_FITTED: 250, ROUNDS_ASKED: 1000})
    assert ledger.expected_seconds(boosted, 100, trials) == pytest.approx(40.0), \
        "10 s for a quarter of its rounds: the whole count takes four times that"
    assert ledger.expected_seconds({**boosted, "trees_count": 50}, 100, trials) == pytest.approx(10.0)
