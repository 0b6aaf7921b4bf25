"""Parallel search: keras-tuner's chief oracle in this process, N search workers placed by Dask.

keras-tuner distributes a search as one chief, which owns the oracle and
serves it over gRPC, and workers, which ask it for a trial, train it and
report back. Here the chief is the search step's own tuner: its oracle is
served from a thread of this process, so resuming, the deadline and the
results work as in a one-process search. The workers are Dask tasks: a
local cluster by default, or the workers of an existing scheduler on
other machines (`SearchOptions.scheduler_address`). Workers read the
training data from, and write trial checkpoints to, the search folder: on
several machines it must be a shared filesystem, mounted at the same path.

A worker that dies mid-trial must not stall the search (keras-tuner's own
chief waits for its trial forever). The chief watches the worker tasks:
when one fails, its trial goes back to the oracle as INVALID, which queues
it for one retry by another worker; if Dask itself reruns the task, the
oracle hands the rerun the same trial. Past the deadline plus a grace
period, workers that have not returned are cancelled.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import time
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import grpc
import numpy as np

from models.transfer import TransferBase
from pipelines.config import SearchOptions
from pipelines.devices import configure
from pipelines.errors import SearchFailed
from pipelines.preprocess import ModelInputs, Preprocessing
from pipelines.search.keras_tuner_bridge import KT_STATUS, add_oracle_service
from pipelines.search.records import TrialHook, WorkerReport
from pipelines.search.tuner import run_trials, searching_tuner

INPUTS_FILE = "worker_inputs.npz"
PREPROCESSING_FILE = "worker_preprocessing.json"
GRACE_SECONDS = 120
CONNECT_TIMEOUT = "15s"
POLL_SECONDS = 1.0


@dataclass
class WorkerSpec:
    """Everything one search worker needs; small, so Dask ships it to any machine."""

    tuner_id: str
    index: int
    workers: int
    oracle: str
    directory: str
    families: list[str]
    options: SearchOptions
    deadline: float
    base: TransferBase | None = None


@dataclass
class WorkerHandle:
    """A submitted worker task; `unwrap` turns what the future returns into a `WorkerReport`."""

    spec: WorkerSpec
    future: object  # distributed.Future
    unwrap: Callable = field(default=lambda result: result)

    def done(self) -> bool:
        return self.future.done()

    def failure(self) -> str | None:
        if not self.done():
            return None
        try:
            self.report()
        except BaseException as exc:  # a killed worker surfaces as distributed.KilledWorker
            return f"{type(exc).__name__}: {exc}"
        return None

    def report(self) -> WorkerReport:
        return self.unwrap(self.future.result())

    def cancel(self) -> None:
        self.future.cancel()


Launcher = Callable[[list[WorkerSpec], "str | None"], ContextManager[list[WorkerHandle]]]


def search_in_parallel(tuner, inputs: ModelInputs, prep: Preprocessing, families: list[str], directory: Path,
                       options: SearchOptions, deadline: float, launch: Launcher | None = None,
                       on_trial_end: TrialHook | None = None) -> list[WorkerReport]:
    """Serve `tuner`'s oracle, run `options.workers` workers through `launch`, return when all are done."""
    _share_inputs(directory, inputs, prep)
    tuner.oracle.verbose = 0  # the chief's console display; progress goes through `on_trial_end`
    server, oracle_address = _serve_oracle(tuner.oracle, options.scheduler_address)
    specs = [WorkerSpec(f"worker{i + 1}", i, options.workers, oracle_address, str(directory), families, options,
                        deadline, tuner.hypermodel.base) for i in range(options.workers)]
    try:
        with (launch or dask_workers)(specs, options.scheduler_address) as handles:
            _supervise(tuner, handles, deadline, on_trial_end)
            failures = {h.spec.tuner_id: why for h in handles if (why := h.failure())}
            if len(failures) == len(handles) and not tuner.oracle.get_best_trials(1):
                raise SearchFailed("every search worker failed: " +
                                   "; ".join(f"{worker}: {why}" for worker, why in failures.items()))
            return [h.report() for h in handles if h.spec.tuner_id not in failures]
    finally:
        server.stop(grace=None)


def search_worker(spec: WorkerSpec) -> WorkerReport:
    """One keras-tuner worker: asks the chief for trials and trains them until it says stop."""
    started = time.monotonic()
    setup = configure(spec.options, worker=spec.index, workers=spec.workers)
    directory = Path(spec.directory)
    inputs, prep = _read_inputs(directory)
    _write_worker_status(directory, spec, setup.describe())
    with _worker_environment(spec):
        tuner = searching_tuner(prep, spec.families, directory, spec.options, spec.deadline, inputs.x_train,
                                devices=setup, worker=spec.tuner_id, base=spec.base)
        run_trials(tuner, inputs, spec.options, spec.deadline, setup)
    return WorkerReport(spec.tuner_id, socket.gethostname(), os.getpid(), tuner.ledger.own_trials(),
                        round(time.monotonic() - started, 2), setup.describe())


