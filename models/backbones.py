"""The Keras application backbones an image search may start from, by name: pure data, no Keras import.

The names are a configuration choice (`--backbone`), so the CLI and `TrainConfig` read them here without loading
Keras; `models.transfer` builds the backbone. Weights are read from a local file, never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    """A Keras application usable as an image base: its constructor, the input it expects and its input range."""

    constructor: str
    sides: tuple[int, ...]  # input sides it was trained at; the smallest one not below the image is used
    scale: float  # pixels in [0, 255] -> the application's input: x * scale + offset
    offset: float
    options: tuple[tuple[str, object], ...] = ()  # constructor arguments beyond the common ones


BACKBONES = {
    # MobileNetV3 rescales 0-255 pixels itself (include_preprocessing); MobileNetV2 takes [-1, 1]
    "mobilenet_v3_small": Backbone("MobileNetV3Small", (96, 128, 160, 192, 224), 1.0, 0.0,
                                   (("include_preprocessing", True),)),
    "mobilenet_v3_large": Backbone("MobileNetV3Large", (96, 128, 160, 192, 224), 1.0, 0.0,
                                   (("include_preprocessing", True),)),
    "mobilenet_v2": Backbone("MobileNetV2", (96, 128, 160, 192, 224), 1 / 127.5, -1.0),
}
