"""Tree ensembles as a Keras layer: gradient-boosted trees or a random forest, evaluated with tensor ops.

On small tables a tree ensemble is often the strongest model there is, and
no Keras layer learns one. So the `trees` family fits scikit-learn's
`GradientBoostingClassifier` or `RandomForestClassifier` on the in-model
encoded features (in closed form, like MiniRocket's ridge head) and copies
every tree's nodes into `TreeEnsemble`, which walks all the trees at once
(Hummingbird's tree-traversal strategy: Nakandala et al. 2020, "A Tensor
Compiler for Unified Machine Learning Prediction Serving"):

1. every node's test at once: gather its feature, compare it with its
   threshold; a leaf's threshold is inf, so no sample goes right there;
2. every sample starts at every tree's root; a step moves it to the node's
   first child plus its test (a split's two children are numbered side by
   side, and a leaf is its own first child, so a sample stays there);
3. after as many steps as the deepest tree is deep, the leaves reached
   give their values, summed over the trees.

Storage is linear in the nodes: a feature, a threshold, a first child and the
values (one for boosting, one a class for a forest) a node. Hummingbird's
GEMM strategy, used before, kept a splits x leaves path matrix a tree: the
table portfolio's boosted trees on wine (200 rounds x 3 classes of 32 leaves)
took 2,774 KiB as TFLite, against 612 KiB now (0.29 -> 0.25 ms a row, 2
cores); a forest of 100 trees 466 -> 158 KiB (0.04 -> 0.05 ms). The thresholds
are compared, never gathered, so the dynamic-range variant keeps them in float
(it quantizes gathered constants: it did not run with gathered ones); the
float16 variant stores them in half precision, as it did before, and a row
within a half-precision step of one can take the other branch (its check
against the Keras model shows it). Gather, greater, cast, add, matmul and sum
are builtin TFLite ops, so the model exports like any other. Trees are padded
to one node count; a padded node is never reached.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from keras import ops

from models.inference import layer_inputs
from models.rocket import ABSENT_CLASS_LOGIT, training_metrics
from models.sampling import stratified_rows

KINDS = ("forest", "boosted")  # the first is the default
MIN_PROBABILITY = 1e-6
MAX_FIT_ROWS = 20_000  # the most rows the trees are fitted on (a stratified sample of larger sets)
# Stochastic gradient boosting (Friedman 2002, "Stochastic gradient boosting"), `make_estimator`'s keywords -> the
# values the search tries (hyperparameter `boosted_<keyword>`): the share of the rows each round fits, the share of
# the features each split weighs, the fewest rows a leaf may hold. The first of each is scikit-learn's default
# (every row, every feature, one row): the boosted trees kerasflow grew before.
BOOSTED_SAMPLING = {"row_share": (1.0, 0.8), "feature_share": (1.0, 0.5), "min_leaf_rows": (1, 10, 20)}
ROUNDS_FITTED = "rounds_fitted"  # `fit_trees`'s metric: the boosting rounds fitted before the deadline, or all


@keras.saving.register_keras_serializable(package="kerasflow")
class TreeEnsemble(keras.layers.Layer):
    """`n_trees` trees of at most `n_leaves` leaves over the input's features -> `n_classes` logits.

    `average=False` (boosting): each tree adds its leaf's value to one class's
    logit (`tree_classes`), on top of the bias. `average=True` (a forest): a
    leaf's values are class probabilities over the number of trees, and the
    logits are the log of their sum. `depth`: the steps of the walk, the depth
    of the deepest tree (`fit_trees` sets it); at most, and by default,
    `n_leaves` - 1 (each split leaving one leaf).
    """

    def __init__(self, n_trees: int, n_leaves: int, n_classes: int, average: bool = False, depth: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_trees, self.n_leaves, self.n_classes, self.average = int(n_trees), int(n_leaves), int(n_classes), bool(
            average)
        self.depth = self.n_leaves - 1 if depth is None else int(depth)

    @property
    def n_nodes(self) -> int:
        """Nodes a tree may hold: its leaves and the splits above them."""
        return 2 * self.n_leaves - 1

    def build(self, input_shape):
        t, n, c = self.n_trees, self.n_nodes, self.n_classes
        fixed = dict(initializer="zeros", trainable=False)
        self.features = self.add_weight(shape=(t * n,), dtype="int32", name="features", **fixed)
        self.thresholds = self.add_weight(shape=(t * n,), name="thresholds", **fixed)
        # a split's left child (its right child is the next node), or a leaf itself
        self.first_children = self.add_weight(shape=(t * n,), dtype="int32", name="first_children", **fixed)
        self.leaf_values = self.add_weight(shape=(t * n, c if self.average else 1), name="leaf_values", **fixed)
        if not self.average:
            self.tree_classes = self.add_weight(shape=(t, c), name="tree_classes", **fixed)
        self.bias = self.add_weight(shape=(c,), name="bias", **fixed)

    def call(self, inputs):
        # every node's test at once, 1 where the sample goes right (never at a leaf: its threshold is inf), so every
        # node's next node for every sample: [b * nodes]
        right = ops.cast(ops.greater(ops.take(inputs, self.features, axis=1), self.thresholds), "int32")
        following = ops.reshape(right + self.first_children, (-1,))
        rows = ops.expand_dims(ops.arange(ops.shape(inputs)[0], dtype="int32") * self.n_trees * self.n_nodes, 1)
        node = ops.zeros_like(rows) + ops.arange(self.n_trees, dtype="int32") * self.n_nodes  # [b, t]: the roots
        for _ in range(self.depth):
            node = ops.take(following, rows + node)
        values = ops.take(self.leaf_values, node, axis=0)  # [b, t, 1 or classes]
        if self.average:
            return ops.log(ops.maximum(ops.sum(values, axis=1) + self.bias, MIN_PROBABILITY))
        return ops.matmul(values[..., 0], self.tree_classes) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_classes)

    def get_config(self):
        return {**super().get_config(), "n_trees": self.n_trees, "n_leaves": self.n_leaves,
                "n_classes": self.n_classes, "average": self.average, "depth": self.depth}


def trees_per_round(n_classes: int) -> int:
    """Boosting grows one tree per class each round, or one for two classes."""
    return 1 if n_classes == 2 else n_classes


def boosts(values: dict) -> bool:
    """Whether a trial of hyperparameter `values` grows boosted trees: the one solve that stops at a deadline
    (`fit_trees`), keeping the rounds fitted; the other closed-form solves run to their end."""
    return values.get("family") == "trees" and values.get("trees_kind") == "boosted"


def trees_grown(values: dict, n_classes: int) -> int | None:
    """How many trees a `trees` trial with hyperparameter `values` fits: a forest's count, or boosting's rounds times
    `trees_per_round`; None for another family, or a trial without a count."""
    if values.get("family") != "trees" or "trees_count" not in values:
        return None
    rounds = values["trees_count"]
    return rounds * trees_per_round(n_classes) if boosts(values) else rounds


def make_estimator(kind: str, n_estimators: int, n_leaves: int, learning_rate: float, seed: int, *,
                   row_share: float = BOOSTED_SAMPLING["row_share"][0],
                   feature_share: float = BOOSTED_SAMPLING["feature_share"][0],
                   min_leaf_rows: int = BOOSTED_SAMPLING["min_leaf_rows"][0]):
    """scikit-learn's forest, or its gradient boosting; `row_share`, `feature_share` and `min_leaf_rows` (boosting
    only; `BOOSTED_SAMPLING`) make it stochastic: each round fits a share of the rows, each split weighs a share of
    the features, and no leaf holds fewer rows than `min_leaf_rows`. Their defaults are scikit-learn's."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    if kind == "forest":
        return RandomForestClassifier(n_estimators=n_estimators, max_leaf_nodes=n_leaves, random_state=seed,
                                      n_jobs=-1)
    return GradientBoostingClassifier(n_estimators=n_estimators, max_leaf_nodes=n_leaves, max_depth=None,
                                      learning_rate=learning_rate, subsample=row_share, max_features=feature_share,
                                      min_samples_leaf=min_leaf_rows, random_state=seed)


