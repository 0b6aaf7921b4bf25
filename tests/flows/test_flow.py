"""The Prefect flow end to end on a real (temporary) Prefect server, and the CLI."""

import asyncio
import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.train import train_flow
from pipelines.errors import ValidationFailed
from tests.conftest import fast_config, make_table, run_and_artifact_keys, run_artifacts

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
RUN_FILES = {"run.json", "expectations.json", "search", "search_summary.csv", "search_best.keras", "finetuned.keras",
             "history.json", "metrics.json", "confusion_matrix.png", "learning_curves.png", "export", "report.md",
             "preprocessing.json", "export_inputs.npz", "card.json", "search_frontier.png", "search_anytime.png",
             "reference.parquet", "replay.npz"}
EXPORT_FILES = {"model.keras", "saved_model", "labels.json", "preprocessing.json", "model_spec.json", "MODEL_CARD.md",
                "model_float32.tflite", "model_float16.tflite", "model_dynamic.tflite", "model_int8.tflite",
                "variants.png"}


def _check_run_folder(summary: dict, n_classes: int):
    from pathlib import Path

    run_dir = Path(summary["run_dir"])
    # a fine-tune not started (the search left it too little of a tiny budget) has no learning curves
    skipped = "(the fine-tune was not started)" in (run_dir / "report.md").read_text()
    assert RUN_FILES - ({"learning_curves.png"} if skipped else set()) <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["confusion_matrix"]) == n_classes and "search_best" in metrics
    assert {p.name for p in (run_dir / "export").iterdir()} == EXPORT_FILES
    variants = {v["variant"]: v for v in summary["export"]["variants"]}
    assert list(variants) == ["float32", "float16", "dynamic", "int8"]
    assert variants["float32"]["label_agreement"] == 1.0
    assert variants["float32"]["max_probability_difference"] < 1e-4
    assert summary["export"]["recommended"] in variants
    trials = pd.read_csv(run_dir / "search_summary.csv")
    assert len(trials) >= 1 and {"family", "val_score", "seconds", "status"} <= set(trials.columns)
    report = (run_dir / "report.md").read_text()
    assert "## Test scores" in report and "| float32 | model_float32.tflite |" in report
    assert "![search frontier](search_frontier.png)" in report
    assert "![TFLite variants: accuracy against size](export/variants.png)" in report
    return run_dir


def test_table_flow_end_to_end_with_artifacts(table_csv, tmp_path):
    config = fast_config(data=table_csv, target="label", runs_root=tmp_path / "runs", name="tiny-table")
    summary = train_flow(config)
    run_dir = _check_run_folder(summary, 3)
    assert run_dir.parent == tmp_path / "runs" / "tiny-table"
    assert "Skipped cnn: tables have no spatial" in (run_dir / "report.md").read_text()
    run, keys = asyncio.run(run_and_artifact_keys("train-tiny-table-random"))
    assert run.state.is_completed() and {"kerasflow", "train", "model:tiny-table"} <= set(run.tags)
    assert {"train-report", "search-trials", "search-progress", "tflite-variants", "confusion-matrix", "columns",
            "search-anytime"} <= keys

    artifacts = asyncio.run(run_artifacts("train-tiny-table-random"))
    report = artifacts["train-report"].data
    assert "| `colour` | categorical |" in report, "each column's role, in the report"
    columns = artifacts["columns"].data
    columns = json.loads(columns) if isinstance(columns, str) else columns
    assert {row["column"]: row["role"] for row in columns} == {"x1": "numeric", "x2": "numeric",
                                                                "colour": "categorical"}
    assert not re.search(r"!\[[^\]]*\]\((?!data:image/png;base64,)", report), "every picture is embedded"
    assert report.count("](data:image/png;base64,") == 5, \
        "frontier, anytime, confusion matrix, learning curves, variants"
    for key, artifact in artifacts.items():
        text = artifact.data if isinstance(artifact.data, str) else json.dumps(artifact.data)
        outside_images = re.sub(r"!\[[^\]]*\]\(data:image/png;base64,[A-Za-z0-9+/=]+\)", "", text)
        assert "data:image" not in outside_images, f"{key} shows a data URL as text"
        assert "data:image" not in (artifact.description or ""), key
    assert artifacts["confusion-matrix"].type == "markdown"
    trials = json.loads(artifacts["search-trials"].data)
    assert list(trials[0])[:4] == ["best", "trial", "status", "family"] and trials[0]["best"] == "★"
    assert all(len(str(row["val_accuracy"])) <= 6 for row in trials if row["val_accuracy"] is not None)
    assert "{" not in trials[0]["hyperparameters"] and "lr=" in trials[0]["hyperparameters"]
    variants_artifact = artifacts["tflite-variants"].data
    assert "](data:image/png;base64," in variants_artifact, "the accuracy/size picture renders in the Prefect UI"
    assert any(line.startswith("| verdict | model |") for line in variants_artifact.splitlines())
    assert "best " in artifacts["search-progress"].description and "min left" in artifacts["search-progress"].description


