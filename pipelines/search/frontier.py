"""The search at a glance: every trial's score against its size, with the Pareto frontier."""

from __future__ import annotations

from pathlib import Path

from pipelines.search.records import TrialRecord, TrialStatus


def pareto_frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both size (smaller) and score (higher), by increasing size."""
    frontier, best = [], float("-inf")
    for size, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            frontier.append((size, score))
            best = score
    return frontier


def plot_search_frontier(trials: list[TrialRecord], path: Path, objective: str, max_model_kb: float | None = None,
                         best_trial_id: str | None = None) -> Path:
    """Score against int8 size (or parameter count when sizes were not measured) for every trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_size = any(t.int8_kb is not None for t in trials)
    size = (lambda t: t.int8_kb) if by_size else (lambda t: t.params)
    scored = [t for t in trials if t.val_score is not None and size(t) is not None]
    over = [t for t in trials if t.status == TrialStatus.OVER_BUDGET and size(t) is not None]
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
