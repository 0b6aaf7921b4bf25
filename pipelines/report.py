"""report.md: what a reviewer reads first, and the Prefect report artifact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.train import RunResult


def write_report(result: "RunResult", path: Path) -> Path:
    path.write_text(render_report(result))
    return path


def render_report(result: "RunResult") -> str:
    search, evaluation, parity = result.search, result.evaluation, result.export.tflite_parity
    best = search.best_hyperparameters
    lines = [
        f"# kerasflow run: {result.config.model_name}",
        "",
        f"Run folder: `{result.run_dir}`",
        "",
        "## Data",
        f"- Source: {result.config.dataset or result.config.data}",
        f"- Split sizes: {', '.join(f'{k} {v}' for k, v in result.splits.items())} (test never seen by search or fine-tuning)",
        *[f"- {note}" for note in result.data_notes],
        "",
        "## Validation (great-expectations, suite in `expectations.json`)",
        result.validation.to_markdown(),
        "",
        "## Search",
        f"- Tuner {result.config.tuner}, objective {search.objective}, budget {result.config.budget_minutes} min, "
        f"{len(search.trials)} trials in {search.seconds:.0f} s"
        + (f" ({search.resumed_trials} resumed from an earlier run)" if search.resumed_trials else "")
        + (" — stopped by the budget" if search.budget_spent else ""),
        f"- Families searched: {', '.join(search.families)}",
        *[f"- Skipped {family}: {why}" for family, why in search.skipped_families.items()],
        f"- Trials by status: {_count(t.status for t in search.trials)}; by family: {_count(t.family for t in search.trials)}",
        f"- Best trial {search.best_trial_id}: {best['family']}, {search.objective} {search.best_val_score:.4f}",
        f"- Best hyperparameters: `{best}`",
        "",
        "## Test scores",
        "| model | accuracy | balanced acc. | macro precision | macro recall | macro F1 |",
        "|---|---|---|---|---|---|",
        _score_row("search best", result.search_evaluation),
        _score_row(f"fine-tuned ({result.finetune.epochs} epochs)", evaluation),
        "",
        "### Per class (fine-tuned)",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
          for name, c in evaluation.per_class.items()],
        "",
        "![confusion matrix](confusion_matrix.png)",
        "![learning curves](learning_curves.png)",
        "",
        "## Export",
        f"- Files in `export/`: {', '.join(sorted(result.export.files))}",
        f"- TFLite float32 ({result.export.tflite_bytes / 1024:.1f} KiB, builtin ops only) vs Keras on {parity.n} test samples: "
        f"label agreement {parity.label_agreement:.4f}, max probability difference {parity.max_probability_difference:.2e}, "
        f"TFLite accuracy {parity.accuracy:.4f}",
        "",
        "## Step seconds",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {secs:.1f} |" for name, secs in result.step_seconds.items()],
        "",
    ]
    return "\n".join(lines)


def _score_row(name: str, e) -> str:
    return (f"| {name} | {e.accuracy:.4f} | {e.balanced_accuracy:.4f} | {e.macro_precision:.4f} | "
            f"{e.macro_recall:.4f} | {e.macro_f1:.4f} |")


def _count(values) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(values).items()))
