"""Every CLI error path that can be found before work starts: exit 2, one `error:` line, nothing written."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import make_table


@pytest.fixture
def files(tmp_path):
    make_table().to_csv(tmp_path / "t.csv", index=False)
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=600), "price": np.repeat(rng.uniform(1, 9, 120).round(3), 5)}).to_csv(
        tmp_path / "prices.csv", index=False)
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "twice.csv").write_text("f1,f2,f1,label\n1,2,3,a\n4,5,6,b\n")
    mixed = make_table().astype({"x1": object})
    mixed.loc[3:12, "x1"] = "twelve"  # 10 of 60: more than stray text
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    make_table().assign(x2=np.nan).to_csv(tmp_path / "hollow.csv", index=False)
    make_table().drop(columns="colour").to_csv(tmp_path / "lacks.csv", index=False)
    make_table().assign(label="top").to_csv(tmp_path / "unseen.csv", index=False)
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04")  # a spreadsheet: a zip
    for folder, classes in (("one_class", ["cat"]), ("broken", ["cat", "dog"]), ("pets", ["cat", "dog"]),
                            ("pets_test", ["cat", "fox"])):
        for name in classes:
            (tmp_path / folder / name).mkdir(parents=True)
            for i in range(5):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / folder / name / f"{i}.png")
    (tmp_path / "broken" / "dog" / "5.png").write_bytes(b"not a png")
    return tmp_path


CASES = {
    "missing file": (["train", "--data", "{d}/gone.csv", "--target", "y"], "gone.csv: no such file or folder"),
    "table without target": (["train", "--data", "{d}/t.csv"], "a table needs --target"),
    "unknown target": (["train", "--data", "{d}/t.csv", "--target", "nope"], "no column 'nope'; columns are"),
    "header names a column twice": (["train", "--data", "{d}/twice.csv", "--target", "label"],
                                    "names column(s) ['f1'] more than once"),
    "spreadsheet": (["train", "--data", "{d}/book.xlsx", "--target", "y"],
                    "book.xlsx: unknown file type '.xlsx'; expected a table (.csv, .tsv or .parquet), sequences (.npz "
                    "or .ts), or a folder of images or of .txt files; save a spreadsheet as CSV (in Excel: CSV UTF-8)"),
    "file without a type": (["train", "--data", "{d}/taken", "--target", "y"], "taken: a file without a type"),
    "image folder of one class": (["train", "--data", "{d}/one_class"], "the labels have one class ('cat')"),
    "unreadable image": (["train", "--data", "{d}/broken"], "1 bad file(s): {d}/broken/dog/5.png cannot be read"),
    "empty file": (["train", "--data", "{d}/empty.csv", "--target", "y"], "empty.csv: the file is empty"),
    "continuous target": (["train", "--data", "{d}/prices.csv", "--target", "price"], "looks continuous"),
    "numbers with text": (["train", "--data", "{d}/mixed.csv", "--target", "label", "--column-role", "x1=numeric"],
                          "column 'x1' is numeric but 10 of 60 values are text"),
    "numbers with text in the test file": (["train", "--data", "{d}/t.csv", "--test-data", "{d}/mixed.csv",
                                            "--target", "label", "--column-role", "x1=numeric"],
                                           "mixed.csv: column 'x1' is numeric but"),
    "test file without a column": (["train", "--data", "{d}/t.csv", "--test-data", "{d}/lacks.csv", "--target",
                                   "label"], "lacks.csv: no column colour, which the training data (t.csv) has and "
                                             "the model takes; add it (cells may be empty), or train without it"),
    "test file of a class not trained on": (["train", "--data", "{d}/t.csv", "--test-data", "{d}/unseen.csv",
                                            "--target", "label"],
                                           "unseen.csv: test labels ['top'] never appear in the training data"),
    "test folder of a class not trained on": (["train", "--data", "{d}/pets", "--test-data", "{d}/pets_test"],
                                              "pets_test: test labels ['fox'] never appear in the training data"),
    "test data of another kind": (["train", "--data", "{d}/t.csv", "--test-data", "{d}/pets", "--target", "label"],
                                  "pets: test data is image data but training data is table data"),
    "column without a value": (["train", "--data", "{d}/hollow.csv", "--target", "label"],
                               "column 'x2' is empty on every one of its 60 rows"),
    "run dir is a file": (["train", "--dataset", "digits", "--run-dir", "{d}/taken"], "is a file"),
    "zero image size": (["train", "--dataset", "digits", "--image-size", "0x0"], "below 1 pixel"),
    "unreadable image size": (["train", "--dataset", "digits", "--image-size", "big"], "expected HEIGHTxWIDTH"),
    "role without name": (["train", "--data", "{d}/t.csv", "--target", "label", "--column-role", "numeric"],
                          "expected NAME=ROLE"),
    "unknown role": (["train", "--data", "{d}/t.csv", "--target", "label", "--column-role", "x1=postcode"],
                     "column_roles.x1"),
    "zero budget": (["train", "--dataset", "digits", "--budget-minutes", "0"], "budget_minutes"),
    "two sources": (["train", "--dataset", "digits", "--data", "{d}/t.csv"], "exactly one of data"),
    "backbone without weights": (["train", "--dataset", "digits", "--backbone", "mobilenet_v3_small"],
                                 "needs --backbone-weights PATH, a weights file on this machine"),
    "two pretrained starts": (["train", "--dataset", "digits", "--pretrained", "digits", "--backbone", "mobilenet_v2",
                               "--backbone-weights", "{d}/taken"], "one pretrained start"),
    "no champion": (["retrain", "nobody", "--data", "{d}/t.csv", "--registry", "{d}/registry"], "has no champion"),
    "retrain missing file": (["retrain", "nobody", "--data", "{d}/gone.csv", "--registry", "{d}/registry"],
                             "has no champion"),
    "nothing to compress": (["compress", "{d}/registry"], "nothing to compress: give --prune"),
    "sparsity out of range": (["compress", "{d}/registry", "--prune", "1.5"], "prune: Input should be less than 1"),
    "predict unknown model": (["predict", "nobody", "--data", "{d}/t.csv", "--registry", "{d}/registry"], "nobody"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_cli_error_is_one_line_exit_2_and_writes_nothing(files, case, monkeypatch):
    monkeypatch.chdir(files)
    for flow in ("flows.api.run_training", "flows.retrain.retrain_flow"):  # each is found before any work starts
        monkeypatch.setattr(flow, lambda *args, **kwargs: pytest.fail("the flow was started"))
    args, message = CASES[case]
    result = CliRunner().invoke(app, [a.format(d=files) for a in args] + (
        ["--runs-root", str(files / "runs")] if args[0] == "train" else []))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(d=files) in lines[0], result.output
    assert not (files / "runs").exists() and not (files / "registry").exists()
    assert (files / "taken").read_text() == "a file"


# Run in a new interpreter: the suite's own process has long imported Keras.
WITHOUT_KERAS = """
import sys
from typer.testing import CliRunner
from flows.cli import app
for args in (["--help"], ["train", "--help"], ["train", "--data", "gone.csv", "--target", "y"]):
    result = CliRunner().invoke(app, args)
    print(result.exit_code, result.output.strip().splitlines()[-1])
print(sorted({"keras", "tensorflow"} & set(sys.modules)))
"""


def test_help_and_a_bad_paths_error_come_before_keras_loads(tmp_path):
    """Keras and TensorFlow take seconds to import; `--help` and an error found before work starts must not wait."""
    run = subprocess.run([sys.executable, "-c", WITHOUT_KERAS], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=120)
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "[]", run.stdout
    assert [line.split(" ", 1)[0] for line in lines[:-1]] == ["0", "0", "2"], run.stdout
    assert CASES["missing file"][1] in lines[-2], run.stdout
