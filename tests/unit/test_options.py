"""Each option is declared once: the config models hold every default and help text, the CLI reads them."""

from typing import get_args

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from pipelines.config import (
    DeviceOptions,
    ExportOptions,
    Family,
    RetrainConfig,
    SearchOptions,
    TrainConfig,
    Tuner,
)
from pipelines.errors import ExportError
from pipelines.export.tflite import VARIANTS
from pipelines.runs import Step
from pipelines.search.keras_tuner_bridge import BUILTIN

# CLI parameters whose field has another name or lives in another model: (command, parameter) -> (model, field).
ELSEWHERE = {("train", "family"): (TrainConfig, "families"), ("train", "column_role"): (TrainConfig, "column_roles"),
             ("train", "registry"): (RetrainConfig, "registry"),
             ("export", "registry"): (RetrainConfig, "registry"), ("export", "runs_root"): (TrainConfig, "runs_root")}


def _command(name: str):
    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("command, model", [("train", TrainConfig), ("retrain", RetrainConfig),
                                            ("export", ExportOptions)])
def test_cli_defaults_and_help_come_from_the_config(command, model):
    checked = 0
    for param in _command(command).params:
        owner, field = ELSEWHERE.get((command, param.name), (model, param.name))
        if field not in owner.model_fields:
            continue
        checked += 1
        assert owner.help(field) and owner.help(field) in (param.help or ""), (command, param.name)
        default = owner.default(field)
        if param.name in ("quantize", "image_size", "column_role"):  # the config's default applies when the option is left out
            assert param.default is None
        elif not param.required:
            value = param.default.value if hasattr(param.default, "value") else param.default
            value = [v.value if hasattr(v, "value") else v for v in value] if isinstance(value, list) else value
            assert value == default, (command, param.name)
    assert checked >= {"train": 29, "retrain": 19, "export": 5}[command]


def test_train_config_is_made_of_the_step_option_groups():
    assert issubclass(TrainConfig, SearchOptions) and issubclass(TrainConfig, ExportOptions)
    assert issubclass(SearchOptions, DeviceOptions)
    assert set(SearchOptions.model_fields) | set(ExportOptions.model_fields) <= set(TrainConfig.model_fields)


def test_choices_are_the_ones_the_code_knows():
    import models.hypermodel

    assert get_args(Family) == models.hypermodel.FAMILIES
    assert set(get_args(Tuner)) == set(BUILTIN)
    assert ExportOptions.default("quantize") == list(VARIANTS)


def test_unknown_variants_are_an_export_error_and_variants_keep_one_order():
    with pytest.raises(ExportError, match="unknown quantize mode 'int4'"):
        ExportOptions(quantize=["int4"])
    assert ExportOptions(quantize=["int8", "float32"]).quantize == ["float32", "int8"]


def test_scheduler_address_needs_workers_in_every_option_group():
    with pytest.raises(ValueError, match="give workers >= 2"):
        SearchOptions(scheduler_address="tcp://127.0.0.1:8786")
    assert SearchOptions(scheduler_address="tcp://127.0.0.1:8786", workers=2).workers == 2


def test_step_names_are_the_task_names_flows_retry_on():
    from flows.prefect_kit import TASK_OPTIONS

    assert set(TASK_OPTIONS) <= set(Step) and {Step.LOAD, Step.EXPORT} <= set(TASK_OPTIONS)
    assert TASK_OPTIONS.get("load") is TASK_OPTIONS[Step.LOAD], "a plain step name finds its options"


def test_export_help_names_both_kinds_of_target():
    result = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for words in ("run folder", "NAME@VERSION", "--quantization-tolerance", "--tolerance", "--out"):
        assert words in result.output


def test_a_bad_export_option_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--quantization-tolerance", "2"])
    assert result.exit_code == 2 and "quantization_tolerance" in result.output


def test_bad_input_is_refused_before_any_server_starts(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n1,2,x\n")
    rare = tmp_path / "rare.csv"
    rare.write_text("a,label\n" + "".join(f"{i},{'y' if i < 2 else 'x'}\n" for i in range(9)))
    unlabelled = tmp_path / "series.ts"
    unlabelled.write_text("@problemName s\n@classLabel false\n@data\n1,2,3\n")
    for args, expected in ((["--data", str(table), "--target", "nope"], "no column 'nope'; columns are a, b, label"),
                           (["--data", str(table)], "a table needs --target"),
                           (["--data", str(rare), "--target", "label"], "classes {'y': 2} have fewer than 3 rows"),
                           (["--data", str(unlabelled)], "series.ts: the cases have no class labels"),
                           (["--data", str(tmp_path / "gone.csv"), "--target", "y"], "gone.csv: no such file")):
        result = CliRunner().invoke(app, ["train", *args, "--runs-root", str(tmp_path / "runs")])
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "temporary server" not in result.output and len(result.output.strip().splitlines()) <= 2
    unknown = CliRunner().invoke(app, ["retrain", "nobody", "--dataset", "wine", "--registry", str(tmp_path / "r")])
    assert unknown.exit_code == 2 and "'nobody' has no champion" in unknown.output
    assert not (tmp_path / "runs").exists()


def test_train_help_is_grouped_in_panels():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    for panel in ("Data", "Search", "Mobile budget and export", "Scale-out and devices", "Registry"):
        assert f"─ {panel} " in result.output, panel


def test_schedule_without_a_server_says_how_to_get_one(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # a server fixture of the session may be active
        result = CliRunner().invoke(app, ["schedule", "--list"])
    assert result.exit_code == 2 and "schedules need a Prefect server" in result.output, result.output


def test_a_run_dir_that_is_a_file_and_an_empty_image_size_are_refused_before_any_work(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    as_file = CliRunner().invoke(app, ["train", "--dataset", "digits", "--run-dir", str(taken),
                                       "--runs-root", str(tmp_path / "runs")])
    assert as_file.exit_code == 2 and "run_dir" in as_file.output and "is a file" in as_file.output
    empty = CliRunner().invoke(app, ["train", "--dataset", "digits", "--image-size", "0x0",
                                     "--runs-root", str(tmp_path / "runs")])
    assert empty.exit_code == 2 and "image_size" in empty.output and "below 1 pixel" in empty.output
    assert as_file.output.startswith("error: ") and len(as_file.output.strip().splitlines()) == 1
    assert empty.output.startswith("error: ") and len(empty.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and taken.read_text() == "not a folder"
