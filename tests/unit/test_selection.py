"""Trial selection on small data (k-fold, tie-break), ensemble selection, and class imbalance."""

import numpy as np
import pytest

from models import closed_form
from pipelines.imbalance import class_weights, imbalance_note
from pipelines.preprocess import ModelInputs
from pipelines.search.ensemble import average_portfolio, choose_ensemble, contenders
from pipelines.search.selection import FOLDS, SMALL_VALIDATION_ROWS, CrossValidation, scores
from pipelines.search.winner import Lead, choose_trial, min_paired_z


def _inputs(n_train, n_val, classes=3):
    y_train, y_val = np.arange(n_train) % classes, np.arange(n_val) % classes
    return ModelInputs(np.arange(n_train, dtype="float32")[:, None], y_train,
                       np.arange(n_train, n_train + n_val, dtype="float32")[:, None], y_val,
                       np.zeros((1, 1), "float32"), np.zeros(1, int))


def test_small_validation_splits_switch_to_stratified_k_fold_over_train_and_val():
    cv = CrossValidation.plan(_inputs(60, 15), seed=0)
    assert len(cv.folds) == FOLDS and len(cv.y) == 75
    held_out = np.concatenate([val for _, val in cv.folds])
    assert sorted(held_out) == list(range(75)), "every row is held out exactly once"
    for train, val in cv.folds:
        assert not set(train) & set(val)
        assert set(cv.y[val]) == {0, 1, 2}, "stratified: each fold holds every class"
    assert CrossValidation.plan(_inputs(600, SMALL_VALIDATION_ROWS), seed=0) is None
    assert len(CrossValidation.plan(_inputs(600, SMALL_VALIDATION_ROWS), seed=0, selection="kfold").y) == \
        600 + SMALL_VALIDATION_ROWS
    assert CrossValidation.plan(_inputs(60, 15), seed=0, selection="holdout") is None
    few = _inputs(6, 3)
    few.y_val[:] = 0
    few.y_train[:] = [0, 0, 0, 1, 1, 2]  # class 2 has one row: it cannot be trained on and held out
    assert CrossValidation.plan(few, seed=0, selection="kfold") is None


def test_the_selection_help_states_the_small_split_threshold():
    from pipelines.config import SearchOptions

    assert f"fewer than {SMALL_VALIDATION_ROWS} rows" in SearchOptions.model_fields["selection"].description


def test_ties_are_broken_by_loss_but_never_outweigh_one_error():
    y = np.array([0, 1, 0, 1] * 25)
    confident = np.eye(2)[y] * 0.98 + 0.01
    hesitant = np.eye(2)[y] * 0.2 + 0.4
    assert scores(y, confident, "val_accuracy")["accuracy"] == scores(y, hesitant, "val_accuracy")["accuracy"] == 1.0
    assert scores(y, confident, "val_accuracy")["selection"] > scores(y, hesitant, "val_accuracy")["selection"]
    wrong_once = hesitant.copy()
    wrong_once[0] = [0.01, 0.99]
    terrible_loss = np.eye(2)[y] * 0.9999 + 0.00005
    terrible_loss[:50] = np.eye(2)[1 - y[:50]] * 0.9999 + 0.00005  # half wrong, very confidently
    assert scores(y, wrong_once, "val_accuracy")["selection"] > scores(y, terrible_loss, "val_accuracy")["selection"]
    assert scores(y, confident, "val_macro_f1")["macro_f1"] == 1.0


