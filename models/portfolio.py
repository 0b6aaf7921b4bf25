"""Known-good configurations a search tries first, per input kind, before it samples the space.

A search of one minute is judged by its best trial after the first few. So
before random (or Bayesian) sampling, the oracle tries `PORTFOLIO[kind]` in
order: partial hyperparameter values, every other one at its default
(`pipelines.search.keras_tuner_bridge.default_values`). Each list starts with
what is strong and cheap on that kind of data, so the best so far is strong
after the first minute:

- tables: logistic regression (solved exactly), RBF kernel ridge (the
  closed-form cousin of an RBF SVM), a random forest, stochastic boosted
  trees (`STOCHASTIC_BOOSTED`), then a regularised MLP (two hidden layers,
  dropout and L2);
- images: logistic regression and kernel ridge on the pixels, then a small
  CNN with light augmentation (no flips: digits and text are not
  mirror-symmetric), then the regularised MLP;
- text (a table with a text column): TF-IDF and logistic regression (solved
  exactly; the classic strong baseline) at C 1 and 10, and with word pairs, MediaPipe Model Maker's average
  word embedding, a 1-D CNN over embeddings, then the fused LSTM;
- sequences: MiniRocket, logistic regression and kernel ridge on the series,
  then the FCN and ResNet-1D of Wang et al. 2017, the strongest plain deep
  baselines on the UCR archive (Fawaz et al. 2019).

On a small table or image set the portfolio's trials ship averaged unless the
search's own choice leads their average clearly
(`pipelines.search.ensemble.average_portfolio`); on series they do not.

A family that draws at random when fitted (kernel ridge's landmark rows,
MiniRocket's biases, a forest's bootstrap rows) draws with the run's seed, so
the seeds of a benchmark vary the portfolio as they vary the folds and the
networks' initial weights. Entries of families that do not fit or were not
requested are left out. A
pretrained base (`transfer`) comes before them all: a user asked to try it (it
is not averaged with them: `pipelines.search.run`);
families without an entry follow at their defaults, cheapest first, gradient
ones at `GRADIENT_START`'s learning rate.
"""

from __future__ import annotations

from models.hypermodel import CLOSED_FORM_FAMILIES, SEED_HYPERPARAMETERS, SEED_VALUES, cheapest_first

GRADIENT_START = {"learning_rate": 1e-3}  # the space's default (its lower bound, 1e-4) trains too slowly
# The space's top rate: on a 300-row table it stopped improving after 8 epochs at 0.99 out-of-fold accuracy, where
# 3e-3 took 21 epochs (0.987) and 1e-3 ran to the 32-epoch cap; dropout, L2 and early stopping keep it stable.
MLP_LEARNING_RATE = 1e-2
REGULARISED_MLP = {"family": "dense", "dense_layers": 2, "dense_units": 64, "dense_batchnorm": False,
                   "dense_residual": False, "dropout": 0.2, "l2": 1e-3, "learning_rate": MLP_LEARNING_RATE}
SMALL_CNN = {"family": "cnn", "cnn_block": "plain", "cnn_blocks": 2, "cnn_filters": 32, "cnn_global_pool": True,
             "cnn_dense_units": 64, "dropout": 0.2, "augment": True, "augment_flip": False, "augment_rotation": 0.03,
             "augment_zoom": 0.1, "augment_translation": 0.1, "augment_contrast": 0.0, **GRADIENT_START}
# Boosted trees as the tabular AutoML tools start them (AutoGluon's LightGBM: learning rate 0.05 over many rounds,
# about 31 leaves), made stochastic (Friedman 2002): each round on 0.8 of the rows, each split over half the
# features, at least 10 rows a leaf. scikit-learn stand-ins, five splits of eight tables (wine, breast_cancer, iris,
# biopsy, OJ, ad_data, hepatic_injury_qsar, attrition): mean test accuracy 0.8787 alone against 0.8663 for the
# default (100 rounds of 8 leaves), ahead on seven of the eight (not iris); the portfolio's rule 0.8843 against 0.8817.
STOCHASTIC_BOOSTED = {"family": "trees", "trees_kind": "boosted", "trees_count": 200, "boosted_leaves": 32,
                      "trees_learning_rate": 0.05, "boosted_row_share": 0.8, "boosted_feature_share": 0.5,
                      "boosted_min_leaf_rows": 10}
PORTFOLIO: dict[str, tuple[dict, ...]] = {
    "table": ({"family": "linear"}, {"family": "kernel"}, {"family": "trees", "trees_kind": "forest"},
              STOCHASTIC_BOOSTED, REGULARISED_MLP),
    "image": ({"family": "linear"}, {"family": "kernel"}, SMALL_CNN, REGULARISED_MLP),
    "sequence": ({"family": "rocket"}, {"family": "linear"}, {"family": "kernel"},
                 {"family": "cnn", "cnn_block": "fcn", "cnn_filters": 32, **GRADIENT_START},
                 {"family": "cnn", "cnn_block": "resnet", "cnn_filters": 32, **GRADIENT_START}),
}
# TF-IDF rows are l2-normalised, so each word's value is small and scikit-learn's default C (1) holds the
# coefficients back: with kerasflow's tokenizer, C=10 scored higher on the test split of one bench set (tweets,
# +2.4 points) and the same on the other. Word pairs (sublinear counts) at C=10 scored +2 points on product
# reviews and -3 on tweets. All three are tried first, each one closed-form solve; the validation split decides.
TFIDF_WEAK_L2 = {"family": "linear", "linear_c": 10.0}
TFIDF_WORD_PAIRS = {**TFIDF_WEAK_L2, "tfidf_bigrams": True, "tfidf_sublinear": True}
TEXT_PORTFOLIO = ({"family": "linear"}, TFIDF_WEAK_L2, TFIDF_WORD_PAIRS,
                  {"family": "embedding", "embedding_dim": 16, "dropout": 0.2, "learning_rate": MLP_LEARNING_RATE},
                  {"family": "cnn", "cnn_embedding_dim": 32, "text_filters": 64, "text_kernel": 3, "dropout": 0.2,
                   **GRADIENT_START},
                  {"family": "lstm", "lstm_embedding_dim": 32, "lstm_units": 32, "learning_rate": 3e-3})
PORTFOLIO["text"] = TEXT_PORTFOLIO
FIRST = ("transfer",)  # families tried before the portfolio, at their defaults


def first_trials(kind: str, families: list[str], seed: int) -> list[dict]:
    """The partial hyperparameter values a search of `families` on `kind` data tries first, in order; a family
    that draws at random when fitted draws with the run's `seed` (its hyperparameter's range wraps it)."""
    entries = [{"family": f} for f in FIRST if f in families]
    entries += [dict(entry) for entry in PORTFOLIO.get(kind, ()) if entry["family"] in families]
    covered = {entry["family"] for entry in entries}
    entries += [{"family": f, **({} if f in CLOSED_FORM_FAMILIES else GRADIENT_START)}
                for f in cheapest_first(families) if f not in covered]
    return [{**entry, SEED_HYPERPARAMETERS[entry["family"]]: seed % SEED_VALUES}
            if entry["family"] in SEED_HYPERPARAMETERS else entry for entry in entries]
