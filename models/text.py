"""Text families: token ids (a slice of the model input) to features, with builtin TFLite ops only.

A table with text columns reaches the model as numbers, category codes and,
per text column, `length` token ids (floats holding integers; see
`pipelines.text.tokenizer` for the rule). `TokenIds` slices one column's ids
off the input and casts them to int32; a text-only model's input is its ids
(`reads_token_ids_only`), which its TFLite export takes as int32, as MediaPipe
Tasks' `TextClassifier` feeds them.

- `linear`: TF-IDF into multinomial logistic regression, solved by
  scikit-learn (`fit_tfidf_head`). `TfidfLogits` computes, from the ids,
  exactly scikit-learn's `TfidfVectorizer` (smooth idf, l2-normalised rows)
  times the fitted coefficients, without building a vocabulary-wide vector:
  sum over positions of tf * idf[term] * W[term], divided by the row's norm,
  whose square is the sum over pairs of equal positions of the same products
  (GATHER, EQUAL, BATCH_MATMUL, SUM, SQRT, LOG). `<PAD>` and `<START>` are not
  counted; `<UNKNOWN>` is a word. Two options, chosen by the search
  (`tfidf_bigrams`, `tfidf_sublinear`): word pairs as terms too, each pair of
  adjacent counted ids hashed into `BIGRAM_BUCKETS` (MUL, ADD, FLOOR_MOD on
  int32: an app's ids give the same terms), as `TfidfVectorizer(ngram_range=(1, 2))`
  up to hash collisions; and 1 + log(count) in place of the count
  (`sublinear_tf=True`). Which helps depends on the text, so the portfolio
  tries both (`models.portfolio`, with the measurements) and the validation
  split decides.
- `embedding`: MediaPipe Model Maker's average word embedding (embedding,
  average over the text's tokens, a ReLU layer of the embedding's width).
- `cnn`: 1-D convolution over the embeddings, global max pooling.
- `lstm`: the fused LSTM (`models.lstm.FusedLSTM`) over the embeddings.

Numeric and categorical columns beside the text go through `TabularEncoder`
and join the text's features before the softmax layer: one model, both inputs.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from models.inference import model_outputs
from models.layers import TabularEncoder, all_layers
from models.linear import C_VALUES, DEFAULT_C, solve_logistic
from models.lstm import FusedLSTM
from models.rocket import training_metrics
from models.sampling import stratified_rows

TEXT_FAMILIES = ("linear", "embedding", "cnn", "lstm")
PAD_ID, START_ID = 0, 1  # `pipelines.text.tokenizer`'s ids; words (and <UNKNOWN>, 2) come after
FIRST_COUNTED_ID = 2  # TF-IDF counts <UNKNOWN> and the words
EMBEDDING_DIMS = (16, 32, 64)  # Model Maker's wordvec_dim is 16
TEXT_FILTERS = (32, 64, 128)
TEXT_KERNELS = (3, 5)
LSTM_UNITS = (16, 32, 64)
MAX_FIT_ROWS = 50_000
BIGRAM_BUCKETS = 2 ** 18  # hashed word pairs: few collisions for the ~10^5 distinct pairs of a few thousand texts
BIGRAM_MULTIPLIER = 100_003  # a prime; id * it + id stays below 2**31 for vocabularies up to ~21,000 words
INT32_LIMIT = 2 ** 31
TOKENS_LAYER = "tokens"
TFIDF_LAYER = "tfidf"
ENCODE_LAYER = "encode"


@keras.saving.register_keras_serializable(package="kerasflow")
class TokenIds(keras.layers.Layer):
    """One text column's token ids, int32 [batch, length], sliced from the float model input at `start`."""

    def __init__(self, start: int, length: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.length = int(start), int(length)

    def call(self, inputs):
        return ops.cast(ops.round(inputs[:, self.start:self.start + self.length]), "int32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], self.length), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "start": self.start, "length": self.length}


def tfidf_terms(ids, vocabulary_size: int, bigram_buckets: int = 0):
    """(term ids, counted mask as float32) of [batch, length] token ids: the ids themselves, then, with
    `bigram_buckets`, each pair of adjacent counted ids hashed to `vocabulary_size` + (a * `BIGRAM_MULTIPLIER`
    + b) mod `bigram_buckets`. Positions that are not counted (`<PAD>`, `<START>`) get term 0 and mask 0.

    Keras ops on int32, so the model's graph and `fit_tfidf_head`'s numpy arrays compute the same terms.
    """
    ids = ops.cast(ids, "int32")
    counted = ops.greater_equal(ids, FIRST_COUNTED_ID)
    terms, masks = [ops.where(counted, ids, 0)], [counted]
    if bigram_buckets:
        first, second = ids[:, :-1], ids[:, 1:]
        pair = ops.logical_and(counted[:, :-1], counted[:, 1:])
        hashed = vocabulary_size + ops.mod(first * BIGRAM_MULTIPLIER + second, bigram_buckets)
        terms.append(ops.where(pair, hashed, 0))
        masks.append(pair)
    return ops.concatenate(terms, axis=1), ops.cast(ops.concatenate(masks, axis=1), "float32")


@keras.saving.register_keras_serializable(package="kerasflow")
class TfidfLogits(keras.layers.Layer):
    """Per-class scores of l2-normalised TF-IDF vectors: [batch, length] ids -> [batch, classes].

    `idf` [terms] and `coefficients` [terms, classes] are weights set by `fit_tfidf_head`; the terms are the
    vocabulary's words, then `bigram_buckets` hashed word pairs (`tfidf_terms`). `sublinear`: 1 + log(count).
    """

    def __init__(self, vocabulary_size: int, classes: int, bigram_buckets: int = 0, sublinear: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.classes = int(vocabulary_size), int(classes)
        self.bigram_buckets, self.sublinear = int(bigram_buckets), bool(sublinear)
        if self.bigram_buckets and self.vocabulary_size * (BIGRAM_MULTIPLIER + 1) >= INT32_LIMIT:
            raise ValueError(f"a vocabulary of {self.vocabulary_size:,} words is too large to hash word pairs "
                             "in int32")

    @property
    def terms(self) -> int:
        return self.vocabulary_size + self.bigram_buckets

    def build(self, input_shape):
        self.idf = self.add_weight(shape=(self.terms,), initializer="ones", trainable=False, name="idf")
        self.coefficients = self.add_weight(shape=(self.terms, self.classes), initializer="zeros",
                                            trainable=False, name="coefficients")

    def call(self, ids):
        terms, counted = tfidf_terms(ids, self.vocabulary_size, self.bigram_buckets)
        same = ops.cast(ops.equal(ops.expand_dims(terms, 2), ops.expand_dims(terms, 1)), "float32")
        weight = ops.take(self.idf, terms, axis=0) * counted  # idf of each position's term, 0 where not counted
        if self.sublinear:  # a term seen c times: each of its positions carries (1 + log c) / c
            count = ops.maximum(ops.squeeze(ops.matmul(same, ops.expand_dims(counted, 2)), 2), 1.0)
            weight = weight * (1.0 + ops.log(count)) / count
        square = ops.sum(weight * ops.squeeze(ops.matmul(same, ops.expand_dims(weight, 2)), 2), axis=1, keepdims=True)
        scores = ops.sum(ops.take(self.coefficients, terms, axis=0) * ops.expand_dims(weight, 2), axis=1)
        return scores / ops.sqrt(ops.maximum(square, 1e-12))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "classes": self.classes,
                "bigram_buckets": self.bigram_buckets, "sublinear": self.sublinear}


@keras.saving.register_keras_serializable(package="kerasflow")
class MaskedAverage(keras.layers.Layer):
    """The mean of [batch, length, width] embeddings over the positions whose id is not `<PAD>`."""

    def call(self, inputs):
        embeddings, ids = inputs
        mask = ops.expand_dims(ops.cast(ops.not_equal(ids, PAD_ID), embeddings.dtype), 2)
        return ops.sum(embeddings * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])


def reads_token_ids_only(model) -> bool:
    """Whether `model`'s whole input is token ids: it reads text (`TokenIds`) and no other column (`TableColumns`)."""
    layers = list(all_layers(model))
    return any(isinstance(layer, TokenIds) for layer in layers) and \
        not any(isinstance(layer, TableColumns) for layer in layers)


def text_features(hp, family: str, inputs, prep):
    """The features of `family` on every text column of `inputs`, then the encoded other columns, concatenated."""
    vocabulary_size, length = len(prep.tokenizer["vocabulary"]), int(prep.tokenizer["length"])
    parts = []
    for i, _ in enumerate(prep.text_columns):
        suffix = f"_{i}" if i else ""
        ids = TokenIds(prep.text_start + i * length, length, name=f"{TOKENS_LAYER}{suffix}")(inputs)
        parts.append(_family_features(hp, family, ids, vocabulary_size, len(prep.class_names), suffix))
    if prep.text_start:
        table = TableColumns(prep.text_start, name="table_columns")(inputs)
        parts.append(TabularEncoder(prep.mean, prep.variance, prep.cardinalities, name=ENCODE_LAYER,
                                    dtype="float32")(table))
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="text_and_table")(parts)