def estimator_arguments(values: dict) -> dict:
    """`make_estimator`'s arguments but the seed, from a `trees` trial's hyperparameter `values`: the learning rate
    and the sampling are absent for a forest (`make_estimator` ignores them there), and the sampling from a trial
    recorded before it was in the space (scikit-learn's defaults apply)."""
    kind = values["trees_kind"]
    sampling = {name: values[f"boosted_{name}"] for name in BOOSTED_SAMPLING if f"boosted_{name}" in values}
    return dict(kind=kind, n_estimators=values["trees_count"], n_leaves=values[f"{kind}_leaves"],
                learning_rate=values.get("trees_learning_rate", 0.1), **sampling)


def fit_trees(model: keras.Model, x: np.ndarray, y: np.ndarray, class_weight: dict | None, *, kind: str,
              n_estimators: int, n_leaves: int, learning_rate: float, seed: int, deadline: float | None = None,
              **sampling) -> dict:
    """Fit the tree ensemble on the `trees` layer's input (the encoded features) and copy it into the layer.

    The `probabilities` layer after it becomes the identity, so the model's
    output is softmax(tree scores): the boosted model's probabilities, or
    the forest's averaged ones. Over `MAX_FIT_ROWS` rows, the trees are fitted
    on a stratified sample of that many. `sampling`: `make_estimator`'s
    keywords (boosting). Boosting stops adding rounds at `deadline` (time.time(); `PastDeadline`) and keeps those
    fitted: a boosted trial on a 1,504-column table took 66 s of a 36-second search where the ledger expected 10.
    Returns the training loss and accuracy, and for boosting the rounds fitted (`ROUNDS_FITTED`).
    """
    if len(x) > MAX_FIT_ROWS:  # trees of at most 64 leaves gain little past it; sklearn's fit time grows with rows
        keep = stratified_rows(y, MAX_FIT_ROWS, seed)
        x, y = x[keep], y[keep]
    layer = model.get_layer("trees")
    features = layer_inputs(model, layer, x)
    estimator = make_estimator(kind, n_estimators, n_leaves, learning_rate, seed, **sampling)
    weights = None if class_weight is None else np.array([class_weight.get(int(c), 1.0) for c in y])
    # A forest's trees grow in parallel, each split weighing a root-sized share of the features: it has no monitor
    # and needs none (4.8 s on the 1,504-column table, where boosting took 66 s).
    if kind == "boosted":
        estimator.fit(features, y, sample_weight=weights, monitor=None if deadline is None else PastDeadline(deadline))
    else:
        estimator.fit(features, y, sample_weight=weights)
    layer.set_weights(_tree_weights(estimator, features, layer))
    depth = max(tree.tree_.max_depth for tree in np.ravel(estimator.estimators_))
    if depth != layer.depth:  # a walk traced before (a refit) may be too short: Keras traces it again
        layer.depth = int(depth)
        model.train_function = model.test_function = model.predict_function = None
    head = model.get_layer("probabilities")
    head.set_weights([np.eye(layer.n_classes, dtype=np.float32), np.zeros(layer.n_classes, np.float32)])
    metrics = training_metrics(model, x, y)
    return {**metrics, ROUNDS_FITTED: int(estimator.n_estimators_)} if kind == "boosted" else metrics


