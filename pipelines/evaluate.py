"""Evaluate step: sklearn.metrics on the held-out test split, plus plots people would rather look at."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn import metrics

MAX_PLOTTED_CLASSES = 30  # a bigger confusion matrix is unreadable and slow to draw: the most confused only


@dataclass
class Evaluation:
    """Scores of one model on one labelled split (sklearn.metrics).

    Attributes:
        accuracy, balanced_accuracy, macro_precision, macro_recall, macro_f1: the headline scores; the macro ones
            average the classes the split holds or the model predicted (`unscored_classes` are neither).
        per_class: class name -> precision, recall, f1, support.
        confusion_matrix: rows are true classes, columns predicted ones, in `class_names` order.
        class_names: the classes scored; n_test: rows scored.
    """

    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    class_names: list[str]
    n_test: int

    @property
    def unscored_classes(self) -> list[str]:
        """The classes with no test row and never predicted: left out of the macro averages."""
        predicted = np.asarray(self.confusion_matrix).sum(axis=0)
        return [name for name, times in zip(self.class_names, predicted)
                if self.per_class[name]["support"] == 0 and not times]

    def headline(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy, "macro_f1": self.macro_f1,
                "macro_precision": self.macro_precision, "macro_recall": self.macro_recall}

    def save(self, path: Path, **extra) -> Path:
        path.write_text(json.dumps({**asdict(self), **extra}, indent=2))
        return path


def evaluate_predictions(y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> Evaluation:
    """Macro and per-class scores of the argmax predictions."""
    return evaluate_labels(y_true, np.argmax(probabilities, axis=1), class_names)


def evaluate_labels(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> Evaluation:
    """Macro and per-class scores of predicted class indices."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    # the classes in the split or the predictions (sklearn's default), as the export's variant table averages: a
    # test file without a rare class scored 0.3333 macro-F1 at accuracy 1.0, its two absent classes averaged as 0
    macro = metrics.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return Evaluation(
        accuracy=float(metrics.accuracy_score(y_true, y_pred)),
        balanced_accuracy=float(metrics.balanced_accuracy_score(y_true, y_pred)),
        macro_precision=float(macro[0]),
        macro_recall=float(macro[1]),
        macro_f1=float(macro[2]),
        per_class=per_class,
        confusion_matrix=metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        class_names=list(class_names),
        n_test=int(len(y_true)),
    )


def evaluate_by_name(model, x: np.ndarray, true_names: np.ndarray, model_classes: list[str],
                     class_names: list[str]) -> Evaluation:
    """Score a model whose outputs are `model_classes` against labels indexed by `class_names`.

    A champion and a challenger trained on different data may order (or
    know) different classes; mapping both to one list of names keeps their
    scores comparable on the same holdout.
    """
    index = {name: i for i, name in enumerate(class_names)}
    predicted = np.asarray(model_classes, dtype=object)[np.argmax(model.predict(x, verbose=0), axis=1)]
    return evaluate_labels(np.asarray([index[n] for n in true_names]), np.asarray([index[n] for n in predicted]),
                           class_names)


def most_confused(matrix: np.ndarray, limit: int = MAX_PLOTTED_CLASSES) -> np.ndarray:
    """Indices (in class order) of the `limit` classes with the most errors, as truth or as prediction."""
    if len(matrix) <= limit:
        return np.arange(len(matrix))
    errors = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * np.diag(matrix)
    return np.sort(np.argsort(-errors, kind="stable")[:limit])


def plot_confusion_matrix(evaluation: Evaluation, path: Path) -> Path:
    """The test confusion matrix; beyond `MAX_PLOTTED_CLASSES` classes, the most confused ones only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(evaluation.confusion_matrix)
    shown = most_confused(matrix)
    size = max(4.0, 0.6 * len(shown) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    display = metrics.ConfusionMatrixDisplay(matrix[np.ix_(shown, shown)],
                                             display_labels=[evaluation.class_names[i] for i in shown])
    display.plot(ax=ax, colorbar=False, cmap="Blues", xticks_rotation=45)
    subset = f"; the {len(shown)} most confused of {len(matrix)} classes" if len(shown) < len(matrix) else ""
    ax.set_title(f"Test confusion matrix\naccuracy {evaluation.accuracy:.3f}, n={evaluation.n_test}{subset}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(history: dict[str, list[float]], path: Path, title: str = "Fine-tuning") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("loss", "accuracy", "learning_rate") if k in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, key in zip(axes[0], panels):
        epochs = range(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker=".", label=key)
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker=".", label=f"val_{key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
