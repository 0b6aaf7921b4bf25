"""Files and names nobody vetted: each is one `error:` line naming the file or option, exit 2, nothing written
outside the test's folder, and no side effect of a payload. Data files are never code.

Cases found before any work run through the CLI in this process; the ones found only by reading the data run the
training flow on the session's Prefect server, whose task runs show that a data error is not retried, and one of
them runs through the real `kerasflow` executable.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import make_table

PAYLOAD_MARK = "payload-ran"


class Payload:
    """Unpickling this creates the file `self.mark`: proof that a pickle was loaded, without harm."""

    def __init__(self, mark: Path):
        self.mark = mark

    def __reduce__(self):
        return open, (str(self.mark), "w")


def _pickled(mark: Path, n: int = 4) -> np.ndarray:
    values = np.empty(n, dtype=object)
    values[:] = [Payload(mark), *[np.zeros((5, 1), np.float32)] * (n - 1)]
    return values


def _bomb_png(path: Path, side: int = 20_000) -> None:
    """A few-byte PNG whose header claims side x side gray pixels (400 megapixels for the default)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 8)  # a few rows: Pillow refuses the size before decoding
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _image_classes(root: Path, classes=("a", "b"), per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L").save(root / name / f"{i}.png")
    return root


def pickle_in_x(d: Path):
    np.savez(d / "x.npz", x=_pickled(d / PAYLOAD_MARK), y=np.array(["a", "b", "a", "b"]))
    return ["train", "--data", "{d}/x.npz"], "x.npz: array 'x' holds Python objects"


def pickle_in_y(d: Path):
    np.savez(d / "y.npz", x=np.zeros((4, 5, 1), np.float32), y=_pickled(d / PAYLOAD_MARK))
    return ["train", "--data", "{d}/y.npz"], "y.npz: array 'y' holds Python objects"


def pickle_in_an_extra_array(d: Path):
    np.savez(d / "extra.npz", x=np.zeros((4, 5, 1), np.float32), y=np.array(["a", "b", "a", "b"]),
             notes=_pickled(d / PAYLOAD_MARK))
    return ["train", "--data", "{d}/extra.npz"], "extra.npz: array 'notes' holds Python objects"


def pickle_given_to_predict(d: Path):
    np.savez(d / "new.npz", x=_pickled(d / PAYLOAD_MARK))
    return ["predict", "wine", "--data", "{d}/new.npz", "--registry", "{d}/registry"], \
        "new.npz: array 'x' holds Python objects"


def empty_npz(d: Path):
    (d / "empty.npz").write_bytes(b"")
    return ["train", "--data", "{d}/empty.npz"], "empty.npz: the file is empty"


def not_a_zip(d: Path):
    (d / "text.npz").write_text("x,y\n1,2\n")
    return ["train", "--data", "{d}/text.npz"], "text.npz: cannot read the .npz file"


def traversal_in_train_name(d: Path):
    return ["train", "--dataset", "wine", "--name", "../../../escape"], "'../../../escape' is not a model name"


def traversal_in_retrain_name(d: Path):
    return ["retrain", "../escape", "--dataset", "wine", "--registry", "{d}/registry"], \
        "'../escape' is not a model name"


def traversal_in_predict_version(d: Path):
    make_table(9).to_csv(d / "t.csv", index=False)
    return ["predict", "wine@../../escape", "--data", "{d}/t.csv", "--registry", "{d}/registry"], \
        "'../../escape' is not a version"


def traversal_in_export_name(d: Path):
    return ["export", ".hidden@v0001", "--registry", "{d}/registry"], "'.hidden' is not a model name"


def traversal_in_schedule_name(d: Path):
    return ["schedule", "a/b", "--dataset", "wine", "--cron", "0 2 * * *"], "'a/b' is not a model name"


def long_field_in_a_numeric_column(d: Path):
    frame = make_table(30).astype({"x1": object})
    frame.loc[3:6, "x1"] = "x" * 100_000  # 100,000-character text cells among numbers, more than stray
    frame.to_csv(d / "long.csv", index=False)
    return (["train", "--data", "{d}/long.csv", "--target", "label", "--column-role", "x1=numeric"],
            "long.csv: column 'x1' is numeric but 4 of 30")


FAST = [pickle_in_x, pickle_in_y, pickle_in_an_extra_array, pickle_given_to_predict, empty_npz, not_a_zip,
        traversal_in_train_name, traversal_in_retrain_name, traversal_in_predict_version, traversal_in_export_name,
        traversal_in_schedule_name]


def _invoke(args: list[str], folder: Path) -> list[str]:
    args = [a.format(d=folder) for a in args]
    if args[0] == "train":
        args += ["--runs-root", str(folder / "runs"), "--registry", str(folder / "registry"), "--budget-minutes", "0.1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", FAST, ids=lambda case: case.__name__)
def test_hostile_input_found_before_any_work(tmp_path, monkeypatch, case):
    folder = tmp_path / "work"
    folder.mkdir()
    args, message = case(folder)
    monkeypatch.chdir(folder)
    before, around = _listing(folder), _listing(tmp_path.parent)
    errors = _invoke(args, folder)
    assert len(errors) == 1 and message in errors[0] and len(errors[0]) < 600, errors
    assert _listing(folder) == before, "nothing written"
    assert _listing(tmp_path.parent) == around, "nothing written beside the test's folder"
    assert not (folder / PAYLOAD_MARK).exists(), "the pickle was never loaded"


def test_the_python_api_checks_the_name_before_writing_in_memory_data(tmp_path):
    import kerasflow
    from pipelines.errors import RegistryError

    with pytest.raises(RegistryError, match="'../../escape' is not a model name"):
        kerasflow.train(make_table(30), target="label", name="../../escape", runs_root=tmp_path / "runs", prefect=False)
    assert not any(tmp_path.parent.parent.glob("escape")) and not (tmp_path / "runs").exists()


def bomb_image(d: Path):
    root = _image_classes(d / "images")
    _bomb_png(root / "b" / "bomb.png")
    return ["train", "--data", "{d}/images"], "bomb.png: refused as a decompression bomb"


def truncated_image(d: Path):
    root = _image_classes(d / "images")
    whole = (root / "a" / "0.png").read_bytes()
    (root / "a" / "cut.png").write_bytes(whole[: len(whole) // 2])
    return ["train", "--data", "{d}/images"], "cut.png cannot be read"


def symlink_loops(d: Path):
    root = _image_classes(d / "images", classes=("a",))
    (root / "a" / "loop").symlink_to("..", target_is_directory=True)  # a folder that contains itself
    (root / "b").mkdir()
    (root / "b" / "spin.png").symlink_to("spin.png")  # a link to itself
    return ["train", "--data", "{d}/images"], "images/b: class folder has no images"


IN_FLOW = [bomb_image, truncated_image, symlink_loops, long_field_in_a_numeric_column]


@pytest.mark.parametrize("case", IN_FLOW, ids=lambda case: case.__name__)
def test_hostile_data_found_by_the_load_step_is_a_data_error_never_retried(prefect_server, tmp_path, case):
    import asyncio

    from flows.train import train_flow
    from pipelines.errors import DataError
    from tests.conftest import fast_config

    folder = tmp_path / "work"
    folder.mkdir()
    args, message = case(folder)
    data = Path(args[args.index("--data") + 1].format(d=folder))
    target = args[args.index("--target") + 1] if "--target" in args else None
    roles = dict([args[args.index("--column-role") + 1].split("=")]) if "--column-role" in args else {}
    before = _listing(folder)
    with pytest.raises(DataError) as caught:
        train_flow(fast_config(data=data, target=target, runs_root=folder / "runs", column_roles=roles))
    text = str(caught.value)
    assert message in text and "\n" not in text and len(text) < 600, text
    assert _listing(folder) == before, "no run folder"
    load = asyncio.run(_latest_load_task_run())
    assert load.state.is_failed() and load.run_count == 1, "a data error is not retried"


def test_the_command_line_prints_a_load_error_as_one_line(prefect_server, tmp_path):
    """The real `kerasflow` executable, as a user runs it: exit 2, one `error:` line, no traceback."""
    import os
    import subprocess
    import sys

    args, message = bomb_image(tmp_path)
    command = [str(Path(sys.executable).with_name("kerasflow")), *[a.format(d=tmp_path) for a in args],
               "--runs-root", str(tmp_path / "runs"), "--no-register", "--budget-minutes", "0.1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PREFECT_API_URL": prefect_server.url})
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(errors) == 1 and message in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "runs").exists()


async def _latest_load_task_run():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import TaskRunSort

    async with get_client() as client:
        runs = await client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="load")),
                                           sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=1)
    return runs[0]