@keras.saving.register_keras_serializable(package="kerasflow")
class TableColumns(keras.layers.Layer):
    """The first `columns` of the input: the numbers and category codes before the token ids."""

    def __init__(self, columns: int, **kwargs):
        super().__init__(**kwargs)
        self.columns = int(columns)

    def call(self, inputs):
        return inputs[:, :self.columns]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.columns)

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}


def _family_features(hp, family: str, ids, vocabulary_size: int, classes: int, suffix: str):
    if family == "linear":
        hp.Choice("linear_c", list(C_VALUES), default=DEFAULT_C)
        buckets = BIGRAM_BUCKETS if hp.Boolean("tfidf_bigrams", default=False) else 0
        return TfidfLogits(vocabulary_size, classes, buckets, hp.Boolean("tfidf_sublinear", default=False),
                           name=f"{TFIDF_LAYER}{suffix}", dtype="float32")(ids)
    width = hp.Choice(embedding_width_name(family), list(EMBEDDING_DIMS), default=EMBEDDING_DIMS[0])
    embedded = keras.layers.Embedding(vocabulary_size, width, name=f"embedding{suffix}")(ids)
    if family == "embedding":
        average = MaskedAverage(name=f"average{suffix}")([embedded, ids])
        return keras.layers.Dense(width, activation="relu")(average)
    if family == "cnn":
        filters = hp.Choice("text_filters", list(TEXT_FILTERS), default=64)
        kernel = hp.Choice("text_kernel", list(TEXT_KERNELS), default=TEXT_KERNELS[0])
        convolved = keras.layers.Conv1D(filters, kernel, padding="same", activation="relu")(embedded)
        return keras.layers.GlobalMaxPooling1D()(convolved)
    if family == "lstm":
        return FusedLSTM(hp.Choice("lstm_units", list(LSTM_UNITS), default=32))(embedded)
    raise ValueError(f"family {family!r} does not read text; text families are {TEXT_FAMILIES}")


