"""Scoring new data: the same labels as the test-split evaluation, the checks of training, the documented handling."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import kerasflow
from flows.cli import app
from pipelines.errors import DataError, ExportError
from pipelines.export.records import ExportData
from pipelines.load import load_path, split_dataset
from pipelines.registry import Registry
from tests.conftest import fast_config, make_table


def _keras_labels(run_dir, model):
    """What the test-split evaluation labelled, in the test split's order."""
    x_test = ExportData.load(run_dir / "export_inputs.npz").x_test
    return np.asarray(model.class_names, dtype=object)[np.argmax(model.keras_model().predict(x_test, verbose=0), 1)]


def _test_split(path, target=None):
    config = fast_config(data=path, target=target)
    return split_dataset(load_path(path, target), None, test_fraction=config.test_fraction,
                         val_fraction=config.val_fraction, seed=config.seed).test


def _agreement(run_dir, variant):
    import json

    return json.loads((run_dir / "export" / "model_spec.json").read_text())["variants"][variant]["label_agreement"]


def _check_same_labels(run_dir, model, predictions_keras, predictions_int8):
    expected = _keras_labels(run_dir, model)
    assert list(predictions_keras.labels) == list(expected), "Keras: the test-split evaluation's labels"
    agreement = np.mean(predictions_int8.labels == expected)
    assert agreement == pytest.approx(_agreement(run_dir, "int8")), "int8: the agreement the export recorded"
    assert np.allclose(predictions_keras.probabilities.sum(axis=1), 1, atol=1e-4)


