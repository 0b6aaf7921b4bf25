"""What an export writes and measures: the samples it is checked on, and one report per TFLite variant."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipelines.export.tflite import TensorSpec
from pipelines.preprocess import ModelInputs

REPRESENTATIVE_SAMPLES = 200


@dataclass
class ExportData:
    """The samples an export is checked and calibrated on, kept as `export_inputs.npz` for re-exports.

    Attributes:
        x_test, y_test: the test split as model inputs and class indices (parity is measured on it).
        x_representative: up to 200 training samples that calibrate the int8 variant (as many as
            `pipelines.export.calibration` has time for).
        feature_min, feature_max: the training value range per column (tables) or last-axis channel.
    """

    x_test: np.ndarray
    y_test: np.ndarray
    x_representative: np.ndarray
    feature_min: np.ndarray
    feature_max: np.ndarray

    @classmethod
    def from_inputs(cls, inputs: ModelInputs, seed: int = 0) -> "ExportData":
        """Representative samples are drawn from the training split only."""
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(inputs.x_train), min(REPRESENTATIVE_SAMPLES, len(inputs.x_train)), replace=False)
        per_feature = inputs.x_train.reshape(-1, inputs.x_train.shape[-1])
        return cls(inputs.x_test, inputs.y_test, inputs.x_train[np.sort(picked)],
                   np.nanmin(per_feature, axis=0), np.nanmax(per_feature, axis=0))

    def save(self, path: Path) -> Path:
        np.savez_compressed(path, **asdict(self))
        return path

    @classmethod
    def load(cls, path: Path) -> "ExportData":
        with np.load(path) as saved:
            return cls(**{name: saved[name] for name in cls.__dataclass_fields__})


TRAINED_MODEL = "trained model"  # the source of the plain variants; compressed ones describe their own


@dataclass
class VariantReport:
    """One TFLite variant: file, tensors, parity on the test split, latency, verdict.

    Attributes:
        variant: float32, float16, dynamic or int8; file, bytes, sha256: the .tflite file.
        operators: the builtin ops it uses; input, output: its tensors as the interpreter sees them.
        accuracy, macro_f1: on the test split; accuracy_drop: the Keras model's accuracy minus this one's.
        label_agreement: share of test samples labelled as the Keras model labels them.
        max_probability_difference: largest gap to the Keras model's probabilities.
        latency_median_ms, latency_p95_ms: batch-1, one thread.
        within_tolerance: accuracy_drop is at most the tolerance; recommended: the one to ship.
        stateful: it keeps tensors between calls (a fused LSTM's state), so an app resets them before each call.
        source: the Keras model it was converted from (the trained model, or a pruned or distilled one);
        sparsity: a pruned model's share of zero kernel weights; gzip_bytes: the file gzipped, as downloads are.
        calibration_samples: how many training samples calibrated an int8 variant's ranges (None for the others).
    """

    variant: str
    file: str
    bytes: int
    sha256: str
    operators: list[str]
    input: TensorSpec
    output: TensorSpec
    accuracy: float
    macro_f1: float
    accuracy_drop: float
    label_agreement: float
    max_probability_difference: float
    latency_median_ms: float
    latency_p95_ms: float
    within_tolerance: bool
    recommended: bool = False
    stateful: bool = False
    source: str = TRAINED_MODEL
    sparsity: float | None = None
    gzip_bytes: int | None = None
    calibration_samples: int | None = None


@dataclass
class KerasReference:
    """The Keras model every variant is compared with: test scores, batch-1 latency and file size."""

    accuracy: float
    macro_f1: float
    latency_median_ms: float
    latency_p95_ms: float
    bytes: int


@dataclass
class ExportResult:
    """What an export wrote and measured.

    Attributes:
        directory: the export folder; files: file name -> path of everything in it.
        keras: the reference scores; variants: one report per TFLite variant, in `VARIANTS` order.
        tolerance: the largest accuracy drop a recommended variant may show; int8_io: int8 input/output tensors.
    """

    directory: Path
    files: dict[str, str]
    keras: KerasReference
    variants: list[VariantReport]
    tolerance: float
    int8_io: bool

    @property
    def recommended(self) -> VariantReport | None:
        return next((v for v in self.variants if v.recommended), None)

    @property
    def stateful(self) -> bool:
        """Whether any variant keeps state between calls (a fused LSTM), so an app resets it before each call."""
        return any(v.stateful for v in self.variants)

    def variant(self, name: str) -> VariantReport:
        return next(v for v in self.variants if v.variant == name)

    def summary(self) -> dict:
        """JSON-able: the folder, the recommended variant, and every variant's numbers (tensors left out)."""
        recommended = self.recommended
        return {"directory": str(self.directory), "recommended": recommended.variant if recommended else None,
                "keras": asdict(self.keras),
                "variants": [{k: v for k, v in asdict(variant).items() if k not in ("input", "output", "operators")}
                             for variant in self.variants]}