def test_image_flow_under_a_mobile_budget_then_reexport_from_the_cli(image_folder, tmp_path):
    summary = train_flow(fast_config(data=image_folder, runs_root=tmp_path / "runs", max_model_kb=200))
    run_dir = _check_run_folder(summary, 3)
    assert "Mobile budget: int8 model <= 200 KiB" in (run_dir / "report.md").read_text()
    trials = pd.read_csv(run_dir / "search_summary.csv")
    trained = trials[trials["status"].isin(["COMPLETED", "OVER_BUDGET"])]
    assert len(trained) and (trained["int8_kb"] > 0).all(), trials[["trial_id", "family", "status", "int8_kb"]]
    assert set(trials["status"]) <= {"COMPLETED", "OVER_BUDGET", "NOT_STARTED"}, "left untrained only for time"

    result = CliRunner().invoke(app, ["export", str(run_dir), "--quantize", "int8", "--int8-io"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (run_dir / "export").iterdir() if p.suffix == ".tflite"} == {"model_int8.tflite"}
    spec = json.loads((run_dir / "export" / "model_spec.json").read_text())
    assert spec["variants"]["int8"]["input"]["dtype"] == "int8"
    assert "model_int8.tflite" in (run_dir / "report.md").read_text()

    before = (run_dir / "export" / "model_int8.tflite").read_bytes()
    bad = CliRunner().invoke(app, ["export", str(run_dir), "--quantize", "int4"])
    assert bad.exit_code == 2 and "int4" in bad.output
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "no-run")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert (run_dir / "export" / "model_int8.tflite").read_bytes() == before


def test_compress_a_registered_version_into_its_own_folder(registry_root, tmp_path):
    version = registry_root / "tab" / "v0001"
    before = sorted((p.relative_to(version), p.stat().st_mtime_ns) for p in version.rglob("*"))
    out = tmp_path / "compressed"
    result = CliRunner().invoke(app, ["compress", "tab@v0001", "--prune", "0.5", "--compress-epochs", "2",
                                      "--registry", str(registry_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pruned_int8: " in result.output, "the CLI says what the compressed model is"
    spec = json.loads((out / "model_spec.json").read_text())
    assert "pruned_int8" in spec["variants"] and "distilled_int8" not in spec["variants"]
    assert spec["variants"]["pruned_int8"]["sparsity"] == pytest.approx(0.5, abs=0.1)  # a tiny model: whole weights
    assert (out / "model_pruned_int8.tflite").exists() and (out / "model_pruned.keras").exists()
    assert "pruned_int8" in (out / "MODEL_CARD.md").read_text()
    assert sorted((p.relative_to(version), p.stat().st_mtime_ns) for p in version.rglob("*")) == before


def test_sequence_flow_end_to_end_with_lstm(sequences_npz, tmp_path):
    summary = train_flow(fast_config(data=sequences_npz, runs_root=tmp_path / "runs", families=["lstm"]))
    run_dir = _check_run_folder(summary, 2)
    assert summary["family"] == "lstm"
    spec = json.loads((run_dir / "export" / "model_spec.json").read_text())
    assert all("UNIDIRECTIONAL_SEQUENCE_LSTM" in v["operators"] for v in spec["variants"].values())
    assert spec["input"]["shape"][0] == 1 and "before_each_call" in spec
    assert "zero-padded at the end to length 20" in (run_dir / "report.md").read_text()


def test_same_run_folder_resumes_the_search(table_csv, tmp_path):
    run_dir = tmp_path / "run"
    train_flow(fast_config(data=table_csv, target="label", run_dir=run_dir, max_trials=2))
    summary = train_flow(fast_config(data=table_csv, target="label", run_dir=run_dir, max_trials=3))
    trials = pd.read_csv(run_dir / "search_summary.csv")
    assert len(trials) == 3
    assert "(2 resumed from an earlier run)" in (run_dir / "report.md").read_text()
    assert summary["run_dir"] == str(run_dir)


def test_bad_data_stops_the_flow_and_writes_no_run_folder(tmp_path):
    path = tmp_path / "inf.csv"
    make_table().assign(x1=lambda f: np.where(f.index == 4, np.inf, f["x1"])).to_csv(path, index=False)
    with pytest.raises(ValidationFailed, match="column 'x1': values are not finite"):
        train_flow(fast_config(data=path, target="label", runs_root=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_cli_names_the_problem_and_exits_non_zero(tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "missing.csv"), "--target", "y",
                                      "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "missing.csv: no such file or folder" in result.output
    assert not (tmp_path / "runs").exists()


def test_cli_rejects_bad_options_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["train", "--dataset", "digits", "--budget-minutes", "0"])
    assert result.exit_code == 2 and "budget_minutes" in result.output
    both = CliRunner().invoke(app, ["train", "--dataset", "digits", "--data", "x.csv"])
    assert both.exit_code == 2 and "exactly one of data" in both.output


def test_cli_help_explains_every_input_kind():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for words in ("--budget-minutes", "one subfolder per class", ".npz", "--test-data", "resumes"):
        assert words in result.output