def embedding_width_name(family: str) -> str:
    """The hyperparameter of `family`'s embedding width: one name per family. keras-tuner keeps one value per name,
    and `HyperParameters.ensure_active_values` drops a name shared with an inactive family's conditional scope
    (a hyperband trial then fails on the missing value, or reloads weights into a model of another width)."""
    return "embedding_dim" if family == "embedding" else f"{family}_embedding_dim"


def tfidf_matrix(ids: np.ndarray, layer: TfidfLogits, idf: np.ndarray | None = None):
    """(scikit-learn's TF-IDF rows of `ids` under `layer`'s terms and tf rule as a sparse matrix, the idf used):
    `idf` fitted on these rows if None."""
    from scipy import sparse
    from sklearn.preprocessing import normalize

    terms, counted = (ops.convert_to_numpy(part) for part in
                      tfidf_terms(np.asarray(ids, dtype=np.int32), layer.vocabulary_size, layer.bigram_buckets))
    rows, positions = np.nonzero(counted)
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, terms[rows, positions])), shape=(len(ids), layer.terms))
    counts.sum_duplicates()
    if layer.sublinear:
        counts.data = 1.0 + np.log(counts.data)
    if idf is None:
        documents = np.bincount(counts.indices, minlength=layer.terms)
        # a term in no training row (a hashed pair, or a word of another fold) is left out, as scikit-learn's
        # vectorizer leaves out what it did not see: idf 0 keeps it out of the scores and of the row's norm
        idf = np.where(documents > 0, np.log((1 + len(ids)) / (1 + documents)) + 1.0, 0.0)
    return normalize(counts.multiply(idf[None, :]).tocsr()), idf


