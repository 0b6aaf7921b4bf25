"""Pretrained start: head then base, a registered model or a local backbone as base, lineage, clear refusals."""

import json
import shutil

import keras
import keras_tuner as kt
import numpy as np
import pytest
from typer.testing import CliRunner

from models.hypermodel import KerasflowHyperModel, closed_form, families_for
from models.transfer import BASE, Source, TransferBase
from pipelines.config import ExportOptions, TrainConfig
from pipelines.errors import DataError
from pipelines.export.run import export_model
from pipelines.export.tflite import check_builtin_ops
from pipelines.preprocess import Preprocessing
from pipelines.registry import Registry, sha256
from pipelines.train import train
from pipelines.transfer import mismatch
from tests.conftest import fast_config, make_table
from tests.model.test_export import _trained


def _dense_parent(tmp_path) -> tuple[Preprocessing, TransferBase]:
    """A small trained-looking table model saved like a registered version's model.keras."""
    prep = Preprocessing("table", [3], ["a", "b"], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], numeric_columns=["x", "y", "z"])
    hp = kt.HyperParameters()
    hp.values.update({"family": "dense", "dense_layers": 2, "dense_units": 32, "dense_batchnorm": False})
    path = tmp_path / "parent.keras"
    KerasflowHyperModel(prep, ["dense"]).build(hp).save(path)
    return prep, TransferBase(Source.REGISTERED, "parent@v0001", str(path), sha256(path))


class BaseSnapshots(keras.callbacks.Callback):
    """The base's and the head's weights when gradient training begins and after every epoch."""

    def __init__(self):
        super().__init__()
        self.base, self.head = [], []

    def on_train_begin(self, logs=None):
        self.on_epoch_end(-1)

    def on_epoch_end(self, epoch, logs=None):
        self.base.append(self.model.get_layer(BASE).get_weights())
        self.head.append(self.model.get_layer("probabilities").get_weights())


