"""A compiled model's training state made before `fit` traces its train step, so the step is traced once.

Keras 3 on TensorFlow, with no distribution strategy, makes the optimizer's
variables (Adam's moments) and the compiled metrics' (accuracy's total and
count) inside the first trace of the train step (`_maybe_symbolic_build`:
"defer building to when the train/test/predict function gets traced"), and
a `tf.function` whose first trace made variables is traced again without
them (tensorflow#48851): every fresh model's first `fit` traced its train
step twice. On 2 CPU cores the first batch of a search trial's five fold
towers (a fully convolutional network on 50 series of 150 steps) took 7.3 s,
then 3.7 s with the state made first (GunPoint's whole trial, 47 epochs:
20.5 -> 15.8 s). Under a distribution strategy Keras makes it before the trace
itself, and this leaves it to Keras.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def build_training_state(model: keras.Model, x=None, y=None) -> keras.Model:
    """`model` (compiled) with its optimizer's variables made for its trainable variables and, given a few rows
    of its training arrays `x` and `y`, its compiled metrics' (updated on them once, then reset). Call it just
    before `fit`, once the trainable variables are those `fit` trains. What is already built is left as it is."""
    if tf.distribute.has_strategy():
        return model
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    unbuilt = [metric for metric in model.metrics if not getattr(metric, "built", True)]  # `CompileMetrics`
    if unbuilt and isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        model.compute_metrics(x[:1], y[:1], model(x[:1], training=False))
        for metric in unbuilt:
            metric.reset_state()
    return model