@contextlib.contextmanager
def dask_workers(specs: list[WorkerSpec], address: str | None = None) -> Iterator[list[WorkerHandle]]:
    """Run each worker as a Dask task: on a new local cluster, or on the scheduler at `address`."""
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if address:
            with unreachable_scheduler_is_an_error(address):
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
        else:
            cluster = stack.enter_context(LocalCluster(**local_cluster_options(len(specs))))
            client = stack.enter_context(Client(cluster))
        submitted = [client.submit(search_worker, spec, key=f"search-{spec.tuner_id}-{uuid.uuid4().hex[:8]}",
                                   pure=False) for spec in specs]
        yield [WorkerHandle(spec, future) for spec, future in zip(specs, submitted)]


@contextlib.contextmanager
def unreachable_scheduler_is_an_error(address: str):
    """A wrong --scheduler-address ends the run with one line that names it, not a traceback from Dask."""
    try:
        yield
    except OSError as exc:  # distributed raises OSError (and its TimeoutError) when it cannot connect
        raise SearchFailed(f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT} ({exc}); "
                           "is `dask scheduler` running there and the port open?") from exc


def local_cluster_options(workers: int) -> dict:
    """One process per worker with one Dask thread each: a process holds one TensorFlow runtime and one trial."""
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}


def _supervise(tuner, handles: list[WorkerHandle], deadline: float, on_trial_end) -> None:
    oracle = tuner.oracle
    released: set[str] = set()
    reported: set[str] = set()
    while True:
        _report_finished(tuner, reported, on_trial_end)
        for handle in handles:
            failure = handle.failure()
            if failure and handle.spec.tuner_id not in released:
                released.add(handle.spec.tuner_id)
                _release(oracle, handle.spec.tuner_id, KT_STATUS.INVALID,
                         f"worker {handle.spec.tuner_id} stopped mid-trial ({failure}); trial queued for a retry")
        if all(handle.done() for handle in handles):
            break
        if time.time() > deadline + GRACE_SECONDS:
            for handle in handles:
                handle.cancel()
            break
        time.sleep(POLL_SECONDS)
    for tuner_id in list(oracle.ongoing_trials):
        _release(oracle, tuner_id, KT_STATUS.FAILED, f"no worker left to finish it (last held by {tuner_id})")
    _report_finished(tuner, reported, on_trial_end)


def _release(oracle, tuner_id: str, status: str, message: str) -> None:
    trial = oracle.ongoing_trials.get(tuner_id)
    if trial is None:
        return
    trial = copy.deepcopy(trial)
    trial.status, trial.message = status, message
    oracle.end_trial(trial)


def _report_finished(tuner, reported: set[str], on_trial_end: TrialHook | None) -> None:
    if on_trial_end is None:
        return
    finished = [t for t in list(tuner.oracle.trials.values())
                if t.status in (KT_STATUS.COMPLETED, KT_STATUS.FAILED) and t.trial_id not in reported]
    if not finished:
        return
    ledger = tuner.ledger.reload()
    for record in ledger.records(finished):
        reported.add(record.trial_id)
        on_trial_end(record, len(tuner.oracle.trials))


def _serve_oracle(oracle, scheduler_address: str | None) -> tuple[grpc.Server, str]:
    """Serve `oracle` on a free port: loopback for a local cluster, all interfaces for remote workers."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_oracle_service(server, oracle)
    if scheduler_address is None:
        port = server.add_insecure_port("127.0.0.1:0")
        host = "127.0.0.1"
    else:
        port = server.add_insecure_port(f"0.0.0.0:{os.environ.get('KERASFLOW_ORACLE_PORT', '0')}")
        host = os.environ.get("KERASFLOW_ORACLE_HOST") or _address_towards(scheduler_address)
    server.start()
    return server, f"{host}:{port}"


def _address_towards(scheduler_address: str) -> str:
    """This machine's IP on the route to the scheduler: the address its workers can reach us at."""
    host = scheduler_address.split("://")[-1].rsplit(":", 1)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))  # UDP connect sends nothing; it only picks the outgoing interface
        return probe.getsockname()[0]


@contextlib.contextmanager
def _worker_environment(spec: WorkerSpec):
    """keras-tuner reads its worker role from these variables when the tuner is built."""
    host, port = spec.oracle.rsplit(":", 1)
    values = {"KERASTUNER_TUNER_ID": spec.tuner_id, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": port}
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _share_inputs(directory: Path, inputs: ModelInputs, prep: Preprocessing) -> None:
    np.savez(directory / INPUTS_FILE, x_train=inputs.x_train, y_train=inputs.y_train, x_val=inputs.x_val,
             y_val=inputs.y_val)
    prep.save(directory / PREPROCESSING_FILE)


def _read_inputs(directory: Path) -> tuple[ModelInputs, Preprocessing]:
    with np.load(directory / INPUTS_FILE) as data:
        empty = data["x_val"][:0]
        inputs = ModelInputs(data["x_train"], data["y_train"], data["x_val"], data["y_val"], empty,
                             data["y_val"][:0])
    return inputs, Preprocessing.load(directory / PREPROCESSING_FILE)


def _write_worker_status(directory: Path, spec: WorkerSpec, devices: str) -> None:
    """workers/<id>.json: which host and process runs each worker (for people, and the kill test)."""
    folder = directory / "workers"
    folder.mkdir(exist_ok=True)
    status = {"tuner_id": spec.tuner_id, "host": socket.gethostname(), "pid": os.getpid(), "devices": devices,
              "started": time.time()}
    (folder / f"{spec.tuner_id}.json").write_text(json.dumps(status))
