"""Evaluation with sklearn.metrics, and the plots of a run."""

import json

import numpy as np
import pytest

from pipelines.evaluate import (
    MAX_PLOTTED_CLASSES,
    evaluate_predictions,
    most_confused,
    plot_confusion_matrix,
    plot_learning_curves,
)
from pipelines.search import TrialRecord
from pipelines.search.frontier import pareto_frontier, plot_search_frontier


def test_metrics_macro_and_per_class(tmp_path):
    y = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    e = evaluate_predictions(y, probabilities, ["a", "b", "c"])
    assert e.accuracy == pytest.approx(5 / 6)
    assert e.per_class["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert e.macro_recall == pytest.approx((1 + 0.5 + 1) / 3)
    assert e.confusion_matrix == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert plot_confusion_matrix(e, tmp_path / "cm.png").stat().st_size > 5000
    assert plot_learning_curves({"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]}, tmp_path / "lc.png").stat().st_size > 5000
    saved = json.loads(e.save(tmp_path / "m.json", extra=1).read_text())
    assert saved["macro_f1"] == pytest.approx(e.macro_f1) and saved["extra"] == 1


def test_a_class_the_test_split_lacks_and_the_model_never_predicts_is_left_out_of_the_macro_scores():
    y = np.array([2, 2, 2, 2])  # a test file of one class, as a user's may be
    e = evaluate_predictions(y, np.eye(3)[[2, 2, 2, 2]], ["a", "b", "c"])
    assert e.accuracy == 1.0 and e.macro_f1 == 1.0 and e.macro_recall == 1.0, "not 0.3333: a, b have no row to score"
    assert e.unscored_classes == ["a", "b"] and e.per_class["a"]["support"] == 0
    wrong = evaluate_predictions(y, np.eye(3)[[2, 2, 2, 0]], ["a", "b", "c"])
    assert wrong.unscored_classes == ["b"], "a class predicted without a test row is scored (its F1 is 0)"
    assert wrong.macro_f1 == pytest.approx((0 + 2 * 0.75 / 1.75) / 2)


def test_many_classes_plot_the_most_confused_ones_only(tmp_path):
    y = np.repeat(np.arange(300), 2)
    predicted = y.copy()
    predicted[::2][:40] = (y[::2][:40] + 1) % 300  # classes 0..40 are confused, the rest are right
    e = evaluate_predictions(y, np.eye(300)[predicted], [f"class {i}" for i in range(300)])
    shown = most_confused(np.asarray(e.confusion_matrix))
    assert len(shown) == MAX_PLOTTED_CLASSES and set(shown) <= set(range(41))
    assert list(most_confused(np.eye(5, dtype=int))) == list(range(5)), "few classes: all of them"
    png = plot_confusion_matrix(e, tmp_path / "cm.png")
    assert png.stat().st_size < 500_000, "a readable picture, not a 300 x 300 grid"


def test_pareto_frontier_keeps_only_undominated_trials():
    points = [(10, 0.9), (5, 0.8), (20, 0.85), (5, 0.7), (40, 0.95), (30, 0.95)]
    assert pareto_frontier(points) == [(5, 0.8), (10, 0.9), (30, 0.95)]


def test_frontier_plot_draws_sizes_budget_and_rejected_trials(tmp_path):
    def trial(i, kb, score, status="COMPLETED"):
        return TrialRecord(str(i), status, "cnn" if i % 2 else "dense", score, 1.0, 1, {}, params=1000 * i,
                           int8_kb=kb, latency_ms=0.1)

    trials = [trial(1, 12.0, 0.9), trial(2, 30.0, 0.95), trial(3, 80.0, None, "OVER_BUDGET")]
    path = plot_search_frontier(trials, tmp_path / "frontier.png", "val_accuracy", max_model_kb=50, best_trial_id="2")
    assert path.stat().st_size > 10000
