"""What a mobile app needs beside the model: `model_spec.json` (tensors, quantization, labels) and MODEL_CARD.md.

The spec is read from the interpreter's own tensor details, so what it says
about shapes, dtypes and int8 scale/zero-point is what the app will meet.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.columns import CLOCK_MEANING, DATE_PARTS_MEANING, ColumnRole, date_part_names, from_json
from pipelines.export.records import TRAINED_MODEL, ExportData, ExportResult
from pipelines.export.rgb import file_input_shape, has_front
from pipelines.export.tflite import TOKEN_IDS_DTYPE
from pipelines.load import LENGTH_RULE, SEQUENCE_FORMAT
from pipelines.preprocess import Preprocessing
from pipelines.text.tokenizer import PAD_ID, START_ID, UNKNOWN_ID

NORMALISATION = {
    "image": "per-channel standardisation (x - mean) / sqrt(variance) with training statistics; feed raw pixel values",
    "sequence": "per-feature standardisation (x - mean) / sqrt(variance) with training statistics; feed raw values",
    "table": "numeric columns standardised with training mean/variance, NaN imputed with the mean, category codes "
             "one-hot encoded; feed raw numbers and category codes (see preprocessing.json vocabularies) and each text "
             "column's token ids (input.text: the tokenizer's rule and vocabulary)",
}
UNNAMED = "kerasflow model"  # a model exported without card facts
DEFAULT_LICENCE = "The terms of the training data apply; kerasflow grants no licence of its own."
INTENDED_USE = ("On-device classification of inputs like the training data, in the same units and layout. "
                "Outputs are softmax probabilities over labels.json, in that order.")


@dataclass
class CardFacts:
    """Facts about the run that the model card states; saved as `card.json` for re-exports.

    Attributes:
        model_name, source, family: what was trained on what, with which architecture family.
        split_sizes: rows per split; test_metrics: the headline scores; per_class: precision/recall/F1/support.
        trained_at: UTC time of training; data_notes: what loading changed (resizing, padding, ...).
        pretrained: the pretrained bases it started from (`pipelines.transfer.describe_lineage`); "" if none.
        licence: the terms the model is shared under (in the card and the .tflite metadata).
    """

    model_name: str
    source: str
    family: str
    split_sizes: dict[str, int]
    test_metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    trained_at: str
    data_notes: list[str] = field(default_factory=list)
    pretrained: str = ""
    licence: str = DEFAULT_LICENCE

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "CardFacts":
        return cls(**json.loads(Path(path).read_text()))


def input_layout(prep: Preprocessing) -> str:
    if prep.kind == "table":
        length = prep.tokenizer["length"] if prep.tokenizer else 0
        columns = [*prep.numeric_columns, *(f"{c} (category code)" for c in prep.categorical_columns),
                   *(f"{c} ({length} token ids, input.text)" for c in prep.text_columns)]
        return "one row: " + ", ".join(columns)
    if prep.kind == "image":
        height, width, channels = file_input_shape(prep)
        gray = ("; the model was trained on gray images and converts RGB to gray itself (luma 0.299 R + 0.587 G + "
                "0.114 B, as PIL reads gray files)") if has_front(prep) else ""
        return f"one RGB image: {height} x {width} x {channels} pixel values{gray}"
    return f"one sequence: time steps x features; {LENGTH_RULE}"


def text_input(prep: Preprocessing) -> dict:
    """How an app turns each text column into the model's token ids: the rule, its parts and the vocabulary."""
    tokenizer = prep.tokenizer
    return {"columns": prep.text_columns, "first_index": prep.text_start, "length": tokenizer["length"],
            "rule": tokenizer["rule"], "lowercase": tokenizer["lowercase"],
            "split_pattern": tokenizer["split_pattern"], "pad_id": PAD_ID, "start_id": START_ID,
            "unknown_id": UNKNOWN_ID, "vocabulary": tokenizer["vocabulary"],
            "fed_as": (f"{TOKEN_IDS_DTYPE} ids: the whole input row" if prep.token_ids_only else
                       "float32 values of the ids (exact integers), in the input row after the other columns")}


