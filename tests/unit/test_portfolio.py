"""The portfolio (`models.portfolio`): the order in which a search of each input kind starts."""

from models import first_trials
from models.hypermodel import families_for
from models.portfolio import GRADIENT_START, PORTFOLIO


def test_a_sequence_search_starts_solved_then_with_the_convolutional_baselines_then_the_rest_cheapest_first():
    """MiniRocket, logistic regression and kernel ridge (solved), then FCN and ResNet-1D; the families without an
    entry (the MLP, the LSTM) after them at their defaults, cheapest first, at `GRADIENT_START`'s learning rate."""
    families, _ = families_for("sequence", input_shape=[150, 1])
    entries = first_trials("sequence", families, seed=0)
    listed = len(PORTFOLIO["sequence"])
    assert [e["family"] for e in entries] == ["rocket", "linear", "kernel", "cnn", "cnn", "dense", "lstm"]
    assert listed == 5 and [e["cnn_block"] for e in entries[3:listed]] == ["fcn", "resnet"]
    assert all(e["learning_rate"] == GRADIENT_START["learning_rate"] for e in entries[listed:])


def test_a_series_too_short_for_minirocket_starts_with_the_solved_linear_model():
    families, skipped = families_for("sequence", input_shape=[5, 1])
    assert "rocket" in skipped
    assert [e["family"] for e in first_trials("sequence", families, seed=0)][:2] == ["linear", "kernel"]
