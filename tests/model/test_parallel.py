"""Parallel search: keras-tuner's chief oracle here, two workers on a real local Dask cluster.

The flow side (workers as Prefect task runs through prefect-dask) is in tests/flows/test_parallel_flow.py.
"""

import json
import os
import signal

import dask
import pytest

from pipelines.search import SearchOptions, run_search


def _options(**overrides):
    options = dict(tuner="random", max_trials=4, max_epochs=2, batch_size=4, budget_minutes=4, workers=2,
                   families=["dense"])
    options.update(overrides)
    return SearchOptions(**options)


@pytest.mark.timeout(300)
def test_two_workers_share_the_trials_none_twice_none_lost(image_inputs, tmp_path):
    inputs, prep = image_inputs
    reported = []
    result = run_search(inputs, prep, tmp_path / "search", _options(),
                        on_trial_end=lambda record, n: reported.append(record.trial_id))

    ids = [t.trial_id for t in result.trials]
    assert len(ids) == 4 and {t.status for t in result.trials} == {"COMPLETED"}
    assert sorted(reported) == sorted(ids), "every trial reported to the flow exactly once"
    by_worker = {w.tuner_id: set(w.trials) for w in result.workers}
    assert set(by_worker) == {"worker1", "worker2"}
    assert by_worker["worker1"].isdisjoint(by_worker["worker2"]), "no trial trained by both workers"
    assert by_worker["worker1"] | by_worker["worker2"] == set(ids), "no trial lost"
    assert all(by_worker.values()), "both workers trained trials"
    assert len({w.pid for w in result.workers}) == 2 and os.getpid() not in {w.pid for w in result.workers}
    assert all("CPU (" in w.devices for w in result.workers)
    assert all(t.seconds is not None for t in result.trials)
    assert result.best_model_path.exists()


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_search_does_not_hang_it_and_its_trial_is_retried(image_inputs, tmp_path):
    """Dask is told not to rerun the dead worker's task, so the chief must hand its trial to the other worker."""
    inputs, prep = image_inputs
    search_dir = tmp_path / "search"
    killed = []

    def kill_worker1_after_first_trial(record, n):
        if not killed:
            pid = json.loads((search_dir / "workers" / "worker1.json").read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        result = run_search(inputs, prep, search_dir, _options(max_trials=4),
                            on_trial_end=kill_worker1_after_first_trial)

    assert killed
    assert [w.tuner_id for w in result.workers] == ["worker2"], "the killed worker reports nothing"
    assert len(result.trials) == 4 and {t.status for t in result.trials} == {"COMPLETED"}, \
        [(t.trial_id, t.status, t.message) for t in result.trials]


def test_cli_explains_and_checks_the_parallel_and_gpu_options(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    help_text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output
    for words in ("--workers", "--scheduler-address", "shared filesystem", "--mixed-precision", "--xla",
                  "--strategy", "mirrored"):
        assert words in help_text
    lone = CliRunner().invoke(app, ["train", "--dataset", "digits", "--scheduler-address", "tcp://10.0.0.5:8786",
                                    "--runs-root", str(tmp_path / "runs")])
    assert lone.exit_code == 2 and "give workers >= 2" in lone.output
    bad = CliRunner().invoke(app, ["train", "--dataset", "digits", "--workers", "0"])
    assert bad.exit_code == 2 and "workers" in bad.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(120)
def test_an_unreachable_scheduler_is_named_in_one_clear_error(image_inputs, tmp_path, monkeypatch):
    import pipelines.search.parallel
    from pipelines.errors import SearchFailed

    monkeypatch.setattr(pipelines.search.parallel, "CONNECT_TIMEOUT", "3s")
    inputs, prep = image_inputs
    with pytest.raises(SearchFailed, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 3s"):
        run_search(inputs, prep, tmp_path / "search", _options(scheduler_address="tcp://127.0.0.1:9"))