def sequence_input(prep: Preprocessing) -> dict:
    """A sequence model's length, feature count and `LENGTH_RULE`, so that an app fits its inputs the same way."""
    length, features = prep.input_shape
    return {"length": length, "features": features, "rule": LENGTH_RULE, "file_format": SEQUENCE_FORMAT}


def column_roles(prep: Preprocessing) -> dict:
    """Each table column's role and why, and how a date or clock column becomes numbers (`pipelines.columns`)."""
    saved = from_json(prep.roles)
    roles = {name: {"role": r.role, "why": r.why} for name, r in saved.items()}
    dates = [name for name, r in saved.items() if r.role == ColumnRole.DATE]
    for name in dates:
        roles[name]["fed_as"] = [f"{name}.{part}" for part in date_part_names(saved[name])]
    for name in (name for name, r in saved.items() if r.role == ColumnRole.CLOCK):
        roles[name]["fed_as"] = CLOCK_MEANING
    return {"roles": roles, **({"date_parts": DATE_PARTS_MEANING} if dates else {})}


STATE_RESET = ("LiteRT keeps the fused LSTM state of the variants marked stateful from one call to the next: reset "
               "it before every call (Java/Kotlin Interpreter.resetVariableTensors(), C++ "
               "Interpreter::ResetVariableTensors(), Python Interpreter.reset_all_variables()), and feed one "
               "sequence per call")


def spec(result: ExportResult, prep: Preprocessing, data: ExportData) -> dict:
    """JSON-able description of the model's input and output and of every variant's tensors."""
    batch = 1 if result.stateful else -1
    return {
        "labels": prep.class_names,
        **({"before_each_call": STATE_RESET} if result.stateful else {}),
        "input": {
            "name": "features",
            "shape": [batch, *file_input_shape(prep)],
            "dtype": TOKEN_IDS_DTYPE if prep.token_ids_only else "float32",
            "layout": input_layout(prep),
            "training_value_range": {"min": data.feature_min.tolist(), "max": data.feature_max.tolist(),
                                     "per": "column" if prep.kind == "table" else "channel/feature (last axis)"},
            "normalisation_inside_model": NORMALISATION[prep.kind],
            "vocabularies": prep.vocabularies,
            **({"columns": column_roles(prep)} if prep.roles else {}),
            **({"sequence": sequence_input(prep)} if prep.kind == "sequence" else {}),
            **({"text": text_input(prep)} if prep.text_columns else {}),
        },
        "output": {"shape": [batch, len(prep.class_names)], "meaning": "softmax probabilities in labels.json order"},
        "keras": asdict(result.keras),
        "tolerance": result.tolerance,
        "recommended": result.recommended.variant if result.recommended else None,
        "variants": {v.variant: {**asdict(v), "input": _tensor(v.input), "output": _tensor(v.output)}
                     for v in result.variants},
    }


def _tensor(t) -> dict:
    tensor = {"name": t.name, "shape": t.shape, "dtype": t.dtype}
    if t.quantized:
        tensor["quantization"] = {"scale": t.scale, "zero_point": t.zero_point,
                                  "real_value": "(q - zero_point) * scale"}
    return tensor


def write_spec(result: ExportResult, prep: Preprocessing, data: ExportData, path: Path) -> Path:
    path.write_text(json.dumps(spec(result, prep, data), indent=2))
    return path


