"""Evaluation with sklearn.metrics, and exports that match the Keras model under LiteRT."""

import json

import numpy as np
import pytest

from pipelines.evaluate import evaluate_predictions, plot_confusion_matrix, plot_learning_curves
from pipelines.export import export_model
from pipelines.finetune import build_from_hyperparameters
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs


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


def _inputs(path, target):
    splits = split_dataset(load_path(path, target), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    return prep, model_inputs(splits, prep)


@pytest.mark.parametrize("fixture, target, family", [
    ("table_csv", "label", "dense"),
    ("image_folder", None, "cnn"),
    ("image_folder", None, "lstm"),
    ("sequences_npz", None, "lstm"),
    ("sequences_npz", None, "cnn"),
])
def test_every_family_exports_to_builtin_tflite_with_parity(request, tmp_path, fixture, target, family):
    prep, inputs = _inputs(request.getfixturevalue(fixture), target)
    model = build_from_hyperparameters(prep, {"family": family})
    model.fit(inputs.x_train, inputs.y_train, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    result = export_model(tmp_path / "m.keras", prep, inputs.x_test, inputs.y_test, tmp_path / "export")
    assert sorted(result.files) == ["labels.json", "model.keras", "model.tflite", "preprocessing.json", "saved_model"]
    assert result.tflite_parity.label_agreement == 1.0
    assert result.tflite_parity.max_probability_difference < 1e-4
    assert json.loads((tmp_path / "export" / "labels.json").read_text()) == prep.class_names


def test_a_failed_export_leaves_the_previous_export_whole(table_csv, tmp_path):
    prep, inputs = _inputs(table_csv, "label")
    build_from_hyperparameters(prep, {"family": "dense"}).save(tmp_path / "m.keras")
    export_model(tmp_path / "m.keras", prep, inputs.x_test, inputs.y_test, tmp_path / "export")
    before = sorted(p.name for p in (tmp_path / "export").iterdir())
    with pytest.raises(Exception):
        export_model(tmp_path / "m.keras", prep, inputs.x_test[:, :2], inputs.y_test, tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
