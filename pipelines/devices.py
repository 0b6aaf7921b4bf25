"""Where training runs: GPU settings when GPUs exist, a CPU thread share when they do not.

Everything here is decided once per process, before TensorFlow creates its
runtime, and the defaults are inert on a CPU-only machine: mixed precision
and tf.data input pipelines switch on only when a GPU is visible, XLA is
left to Keras unless asked, and `mirrored` falls back to the default
strategy (with a note) when there is no second device to mirror onto.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field

import keras
import numpy as np
import tensorflow as tf

from pipelines.config import DeviceOptions, Strategy, Switch


@dataclass
class DeviceSetup:
    """What this process ended up with; shown in logs and the report.

    Attributes:
        gpus: names of the GPUs this process trains on (empty: CPU).
        mixed_precision: whether layers compute in float16.
        jit_compile: passed to `Model.compile` (`"auto"` leaves XLA to Keras).
        strategy: the distribution strategy in use after any fallback.
        cpu_threads: intra-op threads of a CPU search worker (None: TensorFlow's default).
        notes: what was asked but could not be done, for the report.
    """

    gpus: list[str]
    mixed_precision: bool
    jit_compile: bool | str
    strategy: Strategy
    cpu_threads: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def use_gpu(self) -> bool:
        return bool(self.gpus)

    def describe(self) -> str:
        where = ", ".join(self.gpus) if self.gpus else f"CPU ({self.cpu_threads or os.cpu_count()} threads)"
        parts = [where, "mixed precision" if self.mixed_precision else "float32",
                 f"XLA {self.jit_compile}", f"strategy {self.strategy}", *self.notes]
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def configure(options: DeviceOptions, worker: int | None = None, workers: int = 1) -> DeviceSetup:
    """Apply `options` to this process; `worker` (0-based) of `workers` pins one GPU or a share of the CPU threads."""
    notes: list[str] = []
    gpus = tf.config.list_physical_devices("GPU")
    threads = None
    if worker is not None and gpus:
        gpus = [_pin_gpu(gpus, worker, notes)]
    elif worker is not None:
        threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
        _share_cpu(threads, notes)
    if gpus and options.memory_growth:
        _grow_memory(gpus, notes)
    mixed = _resolve(options.mixed_precision, bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    strategy = options.strategy
    if strategy == "mirrored" and len(gpus) < 2:
        notes.append(f"--strategy mirrored needs 2+ GPUs, found {len(gpus)}: default strategy used")
        strategy = "default"
    jit = {"auto": "auto", "on": True, "off": False}[options.xla]
    return DeviceSetup([g.name for g in gpus], mixed, jit, strategy, threads, notes)


@contextlib.contextmanager
def using(options: DeviceOptions, worker: int | None = None, workers: int = 1):
    """`configure` for the length of a run; the global dtype policy is restored after it."""
    previous = keras.mixed_precision.global_policy()
    try:
        yield configure(options, worker, workers)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def distribution_strategy(setup: DeviceSetup) -> tf.distribute.Strategy | None:
    """A `MirroredStrategy` over this process's GPUs (one trial spread over all of them), else None."""
    return tf.distribute.MirroredStrategy() if setup.strategy == "mirrored" else None


def strategy_scope(setup: DeviceSetup | None):
    strategy = distribution_strategy(setup) if setup else None
    return strategy.scope() if strategy else contextlib.nullcontext()


def fit_inputs(x: np.ndarray, y: np.ndarray, batch_size: int, setup: DeviceSetup | None, *, shuffle: bool,
               seed: int) -> dict:
    """`model.fit` keyword arguments for (x, y): a cached, prefetched tf.data pipeline on GPU, arrays on CPU."""
    if setup is None or not setup.use_gpu:
        return {"x": x, "y": y, "batch_size": batch_size}
    data = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return {"x": data.batch(batch_size).prefetch(tf.data.AUTOTUNE)}


def validation_inputs(x: np.ndarray, y: np.ndarray, batch_size: int, setup: DeviceSetup | None):
    if setup is None or not setup.use_gpu:
        return (x, y)
    return tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(batch_size).prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def float32_policy():
    """Build models in float32 whatever the global policy: exports must not carry float16 casts."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _resolve(switch: Switch, gpu: bool) -> bool:
    return gpu if switch == "auto" else switch == "on"


def _pin_gpu(gpus, worker: int, notes: list[str]):
    gpu = gpus[worker % len(gpus)]
    try:
        tf.config.set_visible_devices([gpu], "GPU")
    except RuntimeError as exc:  # the runtime already started in this process (a reused Dask worker)
        notes.append(f"could not pin {gpu.name}: {exc}")
    return gpu


def _share_cpu(threads: int, notes: list[str]) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError as exc:
        notes.append(f"could not limit CPU threads to {threads}: {exc}")


def _grow_memory(gpus, notes: list[str]) -> None:
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:
            notes.append(f"memory growth not set on {gpu.name}: {exc}")
