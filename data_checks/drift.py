"""Drift of new data against the data the current model was trained on.

Both sides are profile frames (`data_checks.profile_frame`): the table's own
columns, or for images and sequences one summary row per sample (value
range, mean, length), plus the label column. Each column gets one
significance test and the population stability index (PSI):

- numbers: two-sample Kolmogorov-Smirnov test (plus a chi-square test of the
  missing share when values are missing); PSI over the reference's deciles,
- categories and labels: chi-square test of the two count tables; PSI over the categories.

A column has drifted when both say so: PSI at or above `psi_threshold` (how
much the distribution moved) and p-value below `alpha` (that it is not the
noise of a small sample). Missing values count as a category of their own, so
a column that starts arriving empty drifts too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from data_checks.suite import LABEL_COLUMN

PSI_THRESHOLD = 0.2  # the usual reading: < 0.1 stable, 0.1–0.2 moderate, >= 0.2 shifted
ALPHA = 0.01
PSI_BINS = 10
EPSILON = 1e-4  # keeps log() finite for bins one side leaves empty


@dataclass
class ColumnDrift:
    """One column's drift test: the statistic, its p-value, PSI, whether it drifted and what moved."""

    column: str
    kind: str  # "numeric", "categorical" or "label"
    test: str
    statistic: float
    p_value: float
    psi: float
    drifted: bool
    change: str  # what moved, in the column's own terms


@dataclass
class DriftReport:
    """Drift of new data against a reference profile.

    Attributes:
        columns: one `ColumnDrift` per shared column (the label included).
        reference_rows, current_rows: rows on each side; psi_threshold, alpha: the thresholds applied.
        notes: columns that could not be tested.
    """

    columns: list[ColumnDrift]
    reference_rows: int
    current_rows: int
    psi_threshold: float = PSI_THRESHOLD
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    @property
    def label(self) -> ColumnDrift | None:
        return next((c for c in self.columns if c.kind == "label"), None)

    def summary(self) -> str:
        if not self.drifted:
            tested = f"{len(self.columns)} column{'' if len(self.columns) == 1 else 's'}"
            return f"no drift ({tested}, PSI < {self.psi_threshold:g} or p >= {self.alpha:g})"
        moved = ", ".join(f"{c.column} (PSI {c.psi:.2f})" for c in sorted(self.drifted, key=lambda c: -c.psi))
        return f"drift in {len(self.drifted)} of {len(self.columns)} columns: {moved}"

    def to_markdown(self) -> str:
        rows = sorted(self.columns, key=lambda c: (not c.drifted, -c.psi))
        return "\n".join([
            f"Reference {self.reference_rows} rows, new {self.current_rows} rows. A column drifts when "
            f"PSI >= {self.psi_threshold:g} and p < {self.alpha:g}. {self.summary()}.",
            "",
            "| column | kind | test | statistic | p-value | PSI | drifted | change |",
            "|---|---|---|---|---|---|---|---|",
            *[f"| {c.column} | {c.kind} | {c.test} | {c.statistic:.3f} | {c.p_value:.2g} | {c.psi:.3f} | "
              f"{'**yes**' if c.drifted else 'no'} | {c.change} |" for c in rows],
            *[f"\n{note}" for note in self.notes],
        ])

    def to_rows(self) -> list[dict]:
        """One row per column, drifted ones first, the verdict leftmost and numbers rounded for people."""
        rows = []
        for c in sorted(self.columns, key=lambda c: (not c.drifted, -c.psi)):
            rows.append({"drifted": "yes" if c.drifted else "no", "column": c.column, "PSI": round(c.psi, 3),
                         "p-value": float(f"{c.p_value:.2g}"), "test": c.test, "statistic": round(c.statistic, 3),
                         "kind": c.kind, "change": c.change})
        return rows


def write_reference(profile: pd.DataFrame, path: Path) -> Path:
    """The profile of the data a model learnt from, kept beside it for the next drift check."""
    profile.rename(columns=str).to_parquet(path, index=False)
    return path


