"""TFLite variants of one SavedModel: conversion, builtin-op check, LiteRT inference and latency.

Four variants, the usual mobile trade-offs: `float32` (reference), `float16`
(weights in half precision, half the size), `dynamic` (int8 weights, float
activations) and `int8` (weights and activations in int8, calibrated on
representative training samples, `pipelines.export.calibration`; optionally
int8 input/output tensors too).
Every variant is restricted to TFLite builtin ops, and the op list of the
converted flatbuffer is checked again, because a model that needs Flex or
custom ops does not load in a stock LiteRT runtime on a phone.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.errors import ExportError
from pipelines.export.calibration import Calibration
from pipelines.export.rgb import FRONT_NAME, RGB_CHANNELS, as_rgb

VARIANTS = ("float32", "float16", "dynamic", "int8")
TOKEN_IDS_DTYPE = "int32"  # a text-only model's TFLite input: token ids, as MediaPipe Tasks' TextClassifier feeds them
INT8_IO_TOKEN_IDS = ("--int8-io does not apply to a text model: its input holds token ids, which one int8 scale "
                     "would merge; export without --int8-io (the int8 variant keeps the ids exact)")
# Rows per interpreter call when checking a variant on the test split. Wide intermediates outrun the cache in large
# batches: 175 ArrowHead series through a MiniRocket ensemble took 2.8 s in batches of 256, 1.6-1.8 s in batches of
# 32; a digits CNN and a wine MLP took the same at 16 to 256 (2 CPU cores).
PREDICT_BATCH = 32
KERAS_LATENCY_SECONDS = 1.0  # the Keras reference's latency column: eager calls timed for at most this long
# A variant's batch-1 latency: calls timed for at most this long after warm-up (at least 5, at most `runs`). A
# MiniRocket ensemble over 1,460 steps (44 ms a call): 34 calls in 1.5 s, median within 1.5% and p95 within 3% of
# 69 calls' in 3 s, 1.5 s less of each variant's export; a small model reaches its `runs` first.
TFLITE_LATENCY_SECONDS = 1.5
# Untimed calls before the timing, for at most this long (at least one, at most `warmup`): a MiniRocket ensemble
# over 1,460 steps (50 ms a call) spent 2.4 s of four variants' checks on ten each; three timings each, its float32
# median was 38-51 ms after ten and 51-52 ms after this bound's few, int8's 52-54 ms after either.
WARMUP_SECONDS = 0.2
# Interpreter threads when a variant is checked on the test split (not timed): every core. The same outputs bit for
# bit as one thread's (that ensemble, float32 and int8), 5.6 -> 4.4 s for its 100 test series on 2 cores.
CHECK_THREADS = os.cpu_count() or 1
CUSTOM_OPCODE = 32  # BuiltinOperator.CUSTOM: Flex and custom ops carry their name in custom_code


def write_saved_model(model, path: Path, input_shape: list[int]) -> Path:
    """An inference-only endpoint (training=False): what TFLite converts reliably (keras#19108).

    Its batch is free, except for a model with a fused LSTM: the converter fuses only a static batch
    (`models.lstm.export_batch_size`), so that endpoint takes one sample at a time, as a phone does.
    Its input is float32, except for a model whose whole input is token ids (`models.text.reads_token_ids_only`):
    int32 ids, as MediaPipe Tasks' `TextClassifier` feeds them, cast to the Keras model's float input inside the
    graph (under the `tokens` scope, so the int8 variant keeps that cast in float: `PREPROCESSING_NODE`).
    """
    import keras
    import tensorflow as tf

    from models.lstm import export_batch_size
    from models.text import TOKENS_LAYER, reads_token_ids_only

    token_ids = reads_token_ids_only(model)

    def serve(features):
        if token_ids:
            with tf.name_scope(TOKENS_LAYER):
                features = tf.cast(features, tf.float32)
        return model(features, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=serve,
        input_signature=[tf.TensorSpec((export_batch_size(model), *input_shape),
                                       TOKEN_IDS_DTYPE if token_ids else tf.float32, name="features")],
    )
    archive.write_out(str(path), verbose=False)
    return path


def convert(saved_model: Path, variant: str, calibration: Calibration | None = None,
            int8_io: bool = False, sparse: bool = False) -> bytes:
    """Convert the SavedModel's `serve` endpoint to one variant, builtin ops only (`Converter.convert`)."""
    return Converter(saved_model).convert(variant, calibration, int8_io, sparse)


class Converter:
    """The TFLite variants of one SavedModel.

    Its plain float32 conversion is made once and kept (`reference`): it is the float32 variant, and the int8
    variant reads its input dtype and its op names (before they are stripped) from it: an export of float32 and
    int8 converts the plain graph once instead of three times (a MiniRocket ensemble over 1,460 steps: 2-5 s each).
    """

    def __init__(self, saved_model: Path):
        self.saved_model = Path(saved_model)

    @functools.cached_property
    def reference(self) -> bytes:
        return _converter(self.saved_model).convert()

    def convert(self, variant: str, calibration: Calibration | None = None, int8_io: bool = False,
                sparse: bool = False) -> bytes:
        """One variant's flatbuffer.

        The int8 variant is calibrated on `calibration`'s samples (for a bounded time: its `used` then says how
        many); with float I/O it keeps the in-model preprocessing (standardisation, imputation, one-hot) in
        float and quantizes from its output on: quantizing the raw input tensor with one scale for every column
        collapses columns of small range next to large ones (wine's hue next to its proline: 0.58 accuracy
        against 0.97). With int8 I/O the input tensor itself is int8, so everything is quantized.
        `sparse` (a pruned model) stores weights in LiteRT's sparse format where the runtime supports it: the
        converter's own sparsify pass (what `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` runs after conversion),
        applied to the converted file because the selective-quantization debugger rejects that optimization.
        """
        import tensorflow as tf

        if variant not in VARIANTS:
            raise ExportError(f"unknown quantize mode {variant!r}; choose from {', '.join(VARIANTS)}")
        if variant == "float32":
            return _finish(self.reference, sparse)
        converter = _converter(self.saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if variant != "int8":
            return _finish(converter.convert(), sparse)
        if calibration is None or not len(calibration):
            raise ExportError("int8 quantization needs representative training samples; none were given")
        dtype = input_dtype(self.reference)
        if int8_io and np.issubdtype(dtype, np.integer):
            raise ExportError(INT8_IO_TOKEN_IDS)
        converter.representative_dataset = calibration.feed(lambda sample: as_input(sample, dtype))
        if int8_io:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            return _finish(converter.convert(), sparse)
        float_nodes = preprocessing_nodes(self.reference)
        if not float_nodes:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            return _finish(converter.convert(), sparse)
        # Selective quantization (TFLite's documented way): builtin float ops for the preprocessing, int8 after it.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=converter.representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_nodes))
        return _finish(debugger.get_nondebug_quantized_model(), sparse)


def _finish(tflite: bytes, sparse: bool) -> bytes:
    tflite = strip_debug_names(tflite)
    return (sparsified(tflite) or tflite) if sparse else tflite


def sparsified(tflite: bytes) -> bytes | None:
    """The converter's sparse encoding of `tflite`, or None when it stores nothing sparse, is no smaller (small
    tensors: the index arrays cost more than the zeros save), or the stock LiteRT interpreter cannot run it (its
    default XNNPACK delegate refuses sparse int8 FULLY_CONNECTED kernels)."""
    from tensorflow.lite.python.convert import mlir_sparsify

    sparse = mlir_sparsify(tflite)
    if not sparse_tensors(sparse) or len(sparse) >= len(tflite):
        return None
    try:
        model = LiteModel(sparse)
        model.invoke(model.quantize(np.zeros([max(d, 1) for d in model.input.shape], np.float32)))
    except (RuntimeError, ValueError):
        return None
    return sparse


def sparse_tensors(tflite: bytes) -> int:
    """How many tensors a TFLite file stores in the sparse format."""
    return sum(tensor.Sparsity() is not None for tensor in _tensors(tflite))


def _main_graph(tflite: bytes):
    """The flatbuffer's first subgraph (the `serve` signature's), read in place."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.Model.GetRootAsModel(tflite, 0).Subgraphs(0)


def input_dtype(tflite: bytes) -> np.dtype:
    """The numpy dtype of a TFLite file's (first) input tensor."""
    from ai_edge_litert import schema_py_generated as schema

    graph = _main_graph(tflite)
    code = graph.Tensors(graph.Inputs(0)).Type()
    name = next(name for name, value in vars(schema.TensorType).items() if value == code and not name.startswith("_"))
    return np.dtype(name.lower())


def as_input(x: np.ndarray, dtype) -> np.ndarray:
    """`x` (the model's float inputs) as an unquantized input tensor of `dtype`: integers (token ids) rounded."""
    x = np.asarray(x)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return np.ascontiguousarray(np.rint(x), dtype=dtype)
    return np.ascontiguousarray(x, dtype=np.float32)


def _tensors(tflite: bytes):
    graph = _main_graph(tflite)
    return (graph.Tensors(i) for i in range(graph.TensorsLength()))


def _converter(saved_model: Path):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


# Layers kept in float in the int8 variant: the in-model preprocessing ("encode" for tables, "normalize" for images
# and sequences, the RGB front of gray image models), MiniRocket's fixed features ("rocket") and the tree ensembles
# ("trees"): their thresholds on quantized values would flip; and the token ids of text ("tokens": integers up to
# the vocabulary's size, which one int8 scale would merge) with the TF-IDF scores computed from them ("tfidf"), and
# the slice of a text table's other columns ("table_columns"): an op on the raw input left to quantize quantized the
# input itself, token ids too (openintro's birds, 8,659 words: ids gathered out of bounds).
PREPROCESSING_NODE = re.compile(
    rf"(^|/)(encode|normalize|{FRONT_NAME}|rocket|trees|tokens|tfidf|table_columns)(_\d+)?/")


def preprocessing_nodes(tflite: bytes) -> list[str]:
    """Output tensor names of the ops that belong to the in-model preprocessing layers (before names are stripped)."""
    graph = _main_graph(tflite)
    names = []
    for i in range(graph.OperatorsLength()):
        operator = graph.Operators(i)
        for j in range(operator.OutputsLength()):
            name = (graph.Tensors(operator.Outputs(j)).Name() or b"").decode()
            if PREPROCESSING_NODE.search(name):
                names.append(name)
    return list(dict.fromkeys(names))


def strip_debug_names(tflite: bytes) -> bytes:
    """Drop the names of intermediate tensors, keeping input/output names and the `serve` signature.

    The converter names every tensor after its TF graph path; an unrolled LSTM
    has thousands, and their names can be half the file. LiteRT never reads them
    (TFLite's own `strip_strings` tool does the same, but also drops signatures).
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    for subgraph in model.subgraphs:
        keep = {*subgraph.inputs, *subgraph.outputs}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in keep:
                tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def operators(tflite: bytes) -> list[str]:
    """Names of the operators a TFLite flatbuffer uses (custom ops by their custom code)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(tflite, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        opcode = model.OperatorCodes(i)
        code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
        if code == CUSTOM_OPCODE:
            found.add(f"custom:{(opcode.CustomCode() or b'?').decode()}")
        else:
            found.add(names.get(code, f"unknown:{code}"))
    return sorted(found)


def check_builtin_ops(tflite: bytes, what: str) -> list[str]:
    """The op list, or ExportError naming every op a stock LiteRT runtime would not have."""
    ops = operators(tflite)
    foreign = [op for op in ops if op.startswith(("custom:", "unknown:"))]
    if foreign:
        raise ExportError(f"{what} uses ops outside the TFLite builtins: {', '.join(foreign)}; "
                          "a stock LiteRT runtime cannot load it")
    return ops


@dataclass
class TensorSpec:
    """One input or output tensor as the interpreter sees it."""

    name: str
    shape: list[int]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


def variable_tensors(tflite: bytes) -> int:
    """How many tensors LiteRT keeps from one call to the next (a fused LSTM's h and c)."""
    return sum(tensor.IsVariable() for tensor in _tensors(tflite))


class LiteModel:
    """A LiteRT interpreter that takes and returns float arrays, (de)quantizing int8 I/O itself (and rounding
    token ids to an int32 input).

    Gray images given to a file that takes RGB (`pipelines.export.rgb`) are passed as three equal channels.

    A stateful model (a fused LSTM: LiteRT keeps its final h and c as the next call's initial state) has its
    variable tensors reset before every call, so each call sees a fresh sequence, as the Keras model does.
    """

    def __init__(self, tflite: bytes, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.stateful = variable_tensors(tflite) > 0
        self.interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.input, self.output = _spec(self._input), _spec(self._output)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """`x` as the input tensor takes it: float32 (gray images as three equal channels for an RGB input), int32
        token ids (rounded), or quantized int8."""
        x = np.asarray(x)
        if x.ndim == 4 and x.shape[-1] == 1 and self.input.shape[-1] == RGB_CHANNELS:
            x = as_rgb(x)
        if not self.input.quantized:
            return as_input(x, self.input.dtype)
        info = np.iinfo(self.input.dtype)
        q = np.round(np.asarray(x, np.float32) / self.input.scale + self.input.zero_point)
        return np.clip(np.nan_to_num(q, nan=self.input.zero_point), info.min, info.max).astype(self.input.dtype)

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        if not self.output.quantized:
            return y.astype(np.float32)
        return (y.astype(np.float32) - self.output.zero_point) * self.output.scale

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        """Run one already-quantized batch; resizes only when the batch size changes."""
        if tuple(self._input["shape"]) != batch.shape:
            self.interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
        if self.stateful:
            self.interpreter.reset_all_variables()
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    @property
    def batch_size(self) -> int:
        """Rows per call: PREDICT_BATCH, or the batch the model was converted with when it is fixed (fused LSTMs)."""
        fixed = self.input.shape[0]
        return fixed if fixed > 0 else PREDICT_BATCH

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float probabilities for `x`, in batches."""
        step = self.batch_size
        return np.concatenate([self.dequantize(self.invoke(self.quantize(x[i:i + step])))
                               for i in range(0, len(x), step)])


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(name=str(detail["name"]), shape=[int(d) for d in detail["shape_signature"]],
                      dtype=np.dtype(detail["dtype"]).name, scale=float(scale), zero_point=int(zero_point))


@dataclass
class Latency:
    """Batch-1 wall time per call, warm-up excluded."""

    median_ms: float
    p95_ms: float
    runs: int


def measure_latency(call: Callable[[], object], max_seconds: float, runs: int = 100, warmup: int = 10) -> Latency:
    """Median and p95 of `call()`: `runs` calls, or fewer once `max_seconds` have passed (a slow model), but ≥ 5;
    after `warmup` untimed calls, or fewer once `WARMUP_SECONDS` have passed, but ≥ 1."""
    started = time.perf_counter()
    for _ in range(warmup):
        call()
        if time.perf_counter() - started >= WARMUP_SECONDS:
            break
    times, started = [], time.perf_counter()
    while len(times) < runs and (len(times) < 5 or time.perf_counter() - started < max_seconds):
        tick = time.perf_counter()
        call()
        times.append((time.perf_counter() - tick) * 1000)
    return Latency(median_ms=statistics.median(times), p95_ms=float(np.percentile(times, 95)), runs=len(times))


def tflite_latency(tflite: bytes, sample: np.ndarray, runs: int = 100) -> Latency:
    """One thread, as on a phone's single big core; the input is prepared once, outside the timing."""
    model = LiteModel(tflite, num_threads=1)
    batch = model.quantize(sample[:1])
    return measure_latency(lambda: model.invoke(batch), runs=runs, max_seconds=TFLITE_LATENCY_SECONDS)


def keras_latency(model, sample: np.ndarray, runs: int = 100) -> Latency:
    """Keras `model(x)` on one sample: the eager call an app developer would try first. An eager call traces
    nothing, so one call warms it up, and `KERAS_LATENCY_SECONDS` bound the timing (a MiniRocket ensemble's call
    takes half a second: ten warm-up calls and three seconds were 9 s of a 1-minute run's export)."""
    x = np.ascontiguousarray(sample[:1], dtype=np.float32)
    return measure_latency(lambda: model(x, training=False), runs=runs, warmup=1, max_seconds=KERAS_LATENCY_SECONDS)


@dataclass
class Footprint:
    """What an architecture costs on a phone once quantized: int8 file size and batch-1 latency."""

    int8_kb: float
    latency_ms: float


def int8_footprint(model, input_shape: list[int], representative: np.ndarray, runs: int = 30) -> Footprint:
    """Convert an (untrained) model to int8 and time it: size and latency depend on the architecture, not the weights."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kerasflow-footprint-") as folder:
        saved_model = write_saved_model(model, Path(folder) / "saved_model", input_shape)
        tflite = convert(saved_model, "int8", Calibration(representative))
    latency = tflite_latency(tflite, representative, runs=runs)
    return Footprint(int8_kb=len(tflite) / 1024, latency_ms=latency.median_ms)