def _same(a, b) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_the_head_is_solved_first_then_the_base_joins(tmp_path):
    prep, base = _dense_parent(tmp_path)
    child = Preprocessing("table", [3], ["p", "q", "r"], prep.mean, prep.variance, numeric_columns=["x", "y", "z"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype("float32"), np.arange(64) % 3
    parent = keras.models.load_model(base.path, compile=False).get_weights()
    hypermodel = KerasflowHyperModel(child, ["transfer"], base=base)

    hp = kt.HyperParameters()
    hp.values.update({"family": "transfer", "transfer_frozen": 1.0, "dropout": 0.0})
    probe = hypermodel.build(hp)
    untrained_head = probe.get_layer("probabilities").get_weights()
    assert _same(probe.get_layer(BASE).get_weights(), parent), "the base starts with the parent's weights"
    metrics = hypermodel.fit(hp, probe, x, y, epochs=3, batch_size=16, verbose=0)
    assert isinstance(metrics, dict) and closed_form(hp.values), "frozen base: the head alone, solved, no epochs"
    assert _same(probe.get_layer(BASE).get_weights(), parent)
    assert not _same(probe.get_layer("probabilities").get_weights(), untrained_head)

    hp.values.update({"transfer_frozen": 0.0, "learning_rate": 1e-2})
    model = hypermodel.build(hp)
    snapshots = BaseSnapshots()
    history = hypermodel.fit(hp, model, x, y, epochs=3, batch_size=16, callbacks=[snapshots], verbose=0)
    assert len(history.history["loss"]) == 3 and not closed_form(hp.values)
    assert _same(snapshots.base[0], parent), "phase 1 (the probe) leaves the base alone"
    assert not _same(snapshots.head[0], untrained_head), "phase 1 solves the head"
    assert not _same(snapshots.base[-1], parent), "phase 2: the base learns too"
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-3), "phase 2 runs at a tenth"


def test_a_base_adds_the_transfer_family_to_what_is_searched(tmp_path):
    _, base = _dense_parent(tmp_path)
    assert families_for("image", ["cnn"], base=base)[0] == ["cnn", "transfer"], "the search decides if it pays"
    assert "--pretrained" in families_for("image")[1]["transfer"]


def test_mismatch_names_what_differs():
    def prep(kind, shape, numeric=(), categorical=()):
        return Preprocessing(kind, list(shape), ["a"], [], [], numeric_columns=list(numeric),
                             categorical_columns=list(categorical))

    assert mismatch(prep("image", (8, 8, 1)), prep("image", (28, 28, 3))) == \
        "image size 8x8 vs 28x28 (give --image-size 8x8); 1 channel(s) vs 3"
    assert mismatch(prep("sequence", (150, 1)), prep("sequence", (150, 2))) == "1 features per step vs 2"
    assert mismatch(prep("table", (3,), ["x1", "x2"], ["colour"]), prep("table", (3,), ["x1", "x3"], ["colour"])) \
        == "table columns differ (missing columns x2; extra columns x3)"
    assert mismatch(prep("table", (2,), ["x1"], ["c"]), prep("table", (2,), ["c"], ["x1"])) \
        == "table columns differ (numeric in one and categorical in the other: c, x1)"
    assert mismatch(prep("image", (8, 8, 1)), prep("table", (1,), ["x"])) == "it takes image data, this is table data"
    assert mismatch(prep("table", (2,), ["b", "a"]), prep("table", (2,), ["a", "b"])) == "", "order is not a mismatch"


def test_a_registered_model_starts_a_new_one_and_the_registry_records_it(trained_champion, tmp_path):
    registry = shutil.copytree(trained_champion, tmp_path / "registry")
    parent = Registry(registry).resolve("tab")
    new = make_table(60, seed=3)
    new["label"] = new["label"].map({"low": "cold", "mid": "mild", "high": "hot"})  # new labels, new head
    new = new[["colour", "label", "x2", "x1"]]  # same columns, another order
    new.to_csv(tmp_path / "new.csv", index=False)

    result = train(fast_config(data=tmp_path / "new.csv", target="label", runs_root=tmp_path / "runs",
                               registry=registry, name="tab_child", pretrained="tab", families=["transfer"]))

    assert result.search.best_hyperparameters["family"] == "transfer"
    assert result.prep.numeric_columns == json.loads(parent.file("export/preprocessing.json").read_text())[
        "numeric_columns"], "the child reads columns in its parent's order"
    record = Registry(registry).resolve("tab_child").record
    assert record["pretrained"] == [{"source": "registered", "name": parent.ref,
                                     "path": str(parent.file("export/model.keras")),
                                     "sha256": parent.record["files"]["export/model.keras"]}]
    card = (result.run_dir / "export" / "MODEL_CARD.md").read_text()
    assert f"Pretrained from: registered model {parent.ref}" in card
    assert "Pretrained base offered (family transfer)" in result.report_path.read_text()

    from flows.cli import app

    shown = CliRunner().invoke(app, ["models", "show", "tab_child", "--registry", str(registry)])
    assert shown.exit_code == 0 and f"pretrained from registered {parent.ref}" in " ".join(shown.output.split())


def test_data_that_does_not_fit_the_base_is_refused_before_anything_is_written(trained_champion, tmp_path):
    registry = shutil.copytree(trained_champion, tmp_path / "registry")
    new = make_table(60, seed=3).rename(columns={"x2": "pressure"})
    new.to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DataError, match=r"--pretrained tab@v0001 does not fit this data: table columns differ "
                                        r"\(missing columns x2; extra columns pressure\)"):
        train(fast_config(data=tmp_path / "new.csv", target="label", runs_root=tmp_path / "runs",
                          registry=registry, name="tab_child", pretrained="tab"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.keras"))
    assert not list((tmp_path / "runs").glob("*/*")), "no run folder is left behind"
    assert Registry(registry).models() == ["tab"]


def test_a_backbone_is_refused_without_a_local_weights_file(tmp_path):
    with pytest.raises(ValueError, match="needs --backbone-weights PATH, a weights file on this machine"):
        TrainConfig(dataset="digits", backbone="mobilenet_v3_small")
    with pytest.raises(ValueError, match="no such file"):
        TrainConfig(dataset="digits", backbone="mobilenet_v3_small", backbone_weights=tmp_path / "absent.h5")


def test_a_local_backbone_exports_to_builtin_tflite_with_its_preprocessing_inside(image_folder, tmp_path):
    weights = tmp_path / "mobilenet_v3_small_no_top.weights.h5"
    keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), include_top=False, weights=None,
                                        pooling="avg").save_weights(weights)
    base = TransferBase(Source.BACKBONE, "mobilenet_v3_small", str(weights), sha256(weights))
    values = {"family": "transfer", "transfer_base": base.to_json(), "transfer_frozen": 1.0}
    prep, data = _trained(image_folder, None, values, tmp_path, epochs=1)
    assert prep.input_shape == [8, 8, 1], "8x8 grayscale digits in; resizing and RGB live inside the model"
    result = export_model(tmp_path / "finetuned.keras", prep, data, tmp_path / "export",
                          ExportOptions(quantize=["float32"], latency_runs=5))
    float32 = result.variant("float32")
    assert check_builtin_ops((tmp_path / "export" / float32.file).read_bytes(), float32.file) == float32.operators
    assert {"RESIZE_BILINEAR", "HARD_SWISH"} <= set(float32.operators)
    assert float32.label_agreement == 1.0 and float32.max_probability_difference < 1e-4


def test_a_base_is_tried_first_and_not_averaged_in_with_the_portfolio(tmp_path):
    """The transfer trial competes for the choice, but the portfolio's known-good trials are averaged without it
    (`pipelines.search.run`): the base is the user's, of unknown worth on this data."""
    from models import member_hyperparameters
    from pipelines.preprocess import ModelInputs
    from pipelines.search import SearchOptions, run_search

    parent, base = _dense_parent(tmp_path)
    prep = Preprocessing("table", [3], ["p", "q", "r"], parent.mean, parent.variance, numeric_columns=["x", "y", "z"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(150, 3)).astype("float32"), np.arange(150) % 3  # labels the features do not predict
    inputs = ModelInputs(x[:90], y[:90], x[90:120], y[90:120], x[120:], y[120:])
    families = ["transfer", "linear", "kernel", "trees"]
    options = SearchOptions(tuner="random", max_trials=len(families), max_epochs=3, batch_size=8, budget_minutes=2,
                            ensemble_size=5, selection="kfold", families=families)
    result = run_search(inputs, prep, tmp_path / "search", options, base=base)
    assert [t.family for t in result.trials] == families and result.cross_validated
    assert result.ensemble is not None and "portfolio" in result.ensemble.why, "noise: no trial leads the average"
    shipped = [m["family"] for m in member_hyperparameters(result.best_hyperparameters)]
    assert sorted(shipped) == ["kernel", "linear", "trees"]
