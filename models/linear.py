"""Multinomial logistic regression solved exactly by scikit-learn, copied into the Keras softmax layer.

On a few hundred rows a softmax regression trained by a few epochs of Adam
is far from its optimum, while scikit-learn's `LogisticRegression` (lbfgs)
reaches it in milliseconds. The `linear` family is that model: the in-model
preprocessing (`TabularEncoder` for tables, `Normalization` for images and
sequences), flattened, then the `probabilities` Dense(softmax) layer, whose
kernel and bias are the fitted coefficients, so the Keras model's
probabilities are scikit-learn's `predict_proba` on the same features. It is
one Dense layer: it exports to TFLite with builtin ops like any other model.
"""

from __future__ import annotations

import keras
import numpy as np
from scipy import sparse

from models.inference import layer_inputs
from models.rocket import ABSENT_CLASS_LOGIT, training_metrics
from models.sampling import stratified_rows

C_VALUES = (0.1, 1.0, 10.0)  # inverse L2 strength, scikit-learn's C
DEFAULT_C = 1.0  # scikit-learn's default
MAX_ITER = 1000  # lbfgs iterations; standardised features converge in far fewer
MAX_FIT_ROWS = 50_000  # the most rows the regression is fitted on (a stratified sample of larger sets)
# The most rows solved on their coordinates (`row_space`): its QR factorisation costs about 2 x rows^2 x width, 5.8 s
# for 2,000 rows of 12,288 inputs (64 x 64 RGB pixels) on 2 cores, and grows past what it saves lbfgs on more rows.
ROW_SPACE_MAX_ROWS = 2_000


def logistic_regression(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER)


def fit_logistic_head(model: keras.Model, x: np.ndarray, y: np.ndarray, class_weight: dict | None, *, c: float,
                      seed: int = 0) -> dict:
    """Fit `LogisticRegression(C=c)` on the input features of the `probabilities` layer and copy it into that layer.

    Class weights weigh each row (as scikit-learn's `class_weight` does).
    Two classes give one coefficient row (the second class's log-odds): the
    first class's logit is then 0, and softmax([0, z]) is the sigmoid of z.
    A class absent from `y` gets a logit that never wins. Over `MAX_FIT_ROWS`
    rows, it is fitted on a stratified sample of that many. Returns the
    training loss and accuracy.
    """
    if len(x) > MAX_FIT_ROWS:
        keep = stratified_rows(y, MAX_FIT_ROWS, seed)
        x, y = x[keep], y[keep]
    head = model.get_layer("probabilities")
    features = layer_inputs(model, head, x).astype(np.float64)
    kernel, bias = solve_logistic(features, y, class_weight, head.units, c=c)
    head.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return training_metrics(model, x, y)


def solve_logistic(features, y: np.ndarray, class_weight: dict | None, n_classes: int, *,
                   c: float) -> tuple[np.ndarray, np.ndarray]:
    """`LogisticRegression(C=c)` on `features` (dense or sparse) as a softmax layer's (kernel, bias), float64.

    Two classes give one coefficient row: the first class's logit is 0; a class absent from `y` gets a logit
    that never wins; one class alone wins everywhere. Class weights weigh each row.
    """
    weights = None if class_weight is None else np.array([class_weight.get(int(label), 1.0) for label in y])
    kernel = np.zeros((features.shape[1], n_classes))
    bias = np.full(n_classes, ABSENT_CLASS_LOGIT, dtype=np.float64)
    classes = np.unique(y)
    if len(classes) == 1:  # nothing to separate: that class wins everywhere
        bias[classes[0]] = 0.0
        return kernel, bias
    basis, coordinates = row_space(features)
    regression = logistic_regression(c).fit(coordinates, y, sample_weight=weights)
    coefficients = regression.coef_ if basis is None else np.asarray(basis @ regression.coef_.T).T
    classes = regression.classes_
    if len(classes) == 2:
        bias[classes[0]] = 0.0
        kernel[:, classes[1]], bias[classes[1]] = coefficients[0], regression.intercept_[0]
    else:
        for row, label in enumerate(classes):
            kernel[:, label], bias[label] = coefficients[row], regression.intercept_[row]
    return kernel, bias


def row_space(features) -> tuple[np.ndarray | None, object]:
    """An orthonormal basis of the span of `features`' rows (width x rows) and each row's coordinates in it (rows x
    rows), for a dense matrix wider than it is tall of at most `ROW_SPACE_MAX_ROWS` rows; for a sparse one with
    empty columns, the columns that hold an entry (a sparse width x used selection, and those columns); (None,
    `features`) for any other.

    Under an L2 penalty the fitted coefficients lie in that span (the representer theorem): a part orthogonal to
    every row changes no logit and only adds to the penalty. So the regression fitted on the coordinates, mapped back
    through the basis, is the same optimum, and each lbfgs step costs rows/width of a step on the full width. A
    series of 1,460 steps with 80 training rows (aeon's ACSF1) took 17 s a fold at lbfgs' 1,000 iterations (99 s
    for a one-minute run's logistic regression trial); on its coordinates, 0.4 s a fold. The basis is a QR
    factorisation of the transpose (features' = Q R, so features Q = R'): a few milliseconds at a few hundred rows.
    """
    rows, width = features.shape
    if sparse.issparse(features):
        # TF-IDF with hashed word pairs: 262,144 pair columns, a few thousand of them in a few hundred texts; lbfgs
        # over every column took 97 s a trial on 269 rows (openintro's blizzard_salary), over the used ones 1.5 s
        used = np.flatnonzero(features.getnnz(axis=0))
        if len(used) == width:
            return None, features
        return sparse.identity(width, format="csc")[:, used], features[:, used]
    if width <= rows or rows > ROW_SPACE_MAX_ROWS:
        return None, features
    basis, triangle = np.linalg.qr(features.T)
    return basis, triangle.T
