"""An LSTM layer that the TFLite converter fuses into its builtin `UNIDIRECTIONAL_SEQUENCE_LSTM`.

Keras 3's `keras.layers.LSTM` is not fused by the converter (tensorflow#73254):
unrolled it becomes ~30 ops per time step, and its int8 file is larger than
its float one. The converter still fuses what Keras 2 produced: a
`tf.function` carrying the attribute `api_implements="lstm_<id>"` (plus
`time_major` and `go_backwards`) whose arguments follow Keras 2's
`standard_lstm` (input, init_h, init_c, kernel, recurrent_kernel, bias) and
which returns five results (last output, all outputs, h, c, runtime);
`ConvertKerasLSTMLayer` in tensorflow's `compiler/mlir/lite/utils/lstm_utils.cc`
replaces its body by the fused op (`tf_keras/layers/rnn/gru_lstm_utils.py` is
how Keras 2 produced it). Two conditions, from `CheckFusableKerasLstm`: only the
first two results may be used, and the batch size must be static, so a model
holding this layer is exported with a batch-1 endpoint (`export_batch_size`).
The fused op keeps its final state in variable tensors that LiteRT carries
into the next call, so every caller resets them first
(`pipelines.export.tflite.LiteModel`; `model_spec.json` tells the app).

The function body is the standard LSTM recurrence (gates i, f, c, o;
sigmoid and tanh; Keras's weight layout), run by `tf.scan`: it trains as any
Keras layer, and the converter never sees it.
"""

from __future__ import annotations

import uuid

import keras
import tensorflow as tf

from models.layers import all_layers

FUSED_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"


def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
    """Keras 2's `standard_lstm` contract, batch-major: (last output, outputs, h, c, runtime)."""
    steps = tf.transpose(inputs, [1, 0, 2])

    def step(carry, x_t):
        h, c = carry
        z = tf.matmul(x_t, kernel) + tf.matmul(h, recurrent_kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    hs, cs = tf.scan(step, steps, initializer=(init_h, init_c))
    outputs = tf.transpose(hs, [1, 0, 2])
    return outputs[:, -1], outputs, hs[-1], cs[-1], tf.constant(0.0, dtype=inputs.dtype)


def composite_lstm():
    """A fresh `standard_lstm` function marked for the converter's fusion."""
    return tf.function(standard_lstm, autograph=False, experimental_attributes={
        "api_implements": f"lstm_{uuid.uuid4().hex}", "api_preferred_device": "CPU",
        "time_major": False, "go_backwards": False})


@keras.saving.register_keras_serializable(package="kerasflow")
class FusedLSTM(keras.layers.Layer):
    """`keras.layers.LSTM(units, return_sequences=...)` (tanh, sigmoid gates, unit forget bias) that TFLite fuses."""

    def __init__(self, units: int, return_sequences: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.return_sequences = bool(return_sequences)

    def build(self, input_shape):
        units = self.units
        self.kernel = self.add_weight((input_shape[-1], 4 * units), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight((units, 4 * units), initializer="orthogonal", name="recurrent_kernel")
        self.bias = self.add_weight((4 * units,), initializer=_unit_forget_bias, name="bias")

    def call(self, inputs):
        zeros = tf.zeros((tf.shape(inputs)[0], self.units), dtype=inputs.dtype)
        # Each graph (a training step, a predict step, an export endpoint) gets its own marked function, traced for
        # its own shapes: one function shared by all of them reused a batch-1 trace for other batch sizes.
        # Eager calls need no marker and run the recurrence directly.
        lstm = standard_lstm if tf.executing_eagerly() else composite_lstm()
        # Tensors, not variables: a variable would reach the function as a rank-0 resource and defeat the fusion.
        last, outputs, _, _, _ = lstm(inputs, zeros, zeros, tf.convert_to_tensor(self.kernel),
                                      tf.convert_to_tensor(self.recurrent_kernel), tf.convert_to_tensor(self.bias))
        return outputs if self.return_sequences else last

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "return_sequences": self.return_sequences}


def _unit_forget_bias(shape, dtype=None):
    """Keras's `unit_forget_bias=True`: the forget gate starts open (Jozefowicz et al. 2015)."""
    units = shape[0] // 4
    return tf.concat([tf.zeros(units), tf.ones(units), tf.zeros(2 * units)], axis=0)


def export_batch_size(model) -> int | None:
    """1 when the model holds a fused LSTM (the converter fuses only a static batch), else None (any batch)."""
    return 1 if any(isinstance(layer, FusedLSTM) for layer in all_layers(model)) else None
