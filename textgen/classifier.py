"""The review classifier: raw text in, class probabilities out, and its metrics.

    string -> TextVectorization -> Embedding -> LSTM (or bidirectional) -> Dense(64, relu)
           -> Dropout -> Dense(1, sigmoid) for two classes, Dense(n, softmax) for more

The vectorizer is part of the saved model, so a `.keras` file predicts on raw strings. Its
standardisation is a registered, serialisable function (no Lambda layer), so the file loads
with `safe_mode=True`. Importing this module imports TensorFlow (quietly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from textgen.errors import TextgenError
from textgen.tf_setup import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)


@keras.saving.register_keras_serializable(package="textgen")
def standardize_review(text: tf.Tensor) -> tf.Tensor:
    """Lower-case; HTML line breaks, punctuation and odd whitespace to plain spaces.

    Only letters, marks and digits survive, so no token holds a character (such as U+0085,
    common in aclImdb) that would split a line of the saved vocabulary file.
    """
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


@dataclass
class ClassifierConfig:
    """Hyper-parameters of a classifier; saved in the run folder."""

    class_names: list[str] = field(default_factory=lambda: ["neg", "pos"])
    max_tokens: int = 20000
    seq_length: int = 200
    embed_dim: int = 128
    units: int = 64
    bidirectional: bool = False
    dropout: float = 0.5
    learning_rate: float = 1e-3
    arch: str = "lstm"

    def __post_init__(self) -> None:
        checks = [
            (self.arch in ARCHITECTURES, f"--arch must be one of {', '.join(ARCHITECTURES)}, "
                                         f"got {self.arch!r}"),
            (len(self.class_names) >= 2, "a classifier needs at least two classes"),
            (self.max_tokens >= 2, f"--max-tokens must be >= 2, got {self.max_tokens}"),
            (self.seq_length >= 1, f"--seq-length must be >= 1, got {self.seq_length}"),
            (self.embed_dim >= 1, f"--embed-dim must be >= 1, got {self.embed_dim}"),
            (self.units >= 1, f"--units must be >= 1, got {self.units}"),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}"),
            (self.learning_rate > 0, f"--learning-rate must be > 0, got {self.learning_rate}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TextgenError(message)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _sequence_body(config: ClassifierConfig, inputs: keras.KerasTensor, train_texts):
    """lstm: the last seq_length word ids -> Embedding -> LSTM (or bidirectional) -> Dense."""
    vectorize = keras.layers.TextVectorization(
        max_tokens=config.max_tokens, standardize=standardize_review, name="vectorize")
    vectorize.adapt(train_texts)
    x = LastTokens(config.seq_length, name="last_tokens")(vectorize(inputs))
    x = keras.layers.Embedding(config.max_tokens, config.embed_dim, mask_zero=True,
                               name="embedding")(x)
    rnn = keras.layers.LSTM(config.units, name="lstm")
    x = keras.layers.Bidirectional(rnn, name="bidirectional")(x) if config.bidirectional else rnn(x)
    return keras.layers.Dense(64, activation="relu", name="hidden")(x)


def _ngram_body(config: ClassifierConfig, inputs: keras.KerasTensor, train_texts):
    """ngrams: the strong fast baseline, TF-IDF of words and word pairs -> Dense(64, relu)."""
    vectorize = keras.layers.TextVectorization(
        max_tokens=config.max_tokens, ngrams=2, output_mode="tf_idf",
        standardize=standardize_review, name="vectorize")
    vectorize.adapt(train_texts)
    x = keras.layers.Dropout(config.dropout, name="input_dropout")(vectorize(inputs))
    return keras.layers.Dense(64, activation="relu", name="hidden")(x)


ARCHITECTURES = {"lstm": _sequence_body, "ngrams": _ngram_body}


def build_classifier(config: ClassifierConfig, train_texts: tf.data.Dataset) -> keras.Model:
    """The classifier, its vectorizer adapted on `train_texts` (a dataset of string batches)."""
    inputs = keras.Input(shape=(), dtype="string", name="text")
    x = ARCHITECTURES[config.arch](config, inputs, train_texts)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    if config.binary:
        outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    else:
        outputs = keras.layers.Dense(len(config.class_names), activation="softmax",
                                     name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="review_classifier")
    loss = "binary_crossentropy" if config.binary else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
                  loss=loss, metrics=["accuracy"])
    return model


def as_targets(data: tf.data.Dataset, binary: bool) -> tf.data.Dataset:
    """Labels in the shape the loss expects: float (batch, 1) for binary, int otherwise."""
    if not binary:
        return data
    return data.map(lambda text, label: (text, tf.cast(tf.reshape(label, [-1, 1]), tf.float32)))


def class_probabilities(model: keras.Model, texts: list[str], batch_size: int = 1024
                        ) -> np.ndarray:
    """(n, classes) probabilities for raw texts, predicted in batches of `batch_size`."""
    if not texts:
        return np.zeros((0, 2))
    data = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
    probs = model.predict(data.batch(batch_size), verbose=0)
    if probs.shape[-1] == 1:
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    return probs


@dataclass
class Metrics:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""

    class_names: list[str]
    confusion: np.ndarray  # rows: true class, columns: predicted class

    @classmethod
    def from_labels(cls, y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]
                    ) -> Metrics:
        n = len(class_names)
        confusion = np.zeros((n, n), dtype=np.int64)
        np.add.at(confusion, (np.asarray(y_true), np.asarray(y_pred)), 1)
        return cls(list(class_names), confusion)

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    def per_class(self) -> dict[str, dict[str, float]]:
        out = {}
        for i, name in enumerate(self.class_names):
            tp = self.confusion[i, i]
            predicted, actual = self.confusion[:, i].sum(), self.confusion[i, :].sum()
            precision = tp / predicted if predicted else 0.0
            recall = tp / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[name] = {"precision": float(precision), "recall": float(recall),
                         "f1": float(f1), "support": int(actual)}
        return out

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "examples": int(self.confusion.sum()),
                "classes": self.per_class(), "class_names": self.class_names,
                "confusion_matrix": self.confusion.tolist()}
