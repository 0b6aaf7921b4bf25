"""Tree ensembles as a Keras layer: gradient-boosted trees or a random forest, evaluated with tensor ops.

On small tables a tree ensemble is often the strongest model there is, and
no Keras layer learns one. So the `trees` family fits scikit-learn's
`GradientBoostingClassifier` or `RandomForestClassifier` on the in-model
encoded features (in closed form, like MiniRocket's ridge head) and copies
every tree into `TreeEnsemble`, which evaluates them the way Hummingbird's
GEMM strategy does (Nakandala et al. 2020, "A Tensor Compiler for Unified
Machine Learning Prediction Serving"):

1. gather each internal node's feature and compare it with the node's
   threshold: D[b, t, i] = 1 when sample b goes right at node i of tree t;
2. D @ paths[t] counts, for every leaf, the right turns taken minus the
   left-branch nodes wrongly taken right; a leaf is reached exactly when that
   count equals its number of right turns (`targets`);
3. reached @ leaf_values[t], summed over trees, gives the class scores.

Gather, greater, cast, batch matmul and sum are builtin TFLite ops, so the
model exports like any other. Trees are padded to one node count; a padded
node has an all-zero path row and a padded leaf can never be reached.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from models.inference import layer_inputs
from models.rocket import ABSENT_CLASS_LOGIT, training_metrics
from models.sampling import stratified_rows

KINDS = ("forest", "boosted")  # the first is the default
UNREACHABLE = 1e9
MIN_PROBABILITY = 1e-6
MAX_FIT_ROWS = 20_000  # the most rows the trees are fitted on (a stratified sample of larger sets)
# Stochastic gradient boosting (Friedman 2002, "Stochastic gradient boosting"), `make_estimator`'s keywords -> the
# values the search tries (hyperparameter `boosted_<keyword>`): the share of the rows each round fits, the share of
# the features each split weighs, the fewest rows a leaf may hold. The first of each is scikit-learn's default
# (every row, every feature, one row): the boosted trees kerasflow grew before.
BOOSTED_SAMPLING = {"row_share": (1.0, 0.8), "feature_share": (1.0, 0.5), "min_leaf_rows": (1, 10, 20)}


@keras.saving.register_keras_serializable(package="kerasflow")
class TreeEnsemble(keras.layers.Layer):
    """`n_trees` trees of at most `n_leaves` leaves over the input's features -> `n_classes` logits.

    `average=False` (boosting): logits are the bias plus the sum of the leaves
    reached. `average=True` (a forest): leaf values are class probabilities
    over the number of trees, and the logits are their log.
    """

    def __init__(self, n_trees: int, n_leaves: int, n_classes: int, average: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_trees, self.n_leaves, self.n_classes, self.average = int(n_trees), int(n_leaves), int(n_classes), bool(
            average)

    @property
    def n_internal(self) -> int:
        return self.n_leaves - 1

    def build(self, input_shape):
        t, i, l, c = self.n_trees, self.n_internal, self.n_leaves, self.n_classes
        fixed = dict(initializer="zeros", trainable=False)
        self.features = self.add_weight(shape=(t * i,), dtype="int32", name="features", **fixed)
        self.thresholds = self.add_weight(shape=(t * i,), name="thresholds", **fixed)
        self.paths = self.add_weight(shape=(t, i, l), name="paths", **fixed)
        self.targets = self.add_weight(shape=(t, 1, l), name="targets", initializer=keras.initializers.Constant(
            UNREACHABLE), trainable=False)
        self.leaf_values = self.add_weight(shape=(t, l, c), name="leaf_values", **fixed)
        self.bias = self.add_weight(shape=(c,), name="bias", **fixed)

    def call(self, inputs):
        right = ops.cast(ops.greater(ops.take(inputs, self.features, axis=1), self.thresholds), inputs.dtype)
        right = ops.transpose(ops.reshape(right, (-1, self.n_trees, self.n_internal)), (1, 0, 2))  # [t, b, i]
        reached = ops.cast(ops.greater(ops.matmul(right, self.paths), self.targets - 0.5), inputs.dtype)  # [t, b, l]
        scores = ops.sum(ops.matmul(reached, self.leaf_values), axis=0) + self.bias  # [b, c]
        return ops.log(ops.maximum(scores, MIN_PROBABILITY)) if self.average else scores

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_classes)

    def get_config(self):
        return {**super().get_config(), "n_trees": self.n_trees, "n_leaves": self.n_leaves,
                "n_classes": self.n_classes, "average": self.average}


def trees_per_round(n_classes: int) -> int:
    """Boosting grows one tree per class each round, or one for two classes."""
    return 1 if n_classes == 2 else n_classes


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


def fit_trees(model: keras.Model, x: np.ndarray, y: np.ndarray, class_weight: dict | None, *, kind: str,
              n_estimators: int, n_leaves: int, learning_rate: float, seed: int, **sampling) -> dict:
    """Fit the tree ensemble on the `trees` layer's input (the encoded features) and copy it into the layer.

    The `probabilities` layer after it becomes the identity, so the model's
    output is softmax(tree scores): the boosted model's probabilities, or
    the forest's averaged ones. Over `MAX_FIT_ROWS` rows, the trees are fitted
    on a stratified sample of that many. `sampling`: `make_estimator`'s
    keywords (boosting). Returns the training loss and accuracy.
    """
    if len(x) > MAX_FIT_ROWS:  # trees of at most 64 leaves gain little past it; sklearn's fit time grows with rows
        keep = stratified_rows(y, MAX_FIT_ROWS, seed)
        x, y = x[keep], y[keep]
    layer = model.get_layer("trees")
    features = layer_inputs(model, layer, x)
    estimator = make_estimator(kind, n_estimators, n_leaves, learning_rate, seed, **sampling)
    weights = None if class_weight is None else np.array([class_weight.get(int(c), 1.0) for c in y])
    estimator.fit(features, y, sample_weight=weights)
    layer.set_weights(_tree_weights(estimator, features, layer))
    head = model.get_layer("probabilities")
    head.set_weights([np.eye(layer.n_classes, dtype=np.float32), np.zeros(layer.n_classes, np.float32)])
    return training_metrics(model, x, y)


def _tree_weights(estimator, features: np.ndarray, layer: TreeEnsemble) -> list[np.ndarray]:
    """The layer's weights (features, thresholds, paths, targets, leaf values, bias) for a fitted estimator."""
    t, i, l, c = layer.n_trees, layer.n_internal, layer.n_leaves, layer.n_classes
    node_features = np.zeros((t, i), np.int32)
    thresholds = np.zeros((t, i), np.float32)
    paths = np.zeros((t, i, l), np.float32)
    targets = np.full((t, 1, l), UNREACHABLE, np.float32)
    leaf_values = np.zeros((t, l, c), np.float32)
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
        internal = np.flatnonzero(tree.children_left >= 0)
        leaves = np.flatnonzero(tree.children_left < 0)
        if len(internal) > i:
            raise ValueError(f"a tree has {len(leaves)} leaves; the layer holds {l}")
        column = {node: n for n, node in enumerate(internal)}
        parents = _parents(tree)
        node_features[k, :len(internal)] = tree.feature[internal]
        thresholds[k, :len(internal)] = [_float32_at_most(v) for v in tree.threshold[internal]]
        for n, leaf in enumerate(leaves):
            path = _path_to(parents, leaf)
            for node, went_right in path:
                paths[k, column[node], n] = 1.0 if went_right else -1.0
            targets[k, 0, n] = sum(went_right for _, went_right in path)
            if label is None:  # a forest leaf: class fractions, averaged over the trees
                fractions = tree.value[leaf, 0] / max(tree.value[leaf, 0].sum(), 1e-12)
                leaf_values[k, n, classes] = fractions / len(trees)
            else:
                leaf_values[k, n, label] = estimator.learning_rate * tree.value[leaf, 0, 0]
    return [node_features.reshape(-1), thresholds.reshape(-1), paths, targets, leaf_values, bias]


def _parents(tree) -> dict[int, tuple[int, bool]]:
    """child -> (parent, whether the child is the right one), for a fitted sklearn `tree_`."""
    parents = {}
    for node in np.flatnonzero(tree.children_left >= 0):
        parents[int(tree.children_left[node])] = (int(node), False)
        parents[int(tree.children_right[node])] = (int(node), True)
    return parents


def _path_to(parents: dict[int, tuple[int, bool]], leaf: int) -> list[tuple[int, bool]]:
    """(internal node, went right) from the root down to `leaf`."""
    path, node = [], int(leaf)
    while node in parents:
        node, went_right = parents[node]
        path.append((node, went_right))
    return path[::-1]


def _float32_at_most(threshold: float) -> np.float32:
    """The largest float32 <= `threshold`: for float32 x, x > it exactly when x > threshold (sklearn goes left on <=)."""
    value = np.float32(threshold)
    return np.nextafter(value, np.float32(-np.inf)) if float(value) > threshold else value