def test_an_ensemble_is_chosen_only_when_it_beats_the_best_single_model():
    y = np.array([0, 1, 2] * 10)
    right = np.eye(3)[y] * 0.6 + 0.2 / 1.5

    def wrong_on(rows):
        p = right.copy()
        p[rows] = np.roll(p[rows], 1, axis=1) * 0.5 + right[rows] * 0.5 - 0.05 * np.eye(3)[y[rows]]
        return p / p.sum(axis=1, keepdims=True)

    complementary = {"a": wrong_on([0, 1, 2]), "b": wrong_on([3, 4, 5]), "c": wrong_on([6, 7, 8])}
    for p in complementary.values():
        assert scores(y, p, "val_accuracy")["accuracy"] == 0.9
    choice = choose_ensemble(complementary, y, "val_accuracy", max_members=5)
    assert choice is not None and choice.members[0] == "a" and len(choice.members) >= 2
    assert choice.score > choice.single_score
    assert choose_ensemble({"a": right, "b": right.copy()}, y, "val_accuracy", max_members=5) is None
    assert choose_ensemble(complementary, y, "val_accuracy", max_members=1) is None
    assert choose_ensemble(complementary, y, "val_accuracy", 5, fits=lambda members: len(members) < 2) is None
    one_row = {"a": wrong_on([0]), "b": wrong_on([1])}
    assert scores(y, np.mean(list(one_row.values()), axis=0), "val_accuracy")["accuracy"] == 1.0, "one row gained"
    assert choose_ensemble(one_row, y, "val_accuracy", max_members=5) is None, "one row better is noise"


def test_balanced_class_weights_when_one_class_dwarfs_another():
    balanced = np.array([0, 1] * 50)
    skewed = np.array([0] * 500 + [1] * 5)
    assert class_weights(balanced, "auto") is None and class_weights(skewed, "none") is None
    weights = class_weights(skewed, "auto")
    assert weights[1] / weights[0] == pytest.approx(100.0)
    assert class_weights(balanced, "balanced") == {0: 1.0, 1: 1.0}
    note = imbalance_note(skewed, ["common", "rare"], "auto")
    assert "100.0 : 1" in note and "common 500, rare 5" in note and "balanced class weights used" in note
    assert imbalance_note(balanced, ["a", "b"], "auto") == ""
    assert "--class-weight balanced" in imbalance_note(skewed, ["common", "rare"], "none")
    assert "the search chose a model without them" in imbalance_note(skewed, ["common", "rare"], "auto", False)
    assert "the search chose them" in imbalance_note(skewed, ["common", "rare"], "auto", True)
    assert imbalance_note(skewed, ["common", "rare"], "auto", False, "val_accuracy").endswith(
        "without them; the search maximised accuracy: to weigh the small classes' recall as much, --objective "
        "val_macro_f1")
    assert "--objective" not in imbalance_note(skewed, ["common", "rare"], "auto", True, "val_macro_f1")


def test_a_trial_sees_rows_in_proportion_to_its_epochs_from_the_threshold_on():
    from models.sampling import stratified_rows
    from pipelines.search.subsample import trial_rows

    assert trial_rows(19_999, 3, 20, 20_000) == 19_999, "below the threshold: every row"
    assert trial_rows(200_000, 3, 20, 20_000) == 15_000, "a share of a pool of 5x the threshold"
    assert trial_rows(1_000_000, 3, 20, 20_000) == 15_000 and trial_rows(1_000_000, 20, 20, 20_000) == 100_000, \
        "past the pool, more rows do not make trials dearer"
    assert trial_rows(60_000, 20, 20, 20_000) == 60_000
    assert trial_rows(30_000, 1, 20, 20_000) == 5_000, "at least a quarter of the threshold"
    assert trial_rows(1_000_000, 1, 20, 0) == 1_000_000, "0: off"
    y = np.repeat([0, 1, 2], [600, 300, 100])
    picked = stratified_rows(y, 100, seed=0)
    assert len(picked) == 100 and np.array_equal(np.bincount(y[picked]), [60, 30, 10])
    assert not np.array_equal(picked, stratified_rows(y, 100, seed=1)), "seeded by the trial"


def test_a_large_validation_split_scores_trials_on_the_same_stratified_share():
    from pipelines.search.subsample import validation_rows

    y = np.repeat([0, 1, 2], [6000, 3000, 1000])
    scored = validation_rows(y, 2000, seed=42)
    assert len(scored) == 2000 and np.array_equal(np.bincount(y[scored]), [1200, 600, 200])
    assert np.array_equal(scored, validation_rows(y, 2000, seed=42)), "the same rows for every trial"
    assert len(validation_rows(y, 20_000, seed=42)) == len(y) and len(validation_rows(y, 0, seed=42)) == len(y)