def read_reference(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def compare_profiles(reference: pd.DataFrame, current: pd.DataFrame, *, psi_threshold: float = PSI_THRESHOLD,
                     alpha: float = ALPHA) -> DriftReport:
    """One `ColumnDrift` per column the two profiles share; the label column is tested like a category."""
    shared = [c for c in reference.columns if c in current.columns]
    columns = [_column_drift(str(c), reference[c], current[c], psi_threshold, alpha) for c in shared]
    missing = sorted(map(str, set(reference.columns) - set(current.columns)))
    notes = [f"Columns missing from the new data (not tested): {', '.join(missing)}"] if missing else []
    return DriftReport(columns, len(reference), len(current), psi_threshold, alpha, notes)


def _column_drift(name: str, reference: pd.Series, current: pd.Series, psi_threshold: float,
                  alpha: float) -> ColumnDrift:
    if name == LABEL_COLUMN:
        drift = _categorical(reference, current)
        kind, name = "label", "label"
    elif _is_number(reference) and _is_number(current):
        drift, kind = _numeric(reference, current), "numeric"
    else:
        drift, kind = _categorical(reference, current), "categorical"
    test, statistic, p_value, psi, change = drift
    drifted = bool(psi >= psi_threshold and p_value < alpha)
    return ColumnDrift(name, kind, test, float(statistic), float(p_value), float(psi), drifted, change)


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _numeric(reference: pd.Series, current: pd.Series):
    ref, cur = (pd.to_numeric(s, errors="coerce").astype("float64") for s in (reference, current))
    ref_values, cur_values = ref.dropna().to_numpy(), cur.dropna().to_numpy()
    if len(ref_values) == 0 or len(cur_values) == 0:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.ks_2samp(ref_values, cur_values)
        statistic, p_value = result.statistic, result.pvalue
    edges = np.unique(np.quantile(ref_values, np.linspace(0, 1, PSI_BINS + 1)[1:-1])) if len(ref_values) else []
    psi = _psi(_binned(ref, edges), _binned(cur, edges))
    change = f"mean {_mean(ref_values)} → {_mean(cur_values)}"
    test = "KS"
    missing = (ref.isna().mean(), cur.isna().mean())
    if missing[0] or missing[1]:
        change += f", missing {missing[0]:.0%} → {missing[1]:.0%}"
        present_vs_missing = [[len(ref_values), ref.isna().sum()], [len(cur_values), cur.isna().sum()]]
        missing_p = stats.chi2_contingency(present_vs_missing).pvalue
        test, p_value = "KS + chi-square on missing", min(1.0, 2 * min(p_value, missing_p))  # Bonferroni, two tests
    return test, statistic, p_value, psi, change


def _binned(values: pd.Series, edges) -> np.ndarray:
    """Counts per reference decile, with missing values as one more bin."""
    finite = values.dropna().to_numpy()
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return np.append(counts, values.isna().sum())


def _categorical(reference: pd.Series, current: pd.Series):
    ref, cur = (s.astype(object).where(s.notna(), "<missing>").astype(str) for s in (reference, current))
    categories = sorted(set(ref) | set(cur))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy()
    cur_counts = cur.value_counts().reindex(categories, fill_value=0).to_numpy()
    if len(categories) < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.stack([ref_counts, cur_counts]))
        statistic, p_value = result.statistic, result.pvalue
    psi = _psi(ref_counts, cur_counts)
    return "chi-square", statistic, p_value, psi, _share_change(categories, ref_counts, cur_counts)


def _share_change(categories: list[str], ref_counts: np.ndarray, cur_counts: np.ndarray) -> str:
    """The categories whose share moved most, e.g. `red 33% → 70%`."""
    ref_share, cur_share = ref_counts / max(ref_counts.sum(), 1), cur_counts / max(cur_counts.sum(), 1)
    order = np.argsort(-np.abs(cur_share - ref_share))[:3]
    return ", ".join(f"{categories[i]} {ref_share[i]:.0%} → {cur_share[i]:.0%}" for i in order)


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref_share = np.maximum(ref_counts / max(ref_counts.sum(), 1), EPSILON)
    cur_share = np.maximum(cur_counts / max(cur_counts.sum(), 1), EPSILON)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _mean(values: np.ndarray) -> str:
    return f"{values.mean():.4g}" if len(values) else "n/a"
