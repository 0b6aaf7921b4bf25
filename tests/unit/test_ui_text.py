"""What the Prefect UI and the console show: embedded pictures, compact cells, rounded drift rows, quiet errors."""

import base64
import io
import logging

import numpy as np
import pytest
import pandas as pd
from PIL import Image

from data_checks import LABEL_COLUMN
from data_checks.drift import compare_profiles
from flows.output import UserErrorsWithoutTraceback
from flows.prefect_kit import embed_images
from pipelines.errors import DataError
from pipelines.report import compact


def test_report_pictures_are_embedded_small_and_a_missing_one_is_named(tmp_path):
    Image.new("RGB", (2000, 1000), "white").save(tmp_path / "curve.png")
    text = embed_images("# r\n![learning curves](curve.png)\n![gone](gone.png)\n[link](x.png)", tmp_path)
    encoded = text.split("](data:image/png;base64,")[1].split(")")[0]
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        assert image.size == (720, 360)
    assert "*(gone: gone.png is missing)*" in text and "[link](x.png)" in text


def test_hyperparameters_are_compact():
    assert compact({"family": "cnn", "learning_rate": 0.0012345, "cnn_blocks": 2, "cnn_global_pool": True}) == \
        "cnn: lr=0.00123, blocks=2, global_pool=True"
    assert compact({"dropout": 0.1}) == "dropout=0.1"


def test_drift_rows_put_the_verdict_first_drifted_first_and_round():
    rng = np.random.default_rng(0)
    old = pd.DataFrame({"x": rng.normal(0, 1, 300), "y": rng.normal(0, 1, 300), LABEL_COLUMN: rng.choice(["a", "b"], 300)})
    new = old.assign(y=old["y"] + 3)
    rows = compare_profiles(old, new).to_rows()
    assert list(rows[0])[:3] == ["drifted", "column", "PSI"]
    assert rows[0]["column"] == "y" and rows[0]["drifted"] == "yes" and rows[-1]["drifted"] == "no"
    assert all(len(repr(row["PSI"]).split(".")[-1]) <= 3 for row in rows)


def test_a_user_error_is_logged_on_the_console_without_its_traceback():
    formatter = UserErrorsWithoutTraceback(logging.Formatter("%(levelname)s %(message)s"))

    def record(exc: Exception) -> logging.LogRecord:
        try:
            raise exc
        except Exception:
            import sys

            return logging.LogRecord("prefect", logging.ERROR, __file__, 1, "run failed", None, sys.exc_info())

    quiet = record(DataError("t.csv: no column 'y'"))
    assert formatter.format(quiet) == "ERROR run failed" and quiet.exc_info is not None, "other handlers keep it"
    assert "Traceback" in formatter.format(record(RuntimeError("a bug")))


def test_an_error_with_brackets_prints_as_written(capsys):
    """rich would take "[time, features]" for markup and print "are not  arrays"."""
    import typer

    from flows.output import fail

    with pytest.raises(typer.Exit) as exited:
        fail("s.npz: sequences [3] are not [time, features] arrays")
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err.strip() == "error: s.npz: sequences [3] are not [time, features] arrays"