def variant_table(result: ExportResult) -> list[str]:
    """Markdown rows: Keras, then each TFLite variant, the verdict first; shared by the model card and report.md."""
    k = result.keras
    rows = [
        "| verdict | model | file | KiB | gzip KiB | accuracy | Δ acc. (pt) | macro-F1 | agreement | max Δp | ms p50 "
        "| ms p95 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| reference | Keras | model.keras | {k.bytes / 1024:.1f} | – | {k.accuracy:.4f} | – | {k.macro_f1:.4f} "
        "| – | – | "
        f"{k.latency_median_ms:.3f} | {k.latency_p95_ms:.3f} |",
    ]
    for v in result.variants:
        verdict = ("**recommended**" if v.recommended else "ok" if v.within_tolerance
                   else f"⚠ too lossy (> {100 * result.tolerance:.1f} pt)")
        model = v.variant + (" (int8 I/O)" if v.input.quantized else "") + (
            f", calibrated on {v.calibration_samples} samples" if v.calibration_samples else "") + (
            f": {v.source}" if v.source != TRAINED_MODEL else "")
        gzipped = f"{v.gzip_bytes / 1024:.1f}" if v.gzip_bytes else "–"
        rows.append(f"| {verdict} | {model} | {v.file} | {v.bytes / 1024:.1f} | {gzipped} | "
                    f"{v.accuracy:.4f} | {-100 * v.accuracy_drop + 0.0:+.2f} | "
                    f"{v.macro_f1:.4f} | {v.label_agreement:.4f} | {v.max_probability_difference:.2e} | "
                    f"{v.latency_median_ms:.3f} | {v.latency_p95_ms:.3f} |")
    return rows


def write_card(result: ExportResult, prep: Preprocessing, facts: CardFacts | None, path: Path) -> Path:
    path.write_text("\n".join(_card_lines(result, prep, facts)) + "\n")
    return path


def _card_lines(result, prep, facts: CardFacts | None) -> list[str]:
    name = facts.model_name if facts else UNNAMED
    lines = [f"# Model card: {name}", ""]
    if facts:
        lines += [
            "## Data",
            f"- Source: {facts.source} ({prep.kind}, input shape {prep.input_shape})",
            f"- Classes ({len(prep.class_names)}): {', '.join(prep.class_names)}",
            f"- Split sizes: {', '.join(f'{k} {v}' for k, v in facts.split_sizes.items())}; "
            "the test split was never seen by search or fine-tuning",
            *[f"- {note}" for note in facts.data_notes],
            f"- Trained: {facts.trained_at}, architecture family: {facts.family}",
            *([f"- Pretrained from: {facts.pretrained}; its feature layers are the base under a new head"]
              if facts.pretrained else []),
            f"- Licence: {facts.licence}",
            "",
            "## Metrics (Keras model, test split)",
            ", ".join(f"{k} {v:.4f}" for k, v in facts.test_metrics.items()),
            "",
            "| class | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
            *[f"| {c} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
              for c, m in facts.per_class.items()],
            "",
        ]
    lines += [
        "## Files for the app",
        *variant_table(result),
        "",
        "Latency: batch 1, one interpreter thread, on the machine that ran the export, median and p95 after warm-up; "
        "phones differ, the ratios between variants carry over better than the absolute numbers.",
        "Inputs, outputs, int8 scale/zero-point and vocabularies: `model_spec.json`. Labels: `labels.json`. Every "
        ".tflite file carries LiteRT metadata too (name, version, tensors, image normalisation, labels.txt packed in), "
        "which MediaPipe Tasks and Android Studio read.",
        "",
        "## Intended use",
        INTENDED_USE,
        f"Input: {input_layout(prep)}. Inside the model: {NORMALISATION[prep.kind]}.",
        *([f"**Before each call**: {STATE_RESET}."] if result.stateful else []),
        "",
        "## Limits",
        "- Trained on the data above only: expect worse results on inputs from another source, sensor or population.",
        "- Scores come from one held-out split; small classes have wide uncertainty.",
        f"- Quantized variants are checked against the Keras model on the test split (tolerance "
        f"{100 * result.tolerance:.1f} accuracy points); inputs far outside the training value range may saturate int8 tensors.",
        "- Probabilities are not calibrated; do not read them as risk estimates without checking.",
        *(["- int8 input tensors cannot carry NaN: with int8 I/O, impute missing numbers (training mean, "
           "see preprocessing.json) before quantizing."] if prep.kind == "table" else []),
    ]
    return lines
