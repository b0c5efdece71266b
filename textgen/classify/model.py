"""The review classifier: raw text in, class probabilities out.

    lstm:   string -> TextVectorization -> LastTokens -> Embedding -> LSTM (or bidirectional)
                   -> Dense(64, relu) -> Dropout -> output
    ngrams: string -> TextVectorization (words and word pairs: multi-hot, or counts for topics)
                   -> FeatureWeights (naive-Bayes ratios) -> SparseDropout -> output

The output is Dense(1, sigmoid) for two classes, Dense(n, softmax) for more. The loss is
cross-entropy, except for topics (n-grams, more than two classes): a margin on the scores
under the softmax (textgen.classify.losses).

The vectorizer is part of the saved model, so a `.keras` file predicts on raw strings. Its
standardisation is a registered, serialisable function (no Lambda layer), so the file loads
with `safe_mode=True`. Importing this module imports TensorFlow (quietly).
"""

from __future__ import annotations

import numpy as np

from textgen.classify.config import TOPICS_MARGIN, Arch, ClassifierConfig
from textgen.classify.losses import MarginLoss
from textgen.recurrent import Cell
from textgen.tf_setup import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)


@keras.saving.register_keras_serializable(package="textgen")
def standardize_review(text: tf.Tensor) -> tf.Tensor:
    """Lower-case; HTML line breaks, punctuation and odd whitespace to plain spaces.

    Only letters, marks and digits survive, so no token holds a character (such as U+0085,
    common in aclImdb) that would split a line of the saved vocabulary file. A NUL goes
    first: TensorFlow's lower-casing ends a text at its first one.
    """
    text = tf.strings.regex_replace(text, r"\x00", " ")
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(text, r"[^\p{L}\p{M}\p{N}]+", " ")


@keras.saving.register_keras_serializable(package="textgen")
class LastTokens(keras.layers.Layer):
    """Keeps each text's last `length` token ids (left-aligned, zero-padded after them).

    Reviews tend to end with their verdict, and TextVectorization's own truncation keeps the
    first tokens; Keras' `pad_sequences` keeps the last ones by default, as this layer does.
    Input: (batch, time) ids, 0 = padding. Output: (batch, length).
    """

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = length

    def call(self, ids):
        ops = keras.ops
        ids = ops.pad(ids, [[0, 0], [0, 1]])  # at least one column, even for empty texts
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1)
        start = ops.maximum(lengths - self.length, 0)
        positions = start[:, None] + ops.arange(self.length, dtype="int32")[None, :]
        last = ops.shape(ids)[1] - 1
        taken = ops.take_along_axis(ids, ops.minimum(positions, last), axis=1)
        return ops.where(positions < lengths[:, None], taken, ops.zeros_like(taken))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def get_config(self) -> dict:
        return {**super().get_config(), "length": self.length}


def feature_counts(vectorize: keras.layers.TextVectorization, train_data: tf.data.Dataset,
                   classes: int) -> np.ndarray:
    """(features, classes): how many training texts of each class hold each feature."""
    counts = np.zeros((vectorize.vocabulary_size(), classes))
    for texts, labels in train_data:
        features = vectorize(texts)
        holds = tf.SparseTensor(features.indices, tf.ones_like(features.values, tf.float32),
                                features.dense_shape)  # 1 per text, however often it occurs
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), classes)
        counts += tf.sparse.sparse_dense_matmul(holds, one_hot, adjoint_a=True).numpy()
    return counts


