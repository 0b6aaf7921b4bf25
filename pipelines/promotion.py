"""Champion vs challenger: the rule that keeps a scheduled retrain from shipping a worse model.

Both models are scored on the same fresh holdout (`pipelines.evaluate`).
The challenger is promoted only if its score on the chosen metric beats the
champion's by at least `min_improvement`, and no class the holdout contains
loses more than `max_recall_drop` recall: a better average that forgets a
rare class is not better for the users of that class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipelines.evaluate import Evaluation


@dataclass
class Decision:
    """Promote or keep, and why.

    Attributes:
        promote: the challenger becomes champion; reason: the rule's verdict in words.
        metric, champion_score, challenger_score: the holdout metric and both scores.
        min_improvement, max_recall_drop: the thresholds applied.
        recall_drops: class -> champion recall minus challenger recall (positive: the challenger lost recall).
    """

    promote: bool
    reason: str
    metric: str
    champion_score: float
    challenger_score: float
    min_improvement: float
    max_recall_drop: float
    recall_drops: dict[str, float] = field(default_factory=dict)

    @property
    def improvement(self) -> float:
        return self.challenger_score - self.champion_score

    def to_dict(self) -> dict:
        return {**asdict(self), "promoted": self.promote, "improvement": self.improvement}


def decide(champion: Evaluation, challenger: Evaluation, *, metric: str, min_improvement: float,
           max_recall_drop: float) -> Decision:
    """Promote or keep, with a reason a reviewer can check against the numbers."""
    old, new = champion.headline()[metric], challenger.headline()[metric]
    drops = {name: round(champion.per_class[name]["recall"] - challenger.per_class[name]["recall"], 6)
             for name, scores in champion.per_class.items()
             if scores["support"] > 0 and name in challenger.per_class}
    worst = max(drops, key=drops.get, default=None)
    score_text = f"challenger {metric} {new:.4f} vs champion {old:.4f} ({new - old:+.4f}"
    decision = Decision(False, "", metric, old, new, min_improvement, max_recall_drop, drops)
    if new - old < min_improvement:
        decision.reason = f"{score_text}; needs {min_improvement:+.4f}): champion kept"
    elif worst is not None and drops[worst] > max_recall_drop:
        decision.reason = (f"recall of class {worst!r} drops {drops[worst]:.3f} "
                           f"({champion.per_class[worst]['recall']:.3f} → {challenger.per_class[worst]['recall']:.3f}, "
                           f"allowed {max_recall_drop:.3f}) although {score_text}): champion kept")
    else:
        decision.promote = True
        decision.reason = (f"{score_text} >= {min_improvement:+.4f}) and no class lost more than "
                           f"{max_recall_drop:.3f} recall: challenger promoted")
    return decision