def _probabilities(y, wrong, classes=2):
    """One-hot probabilities right on every row of `y` except the rows in `wrong`."""
    labels = y.copy()
    labels[list(wrong)] = (labels[list(wrong)] + 1) % classes
    return np.eye(classes)[labels]


def test_a_small_tables_portfolio_is_averaged_unless_the_searchs_choice_leads_it_clearly():
    y = np.arange(100) % 2
    # five portfolio trials, each wrong on its own ten rows: any one scores 0.9, their average every row
    portfolio = {name: _probabilities(y, range(10 * i, 10 * i + 10)) for i, name in enumerate("abcde")}
    chosen = portfolio["a"]
    choice = average_portfolio(portfolio, chosen, y, "val_accuracy", challengers=3, max_members=5)
    assert choice is not None and choice.members == list("abcde") and "portfolio" in choice.why
    assert choice.score > choice.single_score, "the average is right where each member alone is not"
    assert average_portfolio(portfolio, chosen, y, "val_accuracy", 3, max_members=3).members == list("abc")
    assert average_portfolio(portfolio, chosen, y, "val_accuracy", 3, max_members=1) is None
    assert average_portfolio({"a": chosen}, chosen, y, "val_accuracy", 3, max_members=5) is None, "one trial"
    assert average_portfolio(portfolio, chosen, y, "val_accuracy", 3, 5, fits=lambda members: False) is None
    # two portfolio trials wrong on the same 20 rows: a sampled choice right on them leads the average clearly ...
    alike = {"a": _probabilities(y, range(20)), "b": _probabilities(y, range(20))}
    assert average_portfolio(alike, _probabilities(y, []), y, "val_accuracy", 3, 5) is None
    # ... two rows ahead and none behind is 1.4 standard errors: clear for one sampled trial, not for the best of ten
    close = _probabilities(y, [0, 1, *range(4, 20)])
    assert average_portfolio(alike, close, y, "val_accuracy", challengers=1, max_members=5) is None
    assert average_portfolio(alike, close, y, "val_accuracy", challengers=10, max_members=5) is not None
    level = _probabilities(y, [*range(2, 20), 50, 51])  # two rows won, two lost
    assert average_portfolio(alike, level, y, "val_accuracy", challengers=1, max_members=5) is not None


def test_a_portfolio_trial_its_best_leads_clearly_is_left_out_of_the_pruned_average():
    y = np.arange(100) % 2
    # on pixels: kernel ridge wrong on 2 rows, a CNN and an MLP on 3 others each, logistic regression on 30 more
    portfolio = {"kernel": _probabilities(y, [90, 91]), "cnn": _probabilities(y, [0, 1, 2]),
                 "mlp": _probabilities(y, [3, 4, 5]), "linear": _probabilities(y, range(40, 70))}
    assert contenders(portfolio, y, "val_accuracy") == ["kernel", "cnn", "mlp"]
    kept = {m: portfolio[m] for m in contenders(portfolio, y, "val_accuracy")}
    choice = average_portfolio(kept, portfolio["kernel"], y, "val_accuracy", challengers=0, max_members=5)
    assert choice is not None and choice.members == ["kernel", "cnn", "mlp"]
    assert choice.score > choice.single_score, "each is wrong on its own rows: their average is right on all of them"
    near = {**portfolio, "linear": _probabilities(y, [6, 7, 8])}
    assert contenders(near, y, "val_accuracy") == list(near), "a row behind the best is within noise"
    # three rows behind and none ahead is a clear lead (1.7 standard errors; the bar for two others is 1.4)
    behind = {"kernel": _probabilities(y, []), "cnn": _probabilities(y, [0, 1, 2]), "mlp": _probabilities(y, [3])}
    assert contenders(behind, y, "val_accuracy") == ["kernel", "mlp"]
    assert contenders({"kernel": portfolio["kernel"]}, y, "val_accuracy") == ["kernel"]
    assert contenders({}, y, "val_accuracy") == []


class _Trial:
    def __init__(self, trial_id, family="dense"):
        self.trial_id, self.family = trial_id, family


def _solved(trial):
    return closed_form({"family": trial.family})


