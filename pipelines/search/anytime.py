"""The search as an anytime algorithm: the best selection score so far against elapsed time.

A search cut short at any moment should already hold a strong model: the
portfolio (`models.portfolio`) puts cheap, strong configurations first, so
the curve should rise in the first trials and flatten. `best_so_far` is the
curve; `plot_anytime` draws it with every trial's score, by family, for the
report and the Prefect UI.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.search.records import TrialRecord

ANYTIME_FILE = "search_anytime.png"


def best_so_far(trials: list[TrialRecord]) -> list[tuple[float, float, str]]:
    """(seconds since the first trial began, best score up to then, the trial that set it), one point per new best.

    Trials without a score or an end time are skipped; time starts when the earliest timed trial began.
    """
    timed = _timed(trials)
    if not timed:
        return []
    origin = _origin(timed)
    curve, best = [], float("-inf")
    for trial in sorted(timed, key=lambda t: t.ended_at):
        if trial.val_score > best:
            best = trial.val_score
            curve.append((trial.ended_at - origin, best, trial.trial_id))
    return curve


def plot_anytime(trials: list[TrialRecord], path: Path, objective: str, search_seconds: float | None = None) -> Path:
    """Each trial's score at the time it ended (by family) and the best so far as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = best_so_far(trials)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if curve:
        scored = _timed(trials)
        first = _origin(scored)
        floor = min(t.val_score for t in scored)
        for family in sorted({t.family for t in scored}):
            members = [t for t in scored if t.family == family]
            ax.scatter([(t.ended_at - first) / 60 for t in members], [t.val_score for t in members], label=family,
                       alpha=0.75)
        end = max((search_seconds or 0.0), curve[-1][0]) / 60
        xs = [point[0] / 60 for point in curve] + [end]
        ys = [point[1] for point in curve] + [curve[-1][1]]
        ax.step(xs, ys, where="post", color="black", linewidth=1.2, label="best so far")
        ax.set_ylim(bottom=max(floor, curve[0][1] - 0.5) - 0.02)
        ax.legend(fontsize=8)
    ax.set_xlabel("minutes since the first trial began")
    ax.set_ylabel(objective)
    ax.set_title("Search: best selection score so far")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _timed(trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials with a score and an end time: the ones the curve and the plot place in time."""
    return [t for t in trials if t.ended_at is not None and t.val_score is not None]


def _origin(timed: list[TrialRecord]) -> float:
    """When the earliest of `timed` began (Unix time): the curve's zero."""
    return min(t.ended_at - (t.seconds or 0.0) for t in timed)
