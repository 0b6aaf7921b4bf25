"""Compression beyond quantization: magnitude pruning reaches its sparsity, a distilled student is smaller than its
teacher, and both are exported and checked like any variant."""

import gzip
import json

import keras
import numpy as np
import pytest

from models.hypermodel import student_ladder
from models.pruning import MagnitudePruning, magnitude_mask, prunable_weights, scheduled_sparsity, sparsity
from pipelines.config import ExportOptions
from pipelines.errors import ExportError
from pipelines.export.compress import (BATCH_SIZE, MIN_EPOCH_BATCHES, MIN_STEPS, student_budget_kb,
                                      training_passes)
from pipelines.export.records import ExportData
from pipelines.export.run import export_model
from pipelines.export.tflite import check_builtin_ops
from pipelines.finetune import fine_tune
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import Replay, fit_preprocessing, model_inputs
from tests.conftest import make_table

WIDE_MLP = {"family": "dense", "dense_layers": 2, "dense_units": 256, "dense_batchnorm": False}


def test_schedule_rises_to_the_target_and_masks_drop_the_smallest_weights():
    values = [scheduled_sparsity(0.8, step, 100) for step in range(0, 130, 10)]
    assert values[0] == 0 and values[-1] == 0.8 and values == sorted(values)
    weight = np.array([[0.5, -0.1], [0.05, -2.0]], dtype=np.float32)
    assert magnitude_mask(weight, 0.5).tolist() == [[1, 0], [0, 1]]


def test_pruning_callback_reaches_the_target_and_zeros_stay_zero():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 12)).astype("float32"), rng.integers(0, 3, 256)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    assert sparsity(model) == 0
    pruning = MagnitudePruning(0.6, total_steps=5 * 8)
    model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[pruning])
    for weight in prunable_weights(model):  # every kernel at the target, biases untouched
        assert np.mean(np.asarray(weight) == 0) == pytest.approx(0.6, abs=0.01)
    assert all(np.all(np.asarray(layer.bias) != 0) for layer in model.layers)
    assert sparsity(model) == pytest.approx(0.6, abs=0.01)


def test_student_ladder_goes_from_large_to_small_for_every_kind():
    for kind in ("table", "image", "sequence"):
        ladder = student_ladder(kind)
        assert len(ladder) >= 4 and len({json.dumps(r, sort_keys=True) for r in ladder}) == len(ladder)


@pytest.fixture(scope="module")
def wide_table_model(tmp_path_factory):
    """A 2x256 MLP fine-tuned on the small table, with its training sample (replay.npz) beside it."""
    folder = tmp_path_factory.mktemp("wide")
    make_table().to_csv(folder / "table.csv", index=False)
    splits = split_dataset(load_path(folder / "table.csv", "label"), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    fine_tune(inputs, prep, WIDE_MLP, folder / "finetuned.keras", max_epochs=15, batch_size=8, seed=0)
    x, y = np.concatenate([inputs.x_train, inputs.x_val]), np.concatenate([inputs.y_train, inputs.y_val])
    Replay.from_arrays(x, y, prep.class_names, seed=0).save(folder / "replay.npz")
    return folder, prep, ExportData.from_inputs(inputs), (x, y)


def test_pruned_and_distilled_models_are_exported_and_checked_like_any_variant(wide_table_model, tmp_path):
    folder, prep, data, _ = wide_table_model
    options = ExportOptions(quantize=["int8"], prune=0.5, distill=True, compress_epochs=4, latency_runs=5)
    result = export_model(folder / "finetuned.keras", prep, data, tmp_path / "export", options,
                          training=folder / "replay.npz")
    assert [v.variant for v in result.variants] == ["int8", "pruned_int8", "distilled_int8"]
    int8, pruned, distilled = result.variant("int8"), result.variant("pruned_int8"), result.variant("distilled_int8")
    for v in (pruned, distilled):
        tflite = (tmp_path / "export" / v.file).read_bytes()
        assert check_builtin_ops(tflite, v.file) == v.operators
        assert v.gzip_bytes == len(gzip.compress(tflite, compresslevel=9))
        assert v.within_tolerance == (v.accuracy_drop <= result.tolerance + 1e-9)
    assert pruned.sparsity == pytest.approx(0.5, abs=0.01) and "zeroed" in pruned.source
    pruned_keras = keras.models.load_model(tmp_path / "export" / "model_pruned.keras")
    assert sparsity(pruned_keras) == pytest.approx(0.5, abs=0.01)
    assert pruned.gzip_bytes < int8.gzip_bytes, "half the weights are zeros: the download shrinks"
    assert distilled.bytes <= int8.bytes / 2, "without a budget the student is at most half the teacher's int8 size"
    assert "student" in distilled.source and "fits" in distilled.source and distilled.label_agreement > 0.5
    assert len([v for v in result.variants if v.recommended]) <= 1
    spec = json.loads((tmp_path / "export" / "model_spec.json").read_text())
    assert spec["variants"]["distilled_int8"]["source"] == distilled.source
    assert not list((tmp_path / "export").glob(".compress*")) and not list(tmp_path.glob(".export*"))
    assert (tmp_path / "export" / "variants.png").stat().st_size > 10_000


def test_an_epoch_holds_at_least_its_batches_and_the_steps_stay_those_asked_for():
    x, y = np.arange(48 * 3, dtype="float32").reshape(48, 3), np.arange(48) % 3
    tiled_x, tiled_y, epochs = training_passes(x, y, epochs=4)
    batches = -(-len(tiled_x) // BATCH_SIZE)
    assert batches >= MIN_EPOCH_BATCHES and len(tiled_x) % len(x) == 0, "whole passes over the rows"
    assert np.array_equal(np.bincount(tiled_y), np.bincount(y) * (len(tiled_x) // len(x)))
    assert MIN_STEPS <= epochs * batches < MIN_STEPS + batches, "4 passes of 2 batches are fewer than MIN_STEPS"
    rows = 4096  # a large sample: neither repeated nor given more steps than its epochs
    x, y = np.zeros((rows, 3), "float32"), np.zeros(rows, int)
    same_x, _, epochs = training_passes(x, y, epochs=4)
    assert same_x is x and epochs == 4


def test_without_a_budget_the_student_gets_half_the_teacher_int8_size():
    assert student_budget_kb(ExportOptions(distill=True), 50.0) == 25.0
    assert student_budget_kb(ExportOptions(distill=True, max_model_kb=8), 50.0) == 8.0


def test_compression_without_a_training_sample_is_refused_and_writes_nothing(wide_table_model, tmp_path):
    folder, prep, data, _ = wide_table_model
    with pytest.raises(ExportError, match="replay.npz"):
        export_model(folder / "finetuned.keras", prep, data, tmp_path / "export",
                     ExportOptions(quantize=["float32"], prune=0.5), training=tmp_path / "absent" / "replay.npz")
    assert not (tmp_path / "export").exists() and not list(tmp_path.glob(".export*"))
