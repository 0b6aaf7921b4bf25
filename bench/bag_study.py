"""Stand-in study: refit the closed-form members on every row, or ship the bag of their fold models?

Under k-fold selection a kerasflow member trained by epochs ships as the bag
of its fold models (`pipelines/finetune.py`), while its closed-form members
(logistic regression, kernel ridge, the forest, the boosted trees) are
refitted on every training row; AutoGluon ships every family as its bag.
This study fits `selection_study.py`'s scikit-learn stand-ins for the table
portfolio (the boosted trees as `models.portfolio.STOCHASTIC_BOOSTED`) on the
same seeded 80/20 splits and scores the portfolio's plain average on the test
rows each way: every closed-form member refitted (as shipped), every member
its bag, every member but kernel ridge its bag, the two tree members their
bags; and each closed-form member alone, bagged and refitted. The MLP is its
bag throughout, as kerasflow ships it.

In the real pipeline the rule "every member but kernel ridge bagged" (built
at 0ce6332, reverted) scored hepatic_injury_qsar's ten splits exactly as the
refits did and cost breast_cancer two test rows at one minute
(`bench/README.md`, "Refitted or bagged").

Prints the mean test accuracy per table and the paired differences against
"as shipped" (mean, standard error, splits ahead and behind), and writes
bench/results/bag_study.md and .csv (the means). Not a test.

    python bench/bag_study.py [--seeds 10]
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score

from models.portfolio import STOCHASTIC_BOOSTED
from models.trees import estimator_arguments, make_estimator
# bench/selection_study.py and bench/table.py, next to this script (sys.path[0] when run as a script)
from selection_study import portfolio, seeded_split, seeds_argument, table_rows
from table import BASELINES, commit, write_results

STEM = "bag_study"
CLOSED_FORM = ["linear", "kernel", "forest", "boosted"]
SHIPPED = "closed-form refitted (as shipped)"
# rule -> the closed-form members that ship as their bag of fold models (the rest are refitted)
RULES = {SHIPPED: (), "every member bagged": tuple(CLOSED_FORM),
         "every member but kernel ridge bagged": ("linear", "forest", "boosted"),
         "the tree members bagged": ("forest", "boosted")}


def boosted(seed: int):
    """kerasflow's boosted trees as its table portfolio starts them (`STOCHASTIC_BOOSTED`), in scikit-learn."""
    return make_estimator(**estimator_arguments(STOCHASTIC_BOOSTED), seed=seed)


def members(seed: int) -> dict:
    """The table portfolio's stand-ins (`selection_study.portfolio`), the boosted trees as kerasflow starts them."""
    return {**portfolio(seed), "boosted": boosted(seed)}


def one_split(name: str, x, y, columns, seed: int) -> dict:
    x_fit, x_test, y_fit, y_test, folds = seeded_split(x, y, columns, seed)
    bagged, refitted = {}, {}
    for member, unfitted in members(seed).items():
        bagged[member] = np.mean([clone(unfitted).fit(x_fit[train], y_fit[train]).predict_proba(x_test)
                                  for train, _ in folds], axis=0)
        if member in CLOSED_FORM:
            refitted[member] = clone(unfitted).fit(x_fit, y_fit).predict_proba(x_test)
    accuracy = lambda probabilities: accuracy_score(y_test, probabilities.argmax(axis=1))
    row = {"dataset": name, "seed": seed}
    for rule, in_bags in RULES.items():
        row[rule] = accuracy(np.mean([bagged[m] if m in in_bags or m not in CLOSED_FORM else refitted[m]
                                      for m in bagged], axis=0))
    for member in CLOSED_FORM:
        row[f"{member} bagged"], row[f"{member} refitted"] = accuracy(bagged[member]), accuracy(refitted[member])
    return row | {b: accuracy_score(y_test, make().fit(x_fit, y_fit).predict(x_test)) for b, make in BASELINES.items()}


def paired(table: pd.DataFrame, rule: str, against: str) -> str:
    difference = (table[rule] - table[against]) * 100
    return (f"{rule} against {against}: {difference.mean():+.2f} points (standard error "
            f"{difference.std(ddof=1) / np.sqrt(len(difference)):.2f}), ahead on {int((difference > 0).sum())}, "
            f"behind on {int((difference < 0).sum())} of {len(difference)} splits")


def main() -> None:
    seeds = seeds_argument(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore")
    table = pd.DataFrame(table_rows(one_split, seeds))
    scored = [c for c in table.columns if c not in ("dataset", "seed")]
    means = table.groupby("dataset", sort=False)[scored].mean().round(4)
    means.loc[f"all {len(table)} splits"] = table[scored].mean().round(4)
    comparisons = [paired(table, rule, SHIPPED) for rule in RULES if rule != SHIPPED]
    comparisons += [paired(table, f"{m} bagged", f"{m} refitted") for m in CLOSED_FORM]
    header = [f"# Refitted or bagged: what the closed-form members ship ({seeds} seeded splits a table, "
              f"commit {commit()})", "", __doc__.split("\n\n")[1].replace("\n", " "), "",
              *[f"- {c}" for c in comparisons], "",
              "Mean test accuracy (rows: the rules, each member bagged and refitted, the one-liners; columns: the "
              "tables).", ""]
    print(means.T.to_string(), *comparisons, sep="\n")
    write_results(STEM, header, means.T.reset_index(names="rule"))


if __name__ == "__main__":
    main()
