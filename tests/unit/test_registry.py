"""Registry, drift and promotion rule on their own: real files, real processes, real statistics."""

import json
import multiprocessing

import numpy as np
import pandas as pd
import pytest
from pathlib import Path
from typer.testing import CliRunner

from data_checks import LABEL_COLUMN
from data_checks.drift import compare_profiles
from flows.cli import app
from pipelines.errors import RegistryBusy, RegistryError
from pipelines.evaluate import evaluate_labels
from pipelines.promotion import decide
from pipelines.registry import Registry, checksums


def _run_folder(tmp_path, name: str, content: bytes) -> dict:
    folder = tmp_path / name
    (folder / "export").mkdir(parents=True)
    (folder / "export" / "model_int8.tflite").write_bytes(content)
    (folder / "metrics.json").write_text(json.dumps({"accuracy": len(content) / 100}))
    return {"export": folder / "export", "metrics.json": folder / "metrics.json"}


def _record(accuracy: float) -> dict:
    return {"mode": "train", "metrics": {"accuracy": accuracy}, "decision": {"promoted": True, "reason": "test"}}


@pytest.fixture
def registry(tmp_path):
    store = Registry(tmp_path / "registry")
    store.register("m", _run_folder(tmp_path, "a", b"first model"), _record(0.9), promote=True)
    store.register("m", _run_folder(tmp_path, "b", b"second, better model"), _record(0.95), promote=True)
    return store


def test_versions_are_immutable_folders_and_the_pointer_keeps_history(registry):
    assert [v.version for v in registry.versions("m")] == ["v0001", "v0002"]
    assert registry.champion("m").version == "v0002"
    assert registry.history("m") == ["v0001", "v0002"]
    first = registry.version("m", "v0001")
    on_disk = checksums(first.path)
    assert on_disk.pop("version.json") and first.record["files"] == on_disk  # a record cannot hash itself
    assert set(first.record["files"]) == {"export/model_int8.tflite", "metrics.json"}
    assert first.record["registered"] and first.record["name"] == "m"


def test_rollback_restores_the_previous_champion_files_exactly(registry):
    before = checksums(registry.version("m", "v0001").path)
    result = CliRunner().invoke(app, ["models", "rollback", "m", "--registry", str(registry.root)])
    assert result.exit_code == 0, result.output
    assert "v0001" in result.output
    champion = registry.champion("m")
    assert champion.version == "v0001"
    assert checksums(champion.path) == before
    assert (champion.path / "export" / "model_int8.tflite").read_bytes() == b"first model"
    again = CliRunner().invoke(app, ["models", "rollback", "m", "--registry", str(registry.root)])
    assert again.exit_code == 2 and "no earlier champion" in again.output
    assert registry.champion("m").version == "v0001"


def test_a_tampered_champion_is_refused_by_name(registry):
    (registry.champion("m").path / "export" / "model_int8.tflite").write_bytes(b"edited by hand")
    with pytest.raises(RegistryError, match="export/model_int8.tflite"):
        registry.champion("m")
    promote = CliRunner().invoke(app, ["models", "promote", "m@v0002", "--registry", str(registry.root)])
    assert promote.exit_code == 2 and "files changed or missing" in promote.output


@pytest.mark.parametrize("garbage", ["{not json", '{"champion": "v0002", "history": []}', "[]"])
def test_a_corrupt_pointer_is_a_clear_error_not_a_crash(registry, garbage):
    (registry.root / "m" / "champion.json").write_text(garbage)
    result = CliRunner().invoke(app, ["models", "list", "--registry", str(registry.root)])
    assert result.exit_code == 2
    assert "champion.json" in result.output and "Traceback" not in result.output
    with pytest.raises(RegistryError, match="champion.json"):
        registry.champion("m")


def test_a_corrupt_version_record_names_its_file(registry):
    (registry.root / "m" / "versions" / "v0001" / "version.json").write_text("nonsense")
    result = CliRunner().invoke(app, ["models", "show", "m@v0001", "--registry", str(registry.root)])
    assert result.exit_code == 2 and "v0001/version.json" in result.output
    assert registry.champion("m").version == "v0002"  # the champion itself still reads


def test_a_failed_registration_leaves_nothing_behind(registry, tmp_path):
    source = _run_folder(tmp_path, "c", b"third")
    source["missing.json"] = tmp_path / "does-not-exist.json"
    with pytest.raises(FileNotFoundError):
        registry.register("m", source, _record(0.99), promote=True)
    assert [v.version for v in registry.versions("m")] == ["v0001", "v0002"]
    assert registry.champion("m").version == "v0002"
    assert not list((registry.root / "m").glob(".staging-*"))


def _hold_lock(root, ready, release):
    with Registry(root).lock("m", "test holder"):
        ready.set()
        release.wait(30)