class PastDeadline:
    """`GradientBoostingClassifier.fit`'s `monitor`: stop (True) once time.time() reaches `deadline`; scikit-learn
    keeps the rounds fitted so far."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def __call__(self, round_index: int, estimator, local_variables: dict) -> bool:
        return time.time() >= self.deadline


def _tree_weights(estimator, features: np.ndarray, layer: TreeEnsemble) -> list[np.ndarray]:
    """The layer's weights (features, thresholds, first children, leaf values, tree classes for boosting, bias) for
    a fitted estimator: tree k's nodes from k * n_nodes on, the root first and every split's two children side by
    side."""
    t, n, c = layer.n_trees, layer.n_nodes, layer.n_classes
    node_features = np.zeros((t, n), np.int32)
    thresholds = np.full((t, n), np.inf, np.float32)  # no sample goes right at a leaf, not even an inf one
    first_children = np.arange(t * n, dtype=np.int32).reshape(t, n)  # a leaf (or an unused node) is its own child
    leaf_values = np.zeros((t, n, c if layer.average else 1), np.float32)
    tree_classes = np.zeros((t, c), np.float32)
    bias = np.zeros(c, np.float32)
    classes = np.asarray(estimator.classes_)
    if not hasattr(estimator, "learning_rate"):  # a forest
        trees = [(tree.tree_, None) for tree in estimator.estimators_]
    else:
        # one regression tree per round and class column; two classes have one column (the second class's log-odds)
        columns = classes[1:] if len(classes) == 2 else classes
        trees = [(tree.tree_, label) for row in estimator.estimators_ for tree, label in zip(row, columns)]
        bias[:] = ABSENT_CLASS_LOGIT
        bias[classes] = 0.0
        raw = np.asarray(estimator.decision_function(features[:1]), np.float64).reshape(-1)
        totals = np.zeros(c)
        for tree, label in trees:  # the constant the trees are added to (the prior log-odds)
            totals[label] += estimator.learning_rate * tree.predict(features[:1].astype(np.float32))[0, 0]
        bias[columns] = raw - totals[columns]
    if len(trees) > t:
        raise ValueError(f"the estimator has {len(trees)} trees; the layer holds {t}")
    for k, (tree, label) in enumerate(trees):
        if tree.node_count > n:
            raise ValueError(f"a tree has {tree.n_leaves} leaves; the layer holds {layer.n_leaves}")
        order = _siblings_adjacent(tree)
        place = np.empty(tree.node_count, np.int64)
        place[order] = np.arange(tree.node_count)
        split = np.flatnonzero(tree.children_left >= 0)
        node_features[k, place[split]] = tree.feature[split]
        first_children[k, place[split]] = k * n + place[tree.children_left[split]]
        thresholds[k, place[split]] = [_float32_at_most(v) for v in tree.threshold[split]]
        leaves = np.flatnonzero(tree.children_left < 0)
        if label is None:  # a forest leaf: class fractions, averaged over the trees
            counts = tree.value[leaves, 0]
            leaf_values[k, place[leaves][:, None], classes] = counts / np.maximum(
                counts.sum(axis=1, keepdims=True), 1e-12) / len(trees)
        else:
            leaf_values[k, place[leaves], 0] = estimator.learning_rate * tree.value[leaves, 0, 0]
            tree_classes[k, label] = 1.0
    weights = [node_features.reshape(-1), thresholds.reshape(-1), first_children.reshape(-1),
               leaf_values.reshape(t * n, -1)]
    return weights + ([] if layer.average else [tree_classes]) + [bias]


def _siblings_adjacent(tree) -> np.ndarray:
    """A fitted scikit-learn `tree_`'s node ids in breadth-first order: the root first, and each split's left child
    right before its right one (scikit-learn numbers a best-first tree in the order it grew it)."""
    order, at = [0], 0
    while at < len(order):
        node = order[at]
        if tree.children_left[node] >= 0:
            order += [int(tree.children_left[node]), int(tree.children_right[node])]
        at += 1
    return np.asarray(order, np.int64)


def _float32_at_most(threshold: float) -> np.float32:
    """The largest float32 <= `threshold`: for float32 x, x > it exactly when x > threshold (sklearn goes left on <=)."""
    value = np.float32(threshold)
    return np.nextafter(value, np.float32(-np.inf)) if float(value) > threshold else value