def test_a_sampled_trial_replaces_the_portfolios_best_only_with_a_clear_paired_lead():
    y = np.arange(100) % 2
    portfolio, lucky, clear = _Trial("0"), _Trial("7"), _Trial("9")
    heldout = {"0": _probabilities(y, [0, 1, 2, 3]),
               "7": _probabilities(y, [4, 5]),  # 2 rows ahead, but it disagrees with the portfolio's on 6 rows
               "9": _probabilities(y, [])}  # 4 rows ahead, every one of them a row the portfolio's got wrong
    chosen, note = choose_trial([lucky, portfolio], {"0"}, heldout.get, y, "val_accuracy")
    assert chosen is portfolio and "trial 7" in note and "2.0 of 100" in note
    chosen, note = choose_trial([clear, lucky, portfolio], {"0"}, heldout.get, y, "val_accuracy")
    assert (chosen, note) == (clear, "")
    assert choose_trial([portfolio, lucky], {"0"}, heldout.get, y, "val_accuracy") == (portfolio, "")
    assert choose_trial([lucky, portfolio], set(), heldout.get, y, "val_accuracy") == (lucky, ""), \
        "no portfolio trial: the best-scored one"
    assert Lead.of(y, heldout["9"], heldout["0"], "val_accuracy").mean == pytest.approx(0.04)


def test_a_portfolio_trial_trained_by_epochs_replaces_the_best_solved_one_only_with_a_clear_lead():
    y = np.arange(100) % 2
    cnn, rocket, linear = _Trial("3", "cnn"), _Trial("0", "rocket"), _Trial("1", "linear")
    heldout = {"3": _probabilities(y, [0, 1]), "0": _probabilities(y, [2, 3]), "1": _probabilities(y, [4, 5, 6])}
    ranked = [cnn, rocket, linear]  # the CNN tied with MiniRocket on rows, ranked first on its (optimistic) loss
    assert choose_trial(ranked, {"0", "1", "3"}, heldout.get, y, "val_accuracy") == (cnn, ""), \
        "without telling solved trials apart, the portfolio's best-scored one"
    chosen, note = choose_trial(ranked, {"0", "1", "3"}, heldout.get, y, "val_accuracy", solved=_solved)
    assert chosen is rocket and "best solved trial 0" in note and note.endswith("the bar for the best of 1 challenger")
    clear = {**heldout, "3": _probabilities(y, []), "0": _probabilities(y, range(6))}  # 6 rows ahead, none behind
    assert choose_trial(ranked, {"0", "1", "3"}, clear.get, y, "val_accuracy", solved=_solved) == (cnn, "")
    only_trained = {"3", "4"}  # no solved trial in the portfolio: its best, as before
    lstm = _Trial("4", "lstm")
    assert choose_trial([lstm, cnn], only_trained, heldout.get, y, "val_accuracy", solved=_solved) == (lstm, "")


def test_under_macro_f1_a_lead_on_the_rare_class_weighs_more():
    y = np.array([0] * 90 + [1] * 10)
    rare_right, common_right = _probabilities(y, [0, 1, 2]), _probabilities(y, [90, 91, 92])
    assert Lead.of(y, rare_right, common_right, "val_macro_f1").clear()
    assert not Lead.of(y, rare_right, common_right, "val_accuracy").clear(), "the same count of rows both ways"


def test_the_more_trials_were_sampled_the_clearer_a_lead_must_be():
    y = np.arange(100) % 2
    portfolio, lucky = _Trial("0"), _Trial("7")
    heldout = {"0": _probabilities(y, range(6)), "7": _probabilities(y, [6, 7])}  # 4 rows ahead: 6 won, 2 lost
    lead = Lead.of(y, heldout["7"], heldout["0"], "val_accuracy")
    assert lead.clear(1) and not lead.clear(10), (lead, min_paired_z(1), min_paired_z(10))
    assert choose_trial([lucky, portfolio], {"0"}, heldout.get, y, "val_accuracy") == (lucky, "")
    also_sampled = [_Trial(str(i)) for i in range(8, 17)]  # nine more sampled trials, each scored below both
    chosen, note = choose_trial([lucky, portfolio, *also_sampled], {"0"}, heldout.get, y, "val_accuracy")
    assert chosen is portfolio and "best of 10 sampled trials" in note, note