def naive_bayes_ratios(counts: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """log((p / |p|) / (q / |q|)): how much more often each feature occurs in class 1 texts.

    p and q count the class 1 and class 0 training texts holding each feature (the columns
    of `counts`), plus `smoothing`.
    """
    counts = counts + smoothing
    shares = counts / counts.sum(axis=0, keepdims=True)
    return np.log(shares[:, 1] / shares[:, 0]).astype("float32")


def inverse_document_frequencies(counts: np.ndarray, texts: int) -> np.ndarray:
    """log((1 + n) / (1 + df)) + 1, scikit-learn's smoothed idf, for `texts` training texts
    and the (features, classes) counts: rare features weigh more than common ones."""
    holding = counts.sum(axis=1)
    return (np.log((1 + texts) / (1 + holding)) + 1).astype("float32")


@keras.saving.register_keras_serializable(package="textgen")
class FeatureWeights(keras.layers.Layer):
    """Multiplies each column of sparse (batch, features) input by a fixed weight (saved with
    the model, not trained). With `sublinear`, a count c first becomes 1 + log(c); with
    `normalize`, each row is then scaled to unit length (L2)."""

    def __init__(self, weights=None, size: int | None = None, normalize: bool = False,
                 sublinear: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size if size is not None else len(weights))
        self.normalize = normalize
        self.sublinear = sublinear
        self._initial = None if weights is None else np.asarray(weights, dtype="float32")

    def build(self, input_shape):
        initial = self._initial
        self.feature_weights = self.add_weight(
            name="feature_weights", shape=(self.size,), trainable=False,
            initializer=(keras.initializers.Ones() if initial is None
                         else lambda shape, dtype=None: keras.ops.convert_to_tensor(initial)))

    def call(self, features):
        scale = tf.gather(self.feature_weights, features.indices[:, 1])
        values = tf.cast(features.values, scale.dtype)
        if self.sublinear:
            values = 1.0 + tf.math.log(values)
        values = values * scale
        if self.normalize:
            rows = features.indices[:, 0]
            norms = tf.sqrt(tf.math.unsorted_segment_sum(
                tf.square(values), rows, num_segments=features.dense_shape[0]))
            values = values / tf.maximum(tf.gather(norms, rows), 1e-12)
        return tf.SparseTensor(features.indices, values, features.dense_shape)

    def compute_output_spec(self, features):
        return keras.KerasTensor(features.shape, dtype="float32", sparse=features.sparse)

    def get_config(self) -> dict:
        config = {**super().get_config(), "size": self.size, "normalize": self.normalize}
        if self.sublinear:  # only where used: two-class models stay loadable by older textgen
            config["sublinear"] = True
        return config


@keras.saving.register_keras_serializable(package="textgen")
class SparseDropout(keras.layers.Layer):
    """Dropout for sparse features (Keras' Dropout takes dense input only): drops stored
    values, scales the rest."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, features, training=None):
        if not training or self.rate == 0:
            return features
        keep = keras.random.uniform(tf.shape(features.values),
                                    seed=self.seed_generator) >= self.rate
        kept = tf.sparse.retain(features, keep)
        return tf.SparseTensor(kept.indices, kept.values / (1.0 - self.rate), kept.dense_shape)

    def compute_output_spec(self, features, training=None):
        return keras.KerasTensor(features.shape, dtype=features.dtype, sparse=features.sparse)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _sequence_body(config: ClassifierConfig, inputs: keras.KerasTensor,
                   train_data: tf.data.Dataset) -> keras.KerasTensor:
    """lstm: the last seq_length word ids -> Embedding -> the cell (LSTM by default; or
    bidirectional) -> Dense."""
    vectorize = keras.layers.TextVectorization(
        max_tokens=config.max_tokens, standardize=standardize_review, name="vectorize")
    vectorize.adapt(train_data.map(lambda text, label: text))
    x = LastTokens(config.seq_length, name="last_tokens")(vectorize(inputs))
    # As many word vectors as the texts have words (up to max_tokens): 20 one-liners need a
    # few hundred, not 20,000 (2.6M weights and their optimizer state in every checkpoint).
    x = keras.layers.Embedding(vectorize.vocabulary_size(), config.embed_dim, mask_zero=True,
                               name="embedding")(x)
    cell = Cell(config.cell)
    rnn = cell.layer_class()(config.units, dropout=config.input_dropout,
                             name=RNN_LAYER_NAMES[cell])
    x = keras.layers.Bidirectional(rnn, name="bidirectional")(x) if config.bidirectional else rnn(x)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    return keras.layers.Dropout(config.dropout, name="dropout")(x)


def _ngram_body(config: ClassifierConfig, inputs: keras.KerasTensor,
                train_data: tf.data.Dataset) -> keras.KerasTensor:
    """ngrams: which words and word pairs a text contains, weighted, for a linear model.

    With two classes each feature is weighted by its naive-Bayes log-count ratio (NBSVM,
    Wang & Manning 2012), measured on the training texts. With more classes (topics) there is
    no one ratio: each feature's count c counts as 1 + log(c), weighted by the feature's
    inverse document frequency, and each text's features are scaled to unit length
    (sublinear TF-IDF), so long posts do not shout louder than short ones. The features stay
    sparse: a text holds a few hundred of the max_tokens n-grams.
    """
    vectorize = keras.layers.TextVectorization(
        max_tokens=config.max_tokens, ngrams=2, sparse=True, standardize=standardize_review,
        output_mode="multi_hot" if config.binary else "count", name="vectorize")
    vectorize.adapt(train_data.map(lambda text, label: text))
    counts = feature_counts(vectorize, train_data, len(config.class_names))
    if config.binary:
        weights = naive_bayes_ratios(counts)
    else:
        texts = sum(int(tf.shape(labels)[0]) for _, labels in train_data)
        weights = inverse_document_frequencies(counts, texts)
    x = FeatureWeights(weights, normalize=not config.binary, sublinear=not config.binary,
                       name="feature_weights")(vectorize(inputs))
    return SparseDropout(config.dropout, name="dropout")(x)


ARCHITECTURES = {Arch.lstm: _sequence_body, Arch.ngrams: _ngram_body}
# The recurrent layer's name (the LSTM keeps the name earlier runs saved).
RNN_LAYER_NAMES = {Cell.lstm: "lstm", Cell.gru: "gru", Cell.simplernn: "simplernn"}


def build_classifier(config: ClassifierConfig, train_data: tf.data.Dataset) -> keras.Model:
    """The classifier, its vectorizer (and n-gram weights) fitted on `train_data`.

    `train_data` is a dataset of (string batch, integer label batch) pairs.
    """
    inputs = keras.Input(shape=(), dtype="string", name="text")
    x = ARCHITECTURES[config.arch](config, inputs, train_data)
    # The n-gram model is linear: it starts from zero weights (every class equally likely),
    # as logistic regression does. Random ones scaled for a small vocabulary are large, and
    # over a few weighted features they made confident wrong guesses that 240 one-liners
    # took more updates to undo than they had.
    start = "zeros" if config.arch == Arch.ngrams else "glorot_uniform"
    if config.binary:
        outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=start,
                                     name="probability")(x)
    else:
        outputs = keras.layers.Dense(len(config.class_names), activation="softmax",
                                     kernel_initializer=start, name="probabilities")(x)
    return keras.Model(inputs, outputs, name="review_classifier")


def compile_args(config: ClassifierConfig) -> dict:
    """The loss for the output layer's shape (the margin for topics), and accuracy."""
    if config.topics:
        loss = MarginLoss(TOPICS_MARGIN)
    else:
        loss = "binary_crossentropy" if config.binary else "sparse_categorical_crossentropy"
    return {"loss": loss, "metrics": ["accuracy"]}


def as_targets(data: tf.data.Dataset, binary: bool) -> tf.data.Dataset:
    """Labels in the shape the loss expects: float (batch, 1) for binary, int otherwise."""
    if not binary:
        return data
    return data.map(lambda text, label: (text, tf.cast(tf.reshape(label, [-1, 1]), tf.float32)))
