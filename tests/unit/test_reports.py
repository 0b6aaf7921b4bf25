"""Both report renderers and the variant table, from results built by hand (no training)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_checks import LABEL_COLUMN, ValidationReport
from data_checks.drift import compare_profiles
from pipelines.budget import RunBudget
from pipelines.config import RetrainConfig, TrainConfig
from pipelines.evaluate import evaluate_labels
from pipelines.export.model_card import variant_table
from pipelines.export.records import ExportResult, KerasReference, VariantReport
from pipelines.export.tflite import TensorSpec
from pipelines.finetune import FineTuneResult
from pipelines.preprocess import Preprocessing
from pipelines.promotion import decide
from pipelines.report import render_report, render_retrain_report
from pipelines.results import Candidate, Challenger, RetrainResult, RunResult
from pipelines.search.records import SearchResult, TrialRecord, TrialStatus
from pipelines.validate import Validation

CLASSES = ["a", "b"]


def _evaluation(correct_a: int, correct_b: int):
    y_true = np.repeat([0, 1], 10)
    y_pred = np.concatenate([[0] * correct_a + [1] * (10 - correct_a), [1] * correct_b + [0] * (10 - correct_b)])
    return evaluate_labels(y_true, y_pred, CLASSES)


def _variant(name: str, accuracy: float, recommended=False, within=True, int8_io=False) -> VariantReport:
    tensor = TensorSpec("features", [-1, 2], "int8" if int8_io else "float32", 0.05 if int8_io else 0.0, 3)
    return VariantReport(name, f"model_{name}.tflite", 2048, "0" * 64, ["FULLY_CONNECTED"], tensor, tensor,
                         accuracy, accuracy, 0.9 - accuracy, 0.95, 0.0123, 0.05, 0.07, within, recommended)


def _export() -> ExportResult:
    return ExportResult(Path("run/export"), {"model.keras": "run/export/model.keras"},
                        KerasReference(0.9, 0.89, 1.5, 2.0, 40960),
                        [_variant("float32", 0.9), _variant("dynamic", 0.88, recommended=True),
                         _variant("int8", 0.5, within=False, int8_io=True)], 0.01, True)


def _candidate() -> Candidate:
    prep = Preprocessing("table", [2], CLASSES, [0.0, 0.0], [1.0, 1.0], ["x1", "x2"])
    return Candidate(Path("run"), Path("run/finetuned.keras"), prep, {"family": "dense", "learning_rate": 0.001},
                     FineTuneResult(Path("run/finetuned.keras"), {"loss": [1.0, 0.5]}, 2, 3.0), _evaluation(9, 9),
                     _export(), {"sha256": "f" * 64, "rows": 40}, _evaluation(8, 9))


def _validation() -> Validation:
    return Validation(None, [ValidationReport("tab on train", 12), ValidationReport("tab on test", 12, ["x1: bad"])])


def test_variant_table_gives_each_variant_its_verdict_first():
    rows = variant_table(_export())
    assert len(rows) == 2 + 1 + 3
    assert rows[0].startswith("| verdict | model | file | KiB |")
    assert rows[2].startswith("| reference | Keras | model.keras | 40.0 | – | 0.9000 |")
    float32, dynamic, int8 = rows[3:]
    assert float32.startswith("| ok | float32 | model_float32.tflite |") and "| +0.00 |" in float32
    assert dynamic.startswith("| **recommended** | dynamic |") and "| -2.00 |" in dynamic
    assert int8.startswith("| ⚠ too lossy (> 1.0 pt) | int8 (int8 I/O) | model_int8.tflite |")


def test_train_report_tells_the_whole_run():
    trials = [TrialRecord("0", TrialStatus.COMPLETED, "dense", 0.95, 1.2, 3, {"family": "dense"}),
              TrialRecord("1", TrialStatus.OVER_BUDGET, "dense", None, 0.1, None, {"family": "dense"}, int8_kb=99)]
    search = SearchResult("val_accuracy", "0", 0.95, {"family": "dense", "dense_layers": 1}, 3,
                          Path("run/search_best.keras"), trials, ["dense"], {"cnn": "tables have no axis"}, 12.0,
                          True, mobile_budget="int8 model <= 10 KiB", fidelity="converged")
    result = RunResult(TrainConfig(dataset="wine", tuner="random"), {"train": 30, "val": 5, "test": 5},
                       ["images resized"], _validation(), search, _candidate(), {"load": 1.0, "search": 12.0},
                       devices="CPU (2 threads)", budget=RunBudget(5.0, 35, 0.1, 271.0, 29.5, True, 30.0))
    text = render_report(result)
    for expected in ("# kerasflow run: wine", "- Source: wine", "- images resized",
                     "- Run budget 5 min: search 4.0 min, fine-tune 0.5 min (10% for 35 rows), evaluation and export "
                     "30 s; used: search 4.5 min, "
                     "fine-tune 0.5 min (stopped at the deadline, best weights kept)",
                     "- Tuner random, objective val_accuracy, 2 trials in 12 s — stopped by the budget",
                     "- Skipped cnn: tables have no axis", "Trials by status: COMPLETED 1, OVER_BUDGET 1",
                     "- Trial training (converged): small training set (30 rows, under 2,000): every "
                     "gradient-trained trial trained until its validation loss stopped improving for 5 epochs (up to "
                     "max epochs; its learning rate halved after each 2 epochs without improving)",
                     "- Best trial 0: dense, val_accuracy 0.9500",
                     "Mobile budget: int8 model <= 10 KiB; architectures over it were not trained (1 trials)",
                     "| search best | 0.8500 |", "| fine-tuned (2 epochs) | 0.9000 |",
                     "**tab on test**: 11/12 expectations passed", "Recommended: **dynamic** (`model_dynamic.tflite`)",
                     "| load | 1.0 |", "![confusion matrix](confusion_matrix.png)"):
        assert expected in text, expected
    assert text.index("## Search") < text.index("## Test scores") < text.index("## Export") < text.index("## Step")
    assert "![learning curves](learning_curves.png)" in text
    candidate = _candidate()
    candidate.training = FineTuneResult(Path("run/finetuned.keras"), {"loss": [], "accuracy": []}, 0, 0.0,
                                        search_model_kept=True, not_started=True)
    skipped = render_report(replace(result, candidate=candidate))
    assert "| search best, shipped (the fine-tune was not started) | 0.9000 |" in skipped, skipped
    assert "learning_curves.png" not in skipped and "| search best | 0.8500 |" not in skipped
    subsampled = replace(search, trials=[replace(t, rows=15) for t in trials])  # trials saw 15 of the 30 rows
    lines = {name: render_report(replace(result, search=subsampled, candidate=c)) for name, c in
             (("fine-tuned", _candidate()), ("not started", candidate))}
    assert "hyperband's trials saw 15 rows each, a stratified share" in lines["fine-tuned"]
    assert "(`--subsample-from`); the chosen model was fine-tuned on every row" in lines["fine-tuned"]
    assert "(`--subsample-from`); the chosen model ships as its trial trained it" in lines["not started"], \
        "the report said the model was fine-tuned on every row where the fine-tune was not started"
    assert "The test split has no rows" not in text
    one_class = replace(_candidate(), evaluation=evaluate_labels(np.zeros(6, int), np.zeros(6, int), CLASSES))
    assert ("The test split has no rows of 1 of the 2 classes, and the model predicted none of them (b): the macro "
            "scores average the others.") in render_report(replace(result, candidate=one_class))


def _drift():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 200), LABEL_COLUMN: rng.choice(CLASSES, 200)})
    return compare_profiles(frame, frame.copy())


@pytest.mark.parametrize("challenger_correct, promoted", [((10, 10), True), ((10, 6), False)])
def test_retrain_report_shows_decision_recalls_and_challenger(challenger_correct, promoted):
    champion, challenger = _evaluation(9, 9), _evaluation(*challenger_correct)
    decision = decide(champion, challenger, metric="macro_f1", min_improvement=-1.0, max_recall_drop=0.05)
    assert decision.promote == promoted
    result = RetrainResult(RetrainConfig(name="tab", dataset="wine"), "tab@v0001", "finetune", "no drift: warm start",
                           Path("runs/tab/retrain"), _validation(), _drift(),
                           Challenger("finetune", _candidate(), replay_rows=7), champion, challenger, decision,
                           {"train": 30, "val": 5, "test": 20}, step_seconds={"fine_tune": 2.0})
    text = render_retrain_report(result)
    verdict = "Challenger **promoted**" if promoted else "Challenger **rejected** (champion kept)"
    for expected in (verdict, "Registration follows this report.", "challenger mode **finetune** (no drift: warm start)",
                     "| champion tab@v0001 | 0.9000 |", "- Family dense, 2 epochs, 7 replayed earlier samples",
                     "fingerprint `ffffffffffffffff`", "Recommended: **dynamic**", "| fine_tune | 2.0 |", "no drift"):
        assert expected in text, expected
    assert ("**over limit**" in text) == (not promoted)


def test_the_anytime_curve_steps_up_at_each_new_best_in_time_order(tmp_path):
    from pipelines.search.anytime import best_so_far, plot_anytime
    from pipelines.search.records import TrialRecord

    def trial(trial_id, family, score, seconds, ended_at):
        return TrialRecord(trial_id, "COMPLETED", family, score, seconds, 3, {"family": family}, ended_at=ended_at)

    trials = [trial("2", "trees", 0.93, 4.0, 1006.0), trial("0", "linear", 0.90, 2.0, 1002.0),
              trial("1", "dense", 0.85, 30.0, 1036.0), trial("3", "dense", 0.97, 30.0, 1070.0),
              trial("4", "cnn", None, 5.0, 1075.0), trial("5", "lstm", 0.99, 9.0, None)]
    assert best_so_far(trials) == [(2.0, 0.90, "0"), (6.0, 0.93, "2"), (70.0, 0.97, "3")]
    path = plot_anytime(trials, tmp_path / "anytime.png", "val_accuracy", search_seconds=90)
    assert path.stat().st_size > 5_000
    assert best_so_far([trial("0", "linear", None, 2.0, 1002.0)]) == []
