"""TFLite variants: builtin ops, parity under LiteRT, metadata an app can trust, re-export, atomicity."""

import json

import numpy as np
import pytest

from models.lstm import FUSED_OP
from pipelines.config import ExportOptions
from pipelines.errors import ExportError
from pipelines.export.calibration import MIN_CALIBRATION_SAMPLES, Calibration
from pipelines.export.metadata import LABEL_FILE, packed_file, read_metadata
from pipelines.export.model_card import CardFacts
from pipelines.export.records import ExportData
from pipelines.export.reexport import reexport_run
from pipelines.export.run import REEXPORT_FILES, export_model, reexport
from pipelines.export.tflite import VARIANTS, LiteModel, check_builtin_ops, convert, operators, write_saved_model
from pipelines.finetune import build_from_hyperparameters, fine_tune
from pipelines.load import LENGTH_RULE, SEQUENCE_FORMAT, load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs

FAST = dict(latency_runs=10)


def _trained(path, target, family, tmp_path, epochs=3):
    """`family` is a family name or a dict of hyperparameter values (an ensemble's too), trained by the fine-tune step."""
    splits = split_dataset(load_path(path, target), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    values = family if isinstance(family, dict) else {"family": family}
    fine_tune(inputs, prep, values, tmp_path / "finetuned.keras", max_epochs=epochs, batch_size=8, seed=0)
    return prep, ExportData.from_inputs(inputs)


AUGMENTED = {"augment": True, "augment_flip": True, "augment_rotation": 0.08, "augment_zoom": 0.1,
             "augment_translation": 0.1, "augment_contrast": 0.1}
RESIDUAL_MLP = {"family": "dense", "dense_layers": 2, "dense_units": 32, "dense_batchnorm": True,
                "dense_residual": True}


@pytest.mark.parametrize("fixture, target, family", [
    ("table_csv", "label", "dense"),
    ("table_csv", "label", "linear"),
    ("image_folder", None, "kernel"),
    ("table_csv", "label", {"family": "ensemble", "members": [{"family": "dense"}, RESIDUAL_MLP]}),
    ("image_folder", None, "cnn"),
    ("image_folder", None, {"family": "cnn", "cnn_block": "residual", **AUGMENTED}),
    ("image_folder", None, {"family": "cnn", "cnn_block": "separable"}),
    ("image_folder", None, "lstm"),
    ("sequences_npz", None, "lstm"),
    ("sequences_npz", None, "cnn"),
    ("sequences_npz", None, {"family": "cnn", "cnn_block": "inception", "inception_modules": 3}),
    ("sequences_npz", None, {"family": "ensemble", "members": [{"family": "rocket"},
                                                                {"family": "cnn", "cnn_block": "fcn"}]}),
    ("table_csv", "label", {"family": "ensemble", "members": [
        {"family": "trees", "trees_kind": "boosted"}, {"family": "trees", "trees_count": 20, "forest_leaves": 16}]}),
], ids=["dense", "table-linear", "image-kernel", "dense-ensemble", "cnn", "cnn-residual-augmented", "cnn-separable", "image-lstm", "lstm",
        "cnn-resnet", "cnn-inception", "rocket-fcn-ensemble", "boosted-forest-ensemble"])
def test_every_family_exports_every_variant_with_builtin_ops_and_parity(request, tmp_path, fixture, target, family):
    prep, data = _trained(request.getfixturevalue(fixture), target, family, tmp_path)
    result = export_model(tmp_path / "finetuned.keras", prep, data, tmp_path / "export", ExportOptions(**FAST))
    assert [v.variant for v in result.variants] == list(VARIANTS)
    for v in result.variants:
        tflite = (tmp_path / "export" / v.file).read_bytes()
        assert check_builtin_ops(tflite, v.file) == v.operators and v.bytes == len(tflite)
        assert not [op for op in v.operators if "RANDOM" in op.upper()], "augmentation stays out of the export"
        assert 0 < v.latency_median_ms <= v.latency_p95_ms
    float32, float16 = result.variant("float32"), result.variant("float16")
    assert float32.label_agreement == 1.0 and float32.max_probability_difference < 1e-4
    for v in (float32, result.variant("int8")):  # checked on every core; one thread, as a phone runs it, agrees
        one_thread = LiteModel((tmp_path / "export" / v.file).read_bytes(), num_threads=1).predict(data.x_test)
        assert np.mean(one_thread.argmax(axis=1) == data.y_test) == v.accuracy, v.variant
    assert float16.label_agreement >= 0.9 and float16.max_probability_difference < 0.05
    assert result.variant("int8").max_probability_difference < 0.5
    assert result.variant("int8").calibration_samples == len(data.x_representative), "small: calibrated on all"
    assert float32.calibration_samples is None and "calibrated on" in (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert result.keras.latency_median_ms > 0
    signatures = LiteModel((tmp_path / "export" / "model_int8.tflite").read_bytes()).interpreter.get_signature_list()
    assert signatures == {"serve": {"inputs": ["features"], "outputs": ["output_0"]}}, "names an app relies on survive"
    recommended = [v for v in result.variants if v.recommended]
    assert len(recommended) == 1 and recommended[0].within_tolerance
    assert all(v.within_tolerance == (v.accuracy_drop <= result.tolerance + 1e-9) for v in result.variants)
    if "lstm" in request.node.callspec.id:  # fused, not unrolled: one LSTM op per layer, no per-step ops
        for v in result.variants:
            assert FUSED_OP in v.operators and "SPLIT" not in v.operators, v.variant
        assert result.variant("int8").bytes < float32.bytes  # unrolled, int8 was 1.3x float32
        assert all(v.stateful for v in result.variants), "LiteRT keeps the LSTM state: the spec must say so"
        spec = json.loads((tmp_path / "export" / "model_spec.json").read_text())
        assert spec["input"]["shape"][0] == 1 and "resetVariableTensors" in spec["before_each_call"]
    for v in result.variants:  # every file says what it is and carries its labels (pipelines.export.metadata)
        metadata = read_metadata((tmp_path / "export" / v.file).read_bytes())
        assert metadata["packed_files"] == [LABEL_FILE] and v.variant in metadata["version"]
        assert packed_file((tmp_path / "export" / v.file).read_bytes(), LABEL_FILE).decode().split("\n") == \
            prep.class_names
        assert v.input.shape[-1] == 3 if prep.kind == "image" else v.input.shape[1:] == prep.input_shape
    spec = json.loads((tmp_path / "export" / "model_spec.json").read_text())
    if prep.kind == "sequence":
        assert spec["input"]["sequence"] == {"length": prep.input_shape[0], "features": prep.input_shape[1],
                                             "rule": LENGTH_RULE, "file_format": SEQUENCE_FORMAT}
    else:
        assert "sequence" not in spec["input"]


def test_metadata_matches_the_interpreter_tensors_with_int8_io(image_folder, tmp_path):
    prep, data = _trained(image_folder, None, "cnn", tmp_path)
    export_model(tmp_path / "finetuned.keras", prep, data, tmp_path / "export", ExportOptions(int8_io=True, **FAST))
    spec = json.loads((tmp_path / "export" / "model_spec.json").read_text())
    assert spec["labels"] == prep.class_names == json.loads((tmp_path / "export" / "labels.json").read_text())
    assert spec["input"]["shape"] == [-1, *prep.input_shape[:-1], 3], "the files take RGB (pipelines.export.rgb)"
    assert spec["input"]["training_value_range"]["max"] == pytest.approx([float(data.feature_max[0])])
    for name, variant in spec["variants"].items():
        lite = LiteModel((tmp_path / "export" / variant["file"]).read_bytes())
        for side, tensor in (("input", lite.input), ("output", lite.output)):
            described = variant[side]
            assert described["shape"] == tensor.shape and described["dtype"] == tensor.dtype
            if name == "int8":
                assert described["dtype"] == "int8"
                assert described["quantization"] == {"scale": pytest.approx(tensor.scale),
                                                     "zero_point": tensor.zero_point,
                                                     "real_value": "(q - zero_point) * scale"}
            else:
                assert described["dtype"] == "float32" and "quantization" not in described
    int8 = spec["variants"]["int8"]
    assert int8["label_agreement"] >= 0.8, "int8 I/O must be quantized with the tensor's own scale and zero-point"
    card = (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert "## Intended use" in card and "## Limits" in card and "model_int8.tflite" in card


def test_op_list_check_names_the_op_outside_the_builtins():
    import tensorflow as tf

    inverse = tf.function(lambda x: tf.linalg.inv(x), input_signature=[tf.TensorSpec([2, 3, 3], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inverse.get_concrete_function()], inverse)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    tflite = converter.convert()
    assert operators(tflite) == ["custom:FlexMatrixInverse"]
    with pytest.raises(ExportError, match="model_x.tflite uses ops outside the TFLite builtins: custom:FlexMatrixInverse"):
        check_builtin_ops(tflite, "model_x.tflite")


def _run_folder(tmp_path, table_csv):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prep, data = _trained(table_csv, "label", "dense", run_dir, epochs=10)
    prep.save(run_dir / "preprocessing.json")
    data.save(run_dir / "export_inputs.npz")
    CardFacts("tiny", "table.csv", "dense", {"train": 36, "val": 12, "test": 12}, {"accuracy": 0.5},
              {"low": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 4}}, "2026-11-22").save(run_dir / "card.json")
    return run_dir


def _export_state(export_dir):
    return {p.name: p.read_bytes() for p in export_dir.iterdir() if p.suffix == ".tflite"}, \
        json.loads((export_dir / "model_spec.json").read_text())


def test_reexport_is_idempotent_and_updates_the_report(table_csv, tmp_path):
    run_dir = _run_folder(tmp_path, table_csv)
    (run_dir / "report.md").write_text("# run\n\n## Export\nold table\n\n## Step seconds\n| a | 1 |\n")
    first = reexport_run(run_dir, ExportOptions(quantize=["int8", "float32"], **FAST))
    files_first, spec_first = _export_state(run_dir / "export")
    second = reexport_run(run_dir, ExportOptions(quantize=["float32", "int8"], **FAST))
    files_second, spec_second = _export_state(run_dir / "export")
    assert sorted(files_first) == ["model_float32.tflite", "model_int8.tflite"]
    assert files_first == files_second
    for name in ("float32", "int8"):
        a, b = spec_first["variants"][name], spec_second["variants"][name]
        assert (a["sha256"], a["accuracy"], a["label_agreement"]) == (b["sha256"], b["accuracy"], b["label_agreement"])
    assert [v.variant for v in first.variants] == [v.variant for v in second.variants] == ["float32", "int8"]
    report = (run_dir / "report.md").read_text()
    assert "old table" not in report and "model_int8.tflite" in report and report.endswith("| a | 1 |\n")
    assert "## Step seconds" in report and "\n\n## Step seconds" in report


def test_bad_reexport_requests_change_nothing(table_csv, tmp_path):
    run_dir = _run_folder(tmp_path, table_csv)
    reexport(run_dir, ExportOptions(quantize=["float32"], **FAST))
    before = _export_state(run_dir / "export")
    with pytest.raises(ExportError, match="unknown quantize mode 'int4'"):
        reexport(run_dir, ExportOptions(quantize=["int4"]))
    with pytest.raises(ExportError, match="does not exist"):
        reexport(tmp_path / "nowhere")
    (run_dir / "export_inputs.npz").write_bytes(b"not an npz")
    with pytest.raises(ExportError, match="export_inputs.npz cannot be read"):
        reexport(run_dir, ExportOptions(**FAST))
    (run_dir / "card.json").unlink()
    with pytest.raises(ExportError, match="incomplete, missing card.json"):
        reexport(run_dir)
    assert _export_state(run_dir / "export") == before
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []
    assert set(REEXPORT_FILES) - {"card.json"} <= {p.name for p in run_dir.iterdir()}


def test_a_failed_export_leaves_the_previous_export_whole(table_csv, tmp_path):
    prep, data = _trained(table_csv, "label", "dense", tmp_path, epochs=1)
    export_model(tmp_path / "finetuned.keras", prep, data, tmp_path / "export", ExportOptions(quantize=["float32"], **FAST))
    before = sorted(p.name for p in (tmp_path / "export").iterdir())
    broken = ExportData(data.x_test[:, :2], data.y_test, data.x_representative, data.feature_min, data.feature_max)
    with pytest.raises(ValueError, match="incompatible with the layer"):
        export_model(tmp_path / "finetuned.keras", prep, broken, tmp_path / "export", ExportOptions(**FAST))
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _wine_mlp():
    """wine (columns of very different scales) and a one-layer MLP fitted on it."""
    import keras

    from pipelines.load import load_bundled

    keras.utils.set_random_seed(0)
    data, _ = load_bundled("wine")
    splits = split_dataset(data, None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    model = build_from_hyperparameters(prep, {"family": "dense", "dense_layers": 1, "learning_rate": 0.01})
    model.fit(inputs.x_train, inputs.y_train, epochs=30, verbose=0)
    return model, prep, inputs


def test_int8_keeps_a_table_whose_columns_differ_in_scale(tmp_path):
    """wine: proline in the hundreds beside hue around 1; one input scale for all columns cost 39 points."""
    model, prep, inputs = _wine_mlp()
    model.save(tmp_path / "finetuned.keras")
    result = export_model(tmp_path / "finetuned.keras", prep, ExportData.from_inputs(inputs), tmp_path / "export",
                          ExportOptions(quantize=["float32", "int8"], **FAST))
    int8 = result.variant("int8")
    assert result.keras.accuracy >= 0.9
    assert int8.within_tolerance and int8.label_agreement >= 0.97, (int8.accuracy, result.keras.accuracy)
    assert "QUANTIZE" in int8.operators and "FULLY_CONNECTED" in int8.operators
    lite = LiteModel((tmp_path / "export" / "model_int8.tflite").read_bytes())
    assert lite.input.dtype == "float32" and not lite.input.quantized, "raw float features in, as the app sends them"


def test_a_calibration_past_its_time_bound_converts_from_its_floor_and_still_agrees(tmp_path):
    """The real converter takes the bounded feed: only the floor's samples calibrate the int8 file, which works."""
    model, prep, inputs = _wine_mlp()
    saved = write_saved_model(model, tmp_path / "saved_model", prep.input_shape)
    representative = ExportData.from_inputs(inputs).x_representative
    calibration = Calibration(representative, seconds=0.0)
    int8 = LiteModel(convert(saved, "int8", calibration)).predict(inputs.x_test)
    assert calibration.used == MIN_CALIBRATION_SAMPLES < len(representative)
    keras_labels = model.predict(inputs.x_test, verbose=0).argmax(axis=1)
    assert np.mean(int8.argmax(axis=1) == keras_labels) >= 0.9


def test_an_export_converts_the_plain_float_graph_once(tmp_path, monkeypatch):
    """The float32 variant and the int8 variant's reference (input dtype, op names) are one conversion."""
    import tensorflow as tf

    model, prep, inputs = _wine_mlp()
    model.save(tmp_path / "finetuned.keras")
    opened = []
    from_saved_model = tf.lite.TFLiteConverter.from_saved_model
    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model",
                        lambda *args, **kwargs: opened.append(args) or from_saved_model(*args, **kwargs))
    result = export_model(tmp_path / "finetuned.keras", prep, ExportData.from_inputs(inputs), tmp_path / "export",
                          ExportOptions(quantize=["float32", "float16", "int8"], **FAST))
    assert len(opened) == 3, "float32 (also the int8 reference), float16, int8"
    assert result.variant("float32").label_agreement == 1.0 and result.variant("int8").label_agreement >= 0.97