def test_a_table_scores_like_its_test_split_and_checks_its_columns(registry_root, tmp_path):
    version = Registry(registry_root).champion("tab")
    run_dir = type(registry_root)(version.record["run_dir"])
    model = kerasflow.load("tab", registry=registry_root)
    frame = make_table(90, seed=0)
    frame.to_csv(tmp_path / "old.csv", index=False)
    rows = _test_split(tmp_path / "old.csv", "label").features.assign(id=lambda f: [f"r{i}" for i in range(len(f))])
    rows.to_csv(tmp_path / "new.csv", index=False)  # no label column, an extra id column

    keras_run = model.predict(tmp_path / "new.csv", keep="id")
    int8_run = model.predict(rows, variant="int8")
    _check_same_labels(run_dir, model, keras_run, int8_run)
    out = keras_run.to_frame()
    assert list(out.columns) == ["id", "row", "label", *[f"p_{c}" for c in model.class_names]]
    assert list(out["id"]) == list(rows["id"]) and list(out["row"]) == [str(i) for i in range(len(rows))]
    assert not any("ignored" in n for n in keras_run.notes), "a kept column is used, not ignored"
    assert any("ignored: id" in n for n in int8_run.notes)

    with pytest.raises(DataError, match=r"missing column\(s\) \['x1'\] that tab@v0001 was trained on"):
        model.predict(rows.drop(columns=["x1"]))
    with pytest.raises(DataError, match="column 'x2' is numeric but"):
        model.predict(rows.assign(x2=["n/a"] * (len(rows) // 2) + list(rows["x2"][len(rows) // 2:])))
    stray = model.predict(rows.assign(x2=["unknown"] + list(rows["x2"][1:])))  # read as missing, as in training
    assert len(stray.labels) == len(rows) and list(stray.labels[1:]) == list(keras_run.labels[1:])
    assert f"column 'x2': text in 1 of {len(rows)} rows read as missing (e.g. 'unknown')" in stray.notes
    unseen = model.predict(rows.assign(colour="purple"))
    assert any("'colour': " in n and "'purple'" in n and "encoded as unknown" in n for n in unseen.notes)
    with pytest.raises(ExportError, match="no TFLite variant 'int4'"):
        model.predict(rows, variant="int4")
    drifted = model.predict(rows.assign(x1=rows["x1"] + 50))
    assert "x1" in [c.column for c in drifted.drift.drifted]
    assert any("expectation warning: column 'x1'" in n for n in drifted.notes)


def test_images_and_sequences_score_like_their_test_splits(image_folder, sequences_npz, tmp_path):
    from pipelines.train import train

    frozen = []  # the heap's objects from before the training stay out of its collections (`pipelines.search.heap`)
    for path, family in ((image_folder, "cnn"), (sequences_npz, "cnn")):
        result = train(fast_config(data=path, runs_root=tmp_path / "runs", families=[family], max_trials=1,
                                   quantize=["float32", "int8"]),
                       on_trial_end=lambda record, n: frozen.append(gc.get_freeze_count()))
        assert frozen and min(frozen) > 0 and gc.get_freeze_count() == 0, "frozen while it trains, then not"
        model = kerasflow.load(result.run_dir)
        test = _test_split(path)
        if test.kind == "image":
            folder = tmp_path / "new-images" / "nested"
            folder.mkdir(parents=True)
            for i, image in enumerate(test.features[..., 0].astype(np.uint8)):
                Image.fromarray(image, mode="L").save(folder / f"{i:03d}.png")
            Image.fromarray(test.features[0, ..., 0].astype(np.uint8), mode="L").resize((16, 16)).save(
                tmp_path / "big.png")
            data = tmp_path / "new-images"
        else:
            data = tmp_path / "new.npz"
            np.savez(data, x=test.features)
            archive_format = tmp_path / "new.ts"  # the UCR/UEA archives' text: channels split by colons, no labels
            archive_format.write_text("@problemName new\n@univariate false\n@classLabel false\n@data\n" + "".join(
                ":".join(",".join(repr(float(v)) for v in channel) for channel in case.T) + "\n"
                for case in test.features))
            as_text = model.predict(archive_format)
            assert len(as_text.labels) == len(test.features)
            assert as_text.labels.tolist() == model.predict(data).labels.tolist()
            assert np.allclose(as_text.probabilities, model.predict(data).probabilities, atol=1e-6)
        keras_run, int8_run = model.predict(data), model.predict(data, variant="int8")
        _check_same_labels(result.run_dir, model, keras_run, int8_run)
        if test.kind == "image":
            assert keras_run.ids[0] == "nested/000.png"
            big = tmp_path / "big-only"
            big.mkdir()
            (tmp_path / "big.png").rename(big / "big.png")
            assert "1 images resized to the model's 8x8" in model.predict(big).notes
        else:
            short = model.predict([s[:5] for s in test.features] + [np.ones((40, 2), np.float32)])
            assert any("zero-padded" in n for n in short.notes) and any("cut at the end" in n for n in short.notes)
            with pytest.raises(DataError, match="do not have 2 feature"):
                model.predict([np.ones((10, 3), np.float32)])


def test_the_python_api_trains_on_a_dataframe_and_the_cli_predicts(tmp_path):
    frame = make_table(60, seed=3)
    trained = kerasflow.train(frame, target="label", prefect=False, runs_root=tmp_path / "runs", name="frame",
                              budget_minutes=0.2, tuner="random", max_trials=1, max_epochs=2, finetune_epochs=2,
                              min_trial_steps=0, quantize=["float32"])
    assert 0 <= trained.metrics["accuracy"] <= 1 and trained.family == "linear", "the table portfolio starts linear"
    assert (trained.run_dir.parent / "inputs").is_dir(), "the DataFrame is kept beside its runs"
    predicted = trained.predict(frame.drop(columns=["label"]))
    assert len(predicted.labels) == 60 and set(predicted.labels) <= {"low", "mid", "high"}

    frame.drop(columns=["label"]).assign(key=range(60)).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "out" / "p.csv"
    result = CliRunner().invoke(app, ["predict", str(trained.run_dir), "--data", str(tmp_path / "new.csv"), "--out",
                                      str(out), "--keep", "key", "--variant", "float32"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert list(written.columns[:3]) == ["key", "row", "label"] and list(written["key"]) == list(range(60))
    assert list(written["label"]) == list(predicted.labels), "float32 TFLite labels like the Keras model"
    bad = CliRunner().invoke(app, ["predict", str(trained.run_dir), "--data", str(tmp_path / "gone.csv")])
    assert bad.exit_code == 2 and "gone.csv: no such file" in bad.output
    # A process that only scores (the CLI, a scheduled batch-scoring run) imports no layer module before it loads the
    # Keras model: `models.saving.load_model` registers them (before, "Could not locate class 'TabularEncoder'").
    fresh = subprocess.run([str(Path(sys.executable).with_name("kerasflow")), "predict", str(trained.run_dir),
                            "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "fresh.csv")],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "PREFECT_API_URL": ""})
    assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "fresh.csv")["label"]) == list(predicted.labels)
    with pytest.raises(DataError, match="needs target="):
        kerasflow.train(frame)


def test_a_table_with_ids_text_and_dates_ships_none_of_their_values_and_predicts_from_raw_rows(tmp_path):
    from tests.data.test_columns import messy_table

    frame = messy_table(90).assign(seen_at=lambda f: [f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:30:00Z"
                                                      for i in range(len(f))],
                                   check_in=lambda f: [f"{8 + i % 10}:{i % 60:02d}" for i in range(len(f))])
    trained = kerasflow.train(frame, target="label", prefect=False, runs_root=tmp_path / "runs", name="messy",
                              budget_minutes=0.2, tuner="random", max_trials=1, max_epochs=2, finetune_epochs=2,
                              min_trial_steps=0, quantize=["float32"], selection="holdout", ensemble_size=1)
    export = trained.run_dir / "export"
    shipped = " ".join(p.read_text() for p in export.iterdir() if p.suffix in (".json", ".md"))
    assert "id_00001" not in shipped, "no training ID in the app bundle"
    sentences = [s for s in frame["review"].dropna() if len(s.split()) > 1]
    assert not [s for s in sentences if s in shipped], "words of the free text ship (its vocabulary), sentences do not"
    spec = json.loads((export / "model_spec.json").read_text())
    assert spec["input"]["columns"]["roles"]["id"]["role"] == "identifier"
    assert spec["input"]["columns"]["roles"]["signed_up"]["fed_as"][0] == "signed_up.year"
    assert spec["input"]["columns"]["roles"]["seen_at"]["fed_as"][-1] == "seen_at.hour", "a timestamp's hour too"
    assert spec["input"]["columns"]["roles"]["check_in"]["fed_as"].startswith("H + MM/60"), "a clock, as hours"
    report = (trained.run_dir / "report.md").read_text()
    assert "| `review` | text |" in report and "| `signed_up` | date |" in report
    assert "lazy" in spec["input"]["text"]["vocabulary"], "the review is a feature now: its vocabulary ships"
    predicted = trained.predict(frame.drop(columns=["label"]).iloc[:10])
    assert len(predicted.labels) == 10 and set(predicted.labels) <= {"no", "yes"}
    assert any("ignored: id, row" in note for note in predicted.notes)
    with pytest.raises(DataError, match=r"missing column\(s\) \['signed_up'\]"):
        trained.predict(frame.drop(columns=["label", "signed_up"]))