def test_a_second_process_is_refused_while_one_holds_the_model(registry):
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(registry.root, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RegistryBusy, match=rf"test holder, pid {holder.pid}"):
            with registry.lock("m", "second"):
                pass
    finally:
        release.set()
        holder.join(30)
    with registry.lock("m", "after"):  # released when the holder exits
        pass


def test_cli_lists_models_with_their_champion(registry):
    result = CliRunner().invoke(app, ["models", "list", "--registry", str(registry.root)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "m (champion v0002)" in result.output and "v0001" in result.output
    shown = CliRunner().invoke(app, ["models", "show", "m", "--registry", str(registry.root)])
    assert shown.exit_code == 0 and '"version": "v0002"' in shown.output


# Drift ----------------------------------------------------------------------------------------

def _frame(n: int, seed: int, shift: float = 0.0, colours=("red", "green", "blue"), labels=("a", "b")):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, n), "colour": rng.choice(colours, n),
                         LABEL_COLUMN: rng.choice(labels, n)})


def test_same_distribution_does_not_drift_even_on_small_samples():
    report = compare_profiles(_frame(80, 0), _frame(80, 1))
    assert report.drifted == [], report.to_markdown()


def test_a_shifted_number_drifts_and_the_report_says_how_much():
    report = compare_profiles(_frame(500, 0), _frame(500, 1, shift=1.5))
    assert [c.column for c in report.drifted] == ["x"]
    x = report.drifted[0]
    assert x.test == "KS" and x.psi > 0.2 and x.p_value < 1e-6
    assert "mean" in x.change and "| x | numeric | KS |" in report.to_markdown()


def test_new_category_mix_and_label_shift_drift_by_chi_square():
    reference = _frame(600, 0)
    current = _frame(600, 1, colours=("red", "red", "red", "blue"), labels=("a", "a", "a", "b"))
    drifted = {c.column: c for c in compare_profiles(reference, current).drifted}
    assert set(drifted) == {"colour", "label"}
    assert drifted["colour"].test == "chi-square" and "red" in drifted["colour"].change
    assert drifted["label"].kind == "label"


def test_a_column_that_starts_arriving_empty_drifts():
    current = _frame(500, 1)
    current.loc[current.index[:250], "x"] = np.nan
    drifted = [c.column for c in compare_profiles(_frame(500, 0), current).drifted]
    assert drifted == ["x"]


# Promotion rule ---------------------------------------------------------------------------------

def _evaluation(correct: list[int]):
    """Two classes, ten rows each; `correct` = how many of each class are predicted right."""
    y_true = np.repeat([0, 1], 10)
    y_pred = np.concatenate([[0] * correct[0] + [1] * (10 - correct[0]), [1] * correct[1] + [0] * (10 - correct[1])])
    return evaluate_labels(y_true, y_pred, ["a", "b"])


def test_promotes_a_better_challenger():
    decision = decide(_evaluation([8, 8]), _evaluation([9, 9]), metric="accuracy", min_improvement=0.05,
                      max_recall_drop=0.05)
    assert decision.promote and decision.improvement == pytest.approx(0.1)
    assert "challenger promoted" in decision.reason


def test_keeps_the_champion_when_the_gain_is_below_the_margin():
    decision = decide(_evaluation([8, 8]), _evaluation([9, 8]), metric="accuracy", min_improvement=0.1,
                      max_recall_drop=0.5)
    assert not decision.promote and "champion kept" in decision.reason and "+0.0500" in decision.reason


def test_keeps_the_champion_when_one_class_loses_recall():
    decision = decide(_evaluation([8, 8]), _evaluation([10, 7]), metric="accuracy", min_improvement=0.0,
                      max_recall_drop=0.05)
    assert not decision.promote
    assert "class 'b' drops 0.100" in decision.reason
    assert decision.recall_drops == {"a": -0.2, "b": 0.1}


def test_one_rule_for_model_names_and_versions():
    from pipelines.config import RetrainConfig, TrainConfig
    from pipelines.registry import parse_ref, safe_model_name

    assert parse_ref("wine@v0012") == ("wine", "v0012") and parse_ref("my-model.v2") == ("my-model.v2", None)
    for bad in ("../x", "a/b", ".hidden", "a b", "", "x" * 101, "a\\b"):
        with pytest.raises(RegistryError, match="is not a model name"):
            parse_ref(bad)
        with pytest.raises(ValueError, match="is not a model name"):
            TrainConfig(dataset="wine", name=bad)
        with pytest.raises(ValueError, match="is not a model name"):
            RetrainConfig(dataset="wine", name=bad)
    for bad in ("../v0001", "v1", "latest"):
        with pytest.raises(RegistryError, match="is not a version"):
            parse_ref(f"wine@{bad}")
    assert safe_model_name("my data (1)") == "my-data-1" and safe_model_name("..") == "model"
    assert TrainConfig(data=Path("/tmp/.my data.csv")).model_name == "my-data", "a file's name is made a model name"
