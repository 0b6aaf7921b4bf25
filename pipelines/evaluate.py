"""Evaluate step: sklearn.metrics on the held-out test split, plus plots people would rather look at."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn import metrics


@dataclass
class Evaluation:
    accuracy: float
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    class_names: list[str]
    n_test: int

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
    macro = metrics.precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
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


def evaluate_model(model, x: np.ndarray, y: np.ndarray, class_names: list[str]) -> Evaluation:
    return evaluate_predictions(y, model.predict(x, verbose=0), class_names)


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


def plot_confusion_matrix(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(evaluation.class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    display = metrics.ConfusionMatrixDisplay(np.asarray(evaluation.confusion_matrix), display_labels=evaluation.class_names)
    display.plot(ax=ax, colorbar=False, cmap="Blues", xticks_rotation=45)
    ax.set_title(f"Test confusion matrix (accuracy {evaluation.accuracy:.3f}, n={evaluation.n_test})")
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


def pareto_frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both size (smaller) and score (higher), by increasing size."""
    frontier, best = [], float("-inf")
    for size, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            frontier.append((size, score))
            best = score
    return frontier


def plot_search_frontier(trials, path: Path, objective: str, max_model_kb: float | None = None,
                         best_trial_id: str | None = None) -> Path:
    """Score against int8 size (or parameter count when sizes were not measured) for every trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_size = any(t.int8_kb is not None for t in trials)
    size = (lambda t: t.int8_kb) if by_size else (lambda t: t.params)
    scored = [t for t in trials if t.val_score is not None and size(t) is not None]
    over = [t for t in trials if t.status == "OVER_BUDGET" and size(t) is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for family in sorted({t.family for t in scored}):
        members = [t for t in scored if t.family == family]
        ax.scatter([size(t) for t in members], [t.val_score for t in members], label=family, alpha=0.75)
    frontier = pareto_frontier([(size(t), t.val_score) for t in scored])
    if frontier:
        ax.step(*zip(*frontier), where="post", color="black", linewidth=1, label="frontier")
    floor = min([t.val_score for t in scored], default=0.0)
    if over:
        ax.scatter([size(t) for t in over], [floor] * len(over), marker="x", color="grey",
                   label="over budget (not trained)")
    best = [t for t in scored if t.trial_id == best_trial_id]
    if best:
        ax.scatter([size(best[0])], [best[0].val_score], marker="*", s=220, color="gold", edgecolor="black",
                   zorder=5, label="chosen")
    if by_size and max_model_kb:
        ax.axvline(max_model_kb, color="red", linestyle="--", label=f"budget {max_model_kb:g} KiB")
    ax.set_xscale("log")
    ax.set_xlabel("int8 TFLite size (KiB)" if by_size else "parameters")
    ax.set_ylabel(objective)
    ax.set_title(f"Search trials: {objective} vs {'int8 size' if by_size else 'model size'}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
