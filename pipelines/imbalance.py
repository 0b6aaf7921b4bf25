"""Class imbalance: when it counts, what the report says about it, and balanced class weights.

A training set is called imbalanced when its largest class has at least
`IMBALANCE_RATIO` (3) times the rows of its smallest: below that, plain
training still sees the small class often enough; above it, accuracy can
stay high while the small class's recall drops to zero. `class_weight`
`auto` weights classes (sklearn's "balanced" rule, n / (k * count)) only
then; `balanced` always; `none` never.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

IMBALANCE_RATIO = 3.0
# Under `auto` the search's first trials (the portfolio, at the hyperparameters' defaults) weight the classes only when
# the objective weighs them equally. Balanced weights trade the large classes' rows for the small ones': on the
# accuracy a search maximises by default they cost more than they give. hepatic_injury_qsar (3 classes, 4.8 : 1),
# 5 minutes, the peers bench's split: the portfolio's five averaged scored 0.5439 weighted and 0.6316 unweighted (and
# macro-F1 0.392 -> 0.450); its scikit-learn stand-ins over 10 splits (`bench/selection_study.py`'s rule) 0.5246 ->
# 0.5719 (macro-F1 0.381 -> 0.379); modeldata/attrition (5.2 : 1) 0.8680 -> 0.8677 (macro-F1 0.708 -> 0.677).
BALANCED_OBJECTIVES = frozenset({"val_macro_f1"})
# What the report suggests to a run that maximised accuracy on imbalanced classes: at a short budget
# modeldata/lending_club (18 : 1) shipped the majority class (accuracy 0.948, macro-F1 0.487).
MACRO_F1_HINT = "the search maximised accuracy: to weigh the small classes' recall as much, --objective val_macro_f1"


def imbalance_ratio(y: np.ndarray) -> float:
    counts = np.bincount(np.asarray(y, dtype=int))
    counts = counts[counts > 0]
    return float(counts.max() / counts.min()) if len(counts) else 1.0


def class_weights(y: np.ndarray, mode: str) -> dict[int, float] | None:
    """Keras `class_weight` for integer labels `y` under `mode` (auto, balanced, none); None means unweighted."""
    if mode == "none" or (mode == "auto" and imbalance_ratio(y) < IMBALANCE_RATIO):
        return None
    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    return {int(c): float(w) for c, w in zip(present, weights)}


def balanced_first(objective: str) -> bool:
    """Whether the search's first trials use the class weights under `auto` (`BALANCED_OBJECTIVES`); later trials
    draw it, and the validation score decides."""
    return objective in BALANCED_OBJECTIVES


def imbalance_note(y: np.ndarray, class_names: list[str], mode: str, chosen: bool | None = None,
                   objective: str | None = None) -> str:
    """One line for the report when the classes are imbalanced ("" when they are not); `chosen`: whether the
    model the search chose under `auto` uses the weights (its `balance_classes`); `objective`: the search's, named
    with `MACRO_F1_HINT` when it weighs the classes by their rows."""
    ratio = imbalance_ratio(y)
    if ratio < IMBALANCE_RATIO:
        return ""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=len(class_names))
    listed = ", ".join(f"{name} {count}" for name, count in sorted(zip(class_names, counts), key=lambda p: -p[1]))
    if not class_weights(y, mode):
        weighting = "class weights off (--class-weight none); consider --class-weight balanced"
    elif mode == "auto" and chosen is not None:
        weighting = ("balanced class weights used: the search chose them" if chosen
                     else "balanced class weights tried; the search chose a model without them")
    else:
        weighting = "balanced class weights used"
    hint = f"; {MACRO_F1_HINT}" if objective is not None and not balanced_first(objective) else ""
    return f"imbalanced classes: {ratio:.1f} : 1 largest to smallest ({listed}); {weighting}{hint}"
