"""The run's budget bounds the fine-tune: it stops at its deadline with the best weights so far."""

import time

import keras
import pytest
import numpy as np

from models import ENSEMBLE
from pipelines.finetune import fine_tune
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs


def test_fine_tuning_stops_at_its_deadline_and_saves_a_usable_model(table_csv, tmp_path):
    splits = split_dataset(load_path(table_csv, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    values = {"family": "dense", "dense_layers": 1}
    fine_tune(inputs, prep, values, tmp_path / "warmup.keras", max_epochs=1, batch_size=8, seed=0)  # compile once
    started = time.monotonic()
    result = fine_tune(inputs, prep, values, tmp_path / "m.keras", max_epochs=100_000, batch_size=8, seed=0,
                       deadline=time.time() + 3)
    assert result.stopped_at_deadline and 1 <= result.epochs < 100_000
    assert time.monotonic() - started < 30, "stopped near the deadline, not after 100,000 epochs"
    model = keras.models.load_model(result.model_path)
    assert np.isfinite(model.predict(inputs.x_test, verbose=0)).all()
    unbounded = fine_tune(inputs, prep, values, tmp_path / "n.keras", max_epochs=2, batch_size=8, seed=0)
    assert not unbounded.stopped_at_deadline and unbounded.epochs == 2
    pair = {"family": ENSEMBLE, "members": [{"family": "linear"}, {**values, "learning_rate": 1e-3}]}
    ensemble = fine_tune(inputs, prep, pair, tmp_path / "e.keras", max_epochs=3, batch_size=8, seed=0)
    assert ensemble.fewest_epochs == 3 and ensemble.least_epochs == 3, "the one member trained by epochs ran 3"


def test_a_boosted_refit_stopped_at_its_deadline_is_cut_short(table_csv, tmp_path):
    """Boosting stops adding rounds at the fine-tune's deadline (a 1,504-column table's refit took 70 s of a 6-second
    share): the refit is unfinished, so the search's model ships."""
    splits = split_dataset(load_path(table_csv, "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    values = {"family": "trees", "trees_kind": "boosted", "trees_count": 200, "boosted_leaves": 8, "trees_seed": 0}
    late = fine_tune(inputs, prep, values, tmp_path / "late.keras", max_epochs=1, batch_size=8, seed=0,
                     deadline=time.time())
    assert late.stopped_at_deadline and late.unfinished_solves == 1 and late.cut_short(1)
    whole = fine_tune(inputs, prep, values, tmp_path / "whole.keras", max_epochs=1, batch_size=8, seed=0,
                      deadline=time.time() + 600)
    assert not whole.stopped_at_deadline and whole.unfinished_solves == 0 and not whole.cut_short(1)
    assert keras.models.load_model(late.model_path).get_layer("trees").count_params() > 0


def test_a_fine_tune_cut_short_ships_the_search_model(tmp_path):
    from pathlib import Path

    from pipelines.finetune import FineTuneResult, keep_search_model
    from pipelines.search.records import EnsembleChoice, SearchResult, TrialRecord

    def trial(trial_id, family, epochs, epochs_run):
        return TrialRecord(trial_id=trial_id, status="COMPLETED", family=family, val_score=0.9, seconds=1.0,
                           epochs=epochs, hyperparameters={"family": family}, epochs_run=epochs_run)

    trials = [trial("0", "cnn", 12, 17), trial("1", "linear", 1, None), trial("2", "dense", 4, 9)]
    search = SearchResult(objective="val_accuracy", best_trial_id="0", best_val_score=0.9,
                          best_hyperparameters={"family": "ensemble", "members": [{"family": "cnn"},
                                                                                  {"family": "linear"}]},
                          best_epochs=12, best_model_path=Path("unused"), trials=trials, families=["cnn", "linear"],
                          skipped_families={}, seconds=1.0, budget_spent=True,
                          ensemble=EnsembleChoice(["0", "1"], 0.95, 0.9))
    assert search.epochs_to_best() == 12, "the holdout trial's best epoch"
    from dataclasses import replace

    assert replace(search, cross_validated=True).epochs_to_best() == 17 - 5, "folds' epochs less the patience"

    from pipelines.train import finetune_epochs

    assert search.peaked_early() and finetune_epochs(40, search) == 12, "cnn peaked at 12 of 17: refit 12 epochs"
    assert finetune_epochs(8, search) == 8
    still_rising = replace(search, trials=[trial("0", "cnn", 17, 17), *trials[1:]])
    assert not still_rising.peaked_early() and finetune_epochs(40, still_rising) == 40, "no sign of overfitting"
    assert finetune_epochs(40, replace(search, cross_validated=True)) == 40, "k-fold: no holdout peak to go by"

    search_model, shipped = tmp_path / "search_best.keras", tmp_path / "finetuned.keras"
    search_model.write_bytes(b"search model")
    shipped.write_bytes(b"two epochs")
    cut = FineTuneResult(shipped, {"loss": [1.0, 0.9]}, 2, 5.0, stopped_at_deadline=True)
    assert cut.cut_short(search.epochs_to_best())
    assert not FineTuneResult(shipped, {}, 2, 5.0).cut_short(12), "a fine-tune that ended by itself stays"
    assert not FineTuneResult(shipped, {}, 30, 5.0, stopped_at_deadline=True).cut_short(12), "past the search's epochs"
    assert FineTuneResult(shipped, {}, 30, 5.0, stopped_at_deadline=True, fewest_epochs=1).cut_short(12), \
        "an ensemble member the deadline left at one epoch: the ensemble is cut short"
    assert not FineTuneResult(shipped, {}, 30, 5.0, stopped_at_deadline=True, fewest_epochs=15).cut_short(12)
    kept = keep_search_model(cut, search_model)
    assert kept.search_model_kept and shipped.read_bytes() == b"search model"


def test_a_refit_that_would_overrun_or_stop_its_boosted_member_unfinished_is_not_started(tmp_path):
    """ISLR's Default (8,000 rows, 1 minute): the fine-tune refitted a kernel, a linear and two tree members
    past the deadline for 24 s, and its boosted member stopped unfinished, so the search's model shipped anyway.
    carData's MplsStops (41,536 rows): a kernel, a forest, a dense and a linear member refitted for 107 s of 12."""
    from pathlib import Path

    from pipelines.finetune import REFIT_STOP_MARGIN, refit_overrun, search_model_instead
    from pipelines.search.records import EnsembleChoice, SearchResult, TrialRecord

    kernel, linear = {"family": "kernel"}, {"family": "linear"}
    boosted = {"family": "trees", "trees_kind": "boosted", "trees_count": 200}
    forest = {"family": "trees", "trees_kind": "forest", "trees_count": 100}

    def trial(trial_id, values, seconds, rows, copied_from=None):
        return TrialRecord(trial_id=trial_id, status="COMPLETED", family=values["family"], val_score=0.9,
                           seconds=seconds, epochs=1, hyperparameters=values, rows=rows, copied_from=copied_from)

    trials = [trial("0", kernel, 15.0, 6800), trial("1", linear, 1.4, 6800), trial("2", boosted, 5.6, 6800),
              trial("3", boosted, 0.01, 6800, copied_from="2")]
    search = SearchResult(objective="val_accuracy", best_trial_id="0", best_val_score=0.9,
                          best_hyperparameters={"family": "ensemble", "members": [kernel, linear, boosted]},
                          best_epochs=1, best_model_path=Path("unused"), trials=trials,
                          families=["kernel", "linear", "trees"], skipped_families={}, seconds=48.0,
                          budget_spent=True, ensemble=EnsembleChoice(["0", "1", "3"], 0.95, 0.9))
    expected = search.refit_seconds(8000)
    assert expected == pytest.approx([15.0 * 8000 / 6800, 1.4 * 8000 / 6800, 5.6 * 8000 / 6800]), \
        "one holdout fit scaled to the rows; a copy timed as the trial it copied"
    from dataclasses import replace

    folds = replace(search, cross_validated=True, trials=[replace(t, rows=6400) for t in trials])
    assert folds.refit_seconds(8000)[0] == pytest.approx(15.0 / 5 * 8000 / 6400), "k-fold: one of its five fits"
    assert replace(search, bags={"0": "trial_0"}).refit_seconds(8000)[0] == 0.0, "a bag ships as the search trained it"

    members = [kernel, linear, boosted]
    assert "boosting would have stopped" in refit_overrun([boosted, linear], [4.0, 1.0], 3.0), \
        "5 s of 3 is no clear overrun, but the boosted member's 4 s would stop at its 1.5-second share"
    assert "boosting" not in refit_overrun(members, expected, 4.3), "a clear overrun is told as one"
    assert refit_overrun([linear, boosted], [1.0, 4.0], 4.0) is None, \
        "5 s expected of 4: within the estimate's margin, the refit runs (AER/HMDA under k-fold)"
    assert refit_overrun([linear, boosted], [1.0, 4.0], 4.0 / (REFIT_STOP_MARGIN + 0.5))
    assert refit_overrun(members, expected, 60.0) is None, "time enough for every member"
    assert refit_overrun([kernel, linear, forest], expected, 15.0) is None, \
        "no member stops unfinished, and the solves' 26 s are within twice the 15 s left: they run late, and ship"
    overrun = refit_overrun([kernel, linear, forest], expected, 4.3)
    assert overrun.startswith("refitting it on train+val was expected to take 26 s, past the run's deadline (4 s"), \
        "solves that cannot stop, six times the time left: the refit would end a minute past the deadline"
    assert refit_overrun([boosted, kernel, linear], [2.0, 7.6, 1.6], 9.0) is None, \
        "the boosted member first, within its share: the others' overrun does not stop it"

    search_model = tmp_path / "search_best.keras"
    search_model.write_bytes(b"search model")
    skipped = search_model_instead(search_model, tmp_path / "finetuned.keras")
    assert skipped.not_started and skipped.search_model_kept and skipped.epochs == 0
    assert (tmp_path / "finetuned.keras").read_bytes() == b"search model"