def fit_tfidf_head(model: keras.Model, x: np.ndarray, y: np.ndarray, class_weight: dict | None, *, c: float,
                   seed: int = 0) -> dict:
    """Fit logistic regression on the TF-IDF rows of every text column (and the encoded other columns) and copy it
    into the `TfidfLogits` layers and the softmax layer (identity on the text scores, the coefficients on the rest).

    Returns the training loss and accuracy, as `models.linear.fit_logistic_head` does.
    """
    from scipy import sparse

    if len(x) > MAX_FIT_ROWS:
        keep = stratified_rows(y, MAX_FIT_ROWS, seed)
        x, y = x[keep], y[keep]
    head = model.get_layer("probabilities")
    n_classes = head.units
    tokens = [layer for layer in model.layers if isinstance(layer, TokenIds)]
    scorers = [layer for layer in model.layers if isinstance(layer, TfidfLogits)]
    blocks, idfs = [], []
    for layer, scorer in zip(tokens, scorers):
        ids = np.rint(x[:, layer.start:layer.start + layer.length]).astype(np.int64)
        matrix, idf = tfidf_matrix(ids, scorer)
        blocks.append(matrix)
        idfs.append(idf)
    encode = next((layer for layer in model.layers if layer.name == ENCODE_LAYER), None)
    table = model_outputs(keras.Model(model.input, encode.output), x) if encode is not None else None
    features = sparse.hstack(blocks + ([sparse.csr_matrix(table.astype(np.float64))] if table is not None else [])
                             ).tocsr()
    coefficients, bias = solve_logistic(features, y, class_weight, n_classes, c=c)
    kernel_rows, offset = [], 0
    for scorer, idf, block in zip(scorers, idfs, blocks):
        width = block.shape[1]
        scorer.set_weights([idf.astype(np.float32), coefficients[offset:offset + width].astype(np.float32)])
        kernel_rows.append(np.eye(n_classes))
        offset += width
    if table is not None:
        kernel_rows.append(coefficients[offset:])
    head.set_weights([np.concatenate(kernel_rows).astype(np.float32), bias.astype(np.float32)])
    return training_metrics(model, x, y)


def informative_tokens(model: keras.Model, vocabulary: list[str], class_names: list[str], top: int = 10
                       ) -> dict[str, list[str]]:
    """Per class, the `top` words of the first TF-IDF layer with the largest coefficients (a linear model), or {}."""
    scorer = next((layer for layer in all_layers(model) if isinstance(layer, TfidfLogits)), None)
    if scorer is None:
        return {}
    coefficients = keras.ops.convert_to_numpy(scorer.coefficients)
    words = np.arange(FIRST_COUNTED_ID + 1, len(vocabulary))  # the words, <UNKNOWN> left out
    if len(class_names) == 2:  # one coefficient row: large for the second class, small for the first
        order = words[np.argsort(-coefficients[words, 1], kind="stable")]
        return {class_names[1]: [vocabulary[i] for i in order[:top]],
                class_names[0]: [vocabulary[i] for i in order[::-1][:top]]}
    return {name: [vocabulary[i] for i in words[np.argsort(-coefficients[words, k], kind="stable")][:top]]
            for k, name in enumerate(class_names)}

