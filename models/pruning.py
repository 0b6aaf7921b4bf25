"""Magnitude pruning for Keras 3 models: a callback that zeroes the smallest weights during training.

Keras 3 has no pruning API, and tensorflow-model-optimization prunes only
`tf_keras` models, so this is the small version of its `prune_low_magnitude`:
every kernel (a trainable weight of rank 2 or more: dense, convolution and LSTM
kernels; biases and normalisation scales are left alone) keeps a mask. While
the model trains, the mask's share of zeros rises along the cubic schedule of
Zhu & Gupta (2017), "To prune, or not to prune", from 0 to the target over the
first `RAMP_SHARE` of the steps; the remaining steps let the kept weights
recover. After every batch the masked weights are set back to zero, so the
optimiser cannot revive them, and at the end of training each kernel is at the
target sparsity exactly.
"""

from __future__ import annotations

import keras
import numpy as np

RAMP_SHARE = 0.7  # of the training steps spent raising sparsity; the rest recover at the target
MASK_EVERY = 10  # steps between mask updates while sparsity rises (masks are applied after every step)


def prunable_weights(model: keras.Model) -> list:
    """The kernels pruning acts on: trainable weights of rank >= 2."""
    return [w for w in model.trainable_weights if len(w.shape) >= 2]


def sparsity(model: keras.Model) -> float:
    """Share of exact zeros among the prunable weights (0 when there are none)."""
    weights = [np.asarray(w) for w in prunable_weights(model)]
    total = sum(w.size for w in weights)
    return float(sum(np.sum(w == 0) for w in weights) / total) if total else 0.0


def scheduled_sparsity(target: float, step: int, ramp_steps: int) -> float:
    """Zhu & Gupta's cubic schedule: fast at first, gentle near the target, which is reached at `ramp_steps`."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return target
    return target * (1 - (1 - step / ramp_steps) ** 3)


def magnitude_mask(weight: np.ndarray, share: float) -> np.ndarray:
    """1 for the weights kept, 0 for the `share` of smallest magnitudes (ties broken by position)."""
    flat = np.abs(weight).ravel()
    dropped = int(round(share * flat.size))
    mask = np.ones(flat.size, dtype=weight.dtype)
    if dropped:
        mask[np.argpartition(flat, dropped - 1)[:dropped]] = 0
    return mask.reshape(weight.shape)


class MagnitudePruning(keras.callbacks.Callback):
    """Prune `target` of every kernel's weights over `total_steps` training steps (see the module docstring)."""

    def __init__(self, target: float, total_steps: int):
        super().__init__()
        if not 0 < target < 1:
            raise ValueError(f"target sparsity must be between 0 and 1, got {target}")
        self.target = target
        self.total_steps = max(1, int(total_steps))
        self.ramp_steps = int(RAMP_SHARE * self.total_steps)
        self.step = 0
        self.masks: list[np.ndarray] = []

    def on_train_begin(self, logs=None):
        self.kernels = prunable_weights(self.model)
        self._update_masks(scheduled_sparsity(self.target, 0, self.ramp_steps))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step <= self.ramp_steps and self.step % MASK_EVERY == 0:
            self._update_masks(scheduled_sparsity(self.target, self.step, self.ramp_steps))
        self._apply()

    def on_train_end(self, logs=None):
        self._update_masks(self.target)

    def _update_masks(self, share: float) -> None:
        self.masks = [magnitude_mask(np.asarray(w), share) for w in self.kernels]
        self._apply()

    def _apply(self) -> None:
        for weight, mask in zip(self.kernels, self.masks):
            weight.assign(np.asarray(weight) * mask)
