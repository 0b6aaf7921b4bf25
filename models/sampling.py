"""Stratified row samples: the rows a large training set lends to a cheaper fit."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_rows(y: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Sorted indices of `rows` of `y`'s rows, each class in its proportion (at random if a class is too rare)."""
    index = np.arange(len(y))
    if rows >= len(y):
        return index
    try:
        picked, _ = train_test_split(index, train_size=rows, stratify=y, random_state=seed)
    except ValueError:  # a class with a single row cannot be split
        picked, _ = train_test_split(index, train_size=rows, random_state=seed)
    return np.sort(picked)
