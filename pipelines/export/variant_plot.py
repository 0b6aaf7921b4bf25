"""The export at a glance: every TFLite variant's test accuracy against its size, with the Pareto frontier.

Quantized, pruned and distilled models share one picture: what each costs in
KiB and in accuracy next to the Keras model, which are within tolerance, and
which one is recommended.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.export.records import TRAINED_MODEL, ExportResult
from pipelines.search.frontier import pareto_frontier

PLOT_FILE = "variants.png"


def plot_variants(result: ExportResult, path: Path) -> Path:
    """Accuracy (test split) against file size (KiB, log scale) for each variant; the tolerance band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    reference = result.keras.accuracy
    ax.axhline(reference, color="black", linewidth=1, label=f"Keras {reference:.4f}")
    ax.axhspan(reference - result.tolerance, reference, color="green", alpha=0.1,
               label=f"within {100 * result.tolerance:.1f} pt")
    for v in result.variants:
        compressed = v.source != TRAINED_MODEL
        ax.scatter([v.bytes / 1024], [v.accuracy], marker="D" if compressed else "o", s=50,
                   color="tab:orange" if compressed else "tab:blue", edgecolor="black", zorder=3)
        ax.annotate(v.variant, (v.bytes / 1024, v.accuracy), textcoords="offset points", xytext=(5, 5), fontsize=8)
    frontier = pareto_frontier([(v.bytes / 1024, v.accuracy) for v in result.variants])
    if len(frontier) > 1:
        ax.step(*zip(*frontier), where="post", color="grey", linewidth=1, label="frontier")
    if result.recommended:
        best = result.recommended
        ax.scatter([best.bytes / 1024], [best.accuracy], marker="*", s=260, color="gold", edgecolor="black",
                   zorder=4, label=f"recommended: {best.variant}")
    ax.set_xscale("log")
    ax.set_xlabel("TFLite file size (KiB)")
    ax.set_ylabel("test accuracy")
    ax.set_title("TFLite variants: accuracy against size (◆ pruned / distilled)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
