"""The GPU path: off and harmless on CPU, and what it builds when forced or when a GPU is there."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines.devices import DeviceOptions, DeviceSetup, configure, fit_inputs, using, validation_inputs
from pipelines.finetune import fine_tune
from pipelines.load import load_path, split_dataset
from pipelines.preprocess import fit_preprocessing, model_inputs

pytestmark = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="checks the CPU-only defaults")


def test_defaults_on_cpu_change_nothing():
    with using(DeviceOptions()) as setup:
        assert setup.gpus == [] and not setup.mixed_precision and setup.strategy == "default"
        assert keras.mixed_precision.global_policy().name == "float32"
        x, y = np.zeros((10, 3), np.float32), np.zeros(10, np.int64)
        assert fit_inputs(x, y, 4, setup, shuffle=True, seed=0)["x"] is x
        assert validation_inputs(x, y, 4, setup)[0] is x
    assert "float32" in setup.describe() and "CPU" in setup.describe()


def test_mirrored_without_gpus_falls_back_and_says_why():
    with using(DeviceOptions(strategy="mirrored")) as setup:
        assert setup.strategy == "default"
        assert any("needs 2+ GPUs, found 0" in note for note in setup.notes)


def test_gpu_input_pipeline_is_cached_batched_and_prefetched():
    setup = DeviceSetup(gpus=["/physical_device:GPU:0"], mixed_precision=True, jit_compile="auto", strategy="default")
    x, y = np.arange(30, dtype=np.float32).reshape(10, 3), np.arange(10)
    data = fit_inputs(x, y, 4, setup, shuffle=True, seed=0)["x"]
    assert "batch_size" not in fit_inputs(x, y, 4, setup, shuffle=True, seed=0)
    assert data.cardinality().numpy() == math.ceil(10 / 4)
    assert "Prefetch" in type(data).__name__
    seen = np.concatenate([batch_y.numpy() for _, batch_y in data])
    assert sorted(seen.tolist()) == list(range(10)), "every sample once per epoch, shuffled"


def test_forced_mixed_precision_trains_in_float16_and_saves_a_float32_model(image_folder, tmp_path):
    splits = split_dataset(load_path(image_folder, None), None, test_fraction=0.2, val_fraction=0.2, seed=0)
    prep = fit_preprocessing(splits)
    inputs = model_inputs(splits, prep)
    values = {"family": "dense", "dense_layers": 1, "dense_units_0": 32, "dropout": 0.0, "learning_rate": 1e-3}
    with using(DeviceOptions(mixed_precision="on")) as setup:
        assert setup.mixed_precision and keras.mixed_precision.global_policy().name == "mixed_float16"
        result = fine_tune(inputs, prep, values, tmp_path / "model.keras", max_epochs=2, batch_size=8, seed=0,
                           devices=setup)
    assert keras.mixed_precision.global_policy().name == "float32", "the policy is restored after the run"
    model = keras.models.load_model(result.model_path)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    probabilities = model.predict(inputs.x_test, verbose=0)
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert np.isfinite(result.history["loss"]).all()


def test_a_worker_gets_its_share_of_the_cpu_threads():
    """In a fresh process, as a Dask worker would be: TensorFlow's thread pools are set before they start."""
    code = ("import json, tensorflow as tf; from pipelines.devices import DeviceOptions, configure; "
            "s = configure(DeviceOptions(), worker=1, workers=2); "
            "print(json.dumps([s.cpu_threads, tf.config.threading.get_intra_op_parallelism_threads(), s.notes]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    threads, intra, notes = json.loads(out.stdout.strip().splitlines()[-1])
    assert threads == intra == max(1, (os.cpu_count() or 1) // 2) and notes == []


def test_configure_outside_a_run_reports_the_choice():
    setup = configure(DeviceOptions(xla="off"))
    try:
        assert setup.jit_compile is False and "XLA False" in setup.describe()
    finally:
        keras.mixed_precision.set_global_policy("float32")
