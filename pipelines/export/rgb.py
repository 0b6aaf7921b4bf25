"""The RGB front: every exported image model takes RGB pixels, as mobile clients (MediaPipe's ImageClassifier) give.

A model trained on gray images (one channel) is wrapped at export time, and
only there: `[1, H, W, 3]` RGB pixels go through `models.layers.GrayFromRgb`
(the luma weights PIL uses when it reads a gray file) into the trained model
unchanged. Training, `finetuned.keras` and `model.keras` keep the gray input;
the .tflite files and their SavedModel take RGB. Gray samples (the test split,
the int8 calibration samples, `kerasflow predict` on a variant) are given to the
file as three equal channels, which the front turns back into the same gray.

`prep` below is a `pipelines.preprocess.Preprocessing`; this module imports nothing of
pipelines, so that `pipelines.export.tflite` (which `pipelines.config` imports) can use it.
"""

from __future__ import annotations

import numpy as np

RGB_CHANNELS = 3
FRONT_NAME = "to_gray"  # kept in float by the int8 variant (`pipelines.export.tflite.PREPROCESSING_NODE`)


def has_front(prep) -> bool:
    """Whether the exported file gets the RGB front: an image model trained on gray pixels."""
    return prep.kind == "image" and prep.input_shape[-1] != RGB_CHANNELS


def file_input_shape(prep) -> list[int]:
    """One sample's shape as the exported .tflite file takes it."""
    return [*prep.input_shape[:-1], RGB_CHANNELS] if has_front(prep) else list(prep.input_shape)


def client_model(model, prep):
    """`model` behind the RGB front when it was trained on gray images, else `model` itself."""
    if not has_front(prep):
        return model
    import keras

    from models.layers import GrayFromRgb

    rgb = keras.Input(file_input_shape(prep), name="image")
    return keras.Model(rgb, model(GrayFromRgb(name=FRONT_NAME)(rgb)), name=f"{model.name}_rgb")


def as_rgb(x: np.ndarray) -> np.ndarray:
    """Gray samples [..., 1] as three equal channels [..., 3]; the RGB front maps them back to the same gray."""
    return np.repeat(np.asarray(x), RGB_CHANNELS, axis=-1)


def file_samples(x: np.ndarray, prep) -> np.ndarray:
    """Model-input samples as the exported file takes them (gray images as RGB when the file has the front)."""
    return as_rgb(x) if has_front(prep) else x
