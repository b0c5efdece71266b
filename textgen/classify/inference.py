"""A saved classifier in NumPy: raw texts in, class probabilities out, without TensorFlow.

Reads the run's `.keras` file (layers, weights, the vectorizer's vocabulary) and computes
what the Keras model computes, so `textgen classify predict` and a served classifier answer
in a fraction of a second instead of importing TensorFlow first:

- the vectorizer: `standardize_review` (lower-case, HTML breaks and everything but letters,
  marks and digits to spaces), whitespace split, vocabulary lookup (and word pairs);
- lstm: the last `seq_length` word ids -> one `textgen.recurrent.cell_step` per word (the
  embedding folded into the input projection; padding keeps the state, as Keras' mask does;
  a Bidirectional layer's backward half reads the words last to first) -> Dense -> output;
- ngrams: the text's distinct features, weighted (and L2-normalised for topics) -> output.

tests/test_classify.py checks both against the Keras model. A file of another shape (a
layer this reader does not know) gives None, and the caller uses Keras.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.keras_file import READ_ERRORS, KerasFile, SavedLayer, read_keras_file
from textgen.recurrent import Cell, cell_step, split_bias

BATCH_SIZE = 512  # texts per NumPy batch: the recurrence's matrix products stay cache-sized
STANDARDIZE = "textgen>standardize_review"  # the only standardisation this reader reproduces
# The saved standardisation's regular expressions run in RE2, whose \s is these five.
HTML_BREAK = re.compile(r"<br[\t\n\f\r ]*/?>")
RECURRENT_CELLS = {"LSTM": Cell.lstm, "GRU": Cell.gru, "SimpleRNN": Cell.simplernn}


class _WordCharacters(dict):
    """A str.translate table: letters, marks and digits stay, everything else is a space
    (RE2's [^\\p{L}\\p{M}\\p{N}]); filled as characters are first seen."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = char if unicodedata.category(char)[0] in "LMN" else " "
        return self[code]


_WORD_CHARACTERS = _WordCharacters()


def words(text: str) -> list[str]:
    """A text's tokens as the saved TextVectorization makes them (standardize_review, then
    a whitespace split)."""
    return HTML_BREAK.sub(" ", text.lower()).translate(_WORD_CHARACTERS).split()


class Unsupported(Exception):
    """The saved model has a shape this reader does not reproduce (Keras predicts instead)."""


def _require(condition: bool) -> None:
    if not condition:
        raise Unsupported


@dataclass
class Vectorizer:
    """TextVectorization's lookup: token -> id, unknown tokens -> `unknown`."""

    index: dict[str, int]
    unknown: int
    pairs: bool  # ngrams=2: word pairs ("a b") are features beside the words

    @classmethod
    def from_layer(cls, saved: KerasFile, layer: SavedLayer) -> Vectorizer:
        config = layer.config
        standardize = config.get("standardize")
        _require(isinstance(standardize, dict) and standardize.get("config") == STANDARDIZE)
        _require(config.get("split") == "whitespace" and config.get("ngrams") in (None, 2))
        _require(config.get("output_mode") in ("int", "multi_hot", "count"))
        _require(config.get("output_sequence_length") is None)
        tokens = saved.asset(layer, "vocabulary.txt").decode("utf-8").split("\n")
        size = config.get("vocabulary_size")
        if len(tokens) == size + 1 and tokens[-1] == "":
            tokens.pop()  # a trailing newline
        _require(len(tokens) == size and "[UNK]" in tokens)
        index = {token: i for i, token in enumerate(tokens) if token}
        return cls(index, index["[UNK]"], config.get("ngrams") == 2)

    def ids(self, text: str) -> list[int]:
        """The text's token ids in order (int mode)."""
        unknown, index = self.unknown, self.index
        return [index.get(token, unknown) for token in words(text)]

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The distinct ids of the text's words and word pairs, sorted, and how often each
        occurs (multi_hot and count modes)."""
        tokens = words(text)
        if self.pairs:
            tokens += [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
        unknown, index = self.unknown, self.index
        return np.unique(np.fromiter((index.get(t, unknown) for t in tokens), np.int64,
                                     len(tokens)), return_counts=True)


def _dense(layer: SavedLayer, *activations: str) -> tuple[np.ndarray, np.ndarray]:
    """A Dense layer's (kernel, bias), if it has a bias and one of these activations."""
    _require(layer.class_name == "Dense" and layer.config.get("use_bias", True))
    _require(layer.config.get("activation") in activations)
    kernel, bias = layer.arrays[""]
    return kernel.astype(np.float32), bias.astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class _Output:
    """The output layer: Dense(1, sigmoid) for two classes, Dense(n, softmax) for more."""

    kernel: np.ndarray
    bias: np.ndarray

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, classes) for the layer's (n, inputs) input."""
        return self.from_logits(x @ self.kernel + self.bias)

    @staticmethod
    def from_logits(logits: np.ndarray) -> np.ndarray:
        """(n, classes); for two classes the columns are P(class 0), P(class 1)."""
        if logits.shape[1] == 1:
            p = 0.5 * (np.tanh(0.5 * logits) + 1.0)
            return np.concatenate([1.0 - p, p], axis=1)
        return _softmax(logits)


def _output_layer(layers: dict[str, SavedLayer]) -> _Output:
    """The model's output layer, named for the sigmoid (two classes) or the softmax."""
    name = "probability" if "probability" in layers else "probabilities"
    return _Output(*_dense(layers[name], "sigmoid", "softmax"))


@dataclass
class _Direction:
    """One direction of the recurrent layer: the embedding folded into its input projection."""

    cell: Cell
    table: np.ndarray  # (vocabulary, gates * units): embedding @ kernel + input bias
    recurrent_kernel: np.ndarray
    recurrent_bias: np.ndarray | float
    backwards: bool


class SequenceClassifier:
    """lstm: last words -> embedding -> recurrent layer -> Dense(64, relu) -> output."""

    def __init__(self, saved: KerasFile):
        layers = saved.layers
        self.vectorizer = Vectorizer.from_layer(saved, layers["vectorize"])
        _require(layers["last_tokens"].class_name == "LastTokens")
        self.length = int(layers["last_tokens"].config["length"])
        embedding = layers["embedding"]
        _require(embedding.class_name == "Embedding" and embedding.config.get("mask_zero"))
        (embeddings,) = embedding.arrays[""]
        self.directions = [self._direction(embeddings, config, arrays, backwards)
                           for config, arrays, backwards in self._recurrent_halves(layers)]
        self.hidden = _dense(layers["hidden"], "relu")
        self.output = _output_layer(layers)
        self.classes = max(2, self.output.kernel.shape[1])

    @staticmethod
    def _recurrent_halves(layers: dict[str, SavedLayer]):
        """(config, arrays, backwards) for the recurrent layer's one or two directions."""
        if "bidirectional" in layers:
            layer = layers["bidirectional"]
            _require(layer.config.get("merge_mode") == "concat")
            backward = layer.config.get("backward_layer") or layer.config["layer"]
            return [(layer.config["layer"], layer.arrays["forward_layer/cell"], False),
                    (backward, layer.arrays["backward_layer/cell"], True)]
        (name,) = [n for n in ("lstm", "gru", "simplernn") if n in layers]
        layer = layers[name]
        return [({"class_name": layer.class_name, "config": layer.config},
                 layer.arrays["cell"], False)]

    @staticmethod
    def _direction(embeddings: np.ndarray, saved: dict, arrays: list[np.ndarray],
                   backwards: bool) -> _Direction:
        _require(saved.get("class_name") in RECURRENT_CELLS)
        cell = RECURRENT_CELLS[saved["class_name"]]
        config = saved["config"]
        _require(config.get("activation") == "tanh" and config.get("use_bias", True))
        _require(config.get("recurrent_activation", "sigmoid") == "sigmoid")
        _require(config.get("reset_after", True) and not config.get("return_sequences"))
        _require(not config.get("return_state"))
        # A Bidirectional layer's backward copy says go_backwards; a lone layer must not.
        _require(backwards or not config.get("go_backwards"))
        kernel, recurrent_kernel, bias = (a.astype(np.float32) for a in arrays)
        input_bias, recurrent_bias = split_bias(cell, bias)
        return _Direction(cell, embeddings.astype(np.float32) @ kernel + input_bias,
                          recurrent_kernel, recurrent_bias, backwards)

    def last_ids(self, texts: list[str]) -> np.ndarray:
        """(n, length): each text's last `length` ids, left-aligned, 0 after them (LastTokens)."""
        ids = np.zeros((len(texts), self.length), np.int64)
        for row, text in enumerate(texts):
            tail = self.vectorizer.ids(text)[-self.length :]
            ids[row, : len(tail)] = tail
        return ids

    def probabilities(self, texts: list[str]) -> np.ndarray:
        ids = self.last_ids(texts)
        valid = ids != 0
        steps = int(valid.sum(axis=1).max(initial=0))  # beyond it every row is padding
        states = []
        for d in self.directions:
            units = d.recurrent_kernel.shape[0]
            h = np.zeros((len(texts), units), np.float32)
            c = np.zeros_like(h)
            for t in reversed(range(steps)) if d.backwards else range(steps):
                new_h, new_c = cell_step(d.cell, d.table[ids[:, t]], h, c,
                                         d.recurrent_kernel, d.recurrent_bias)
                keep = valid[:, t, None]  # padding steps keep the state (Keras' mask)
                if keep.all():
                    h, c = new_h, new_c
                else:
                    h, c = np.where(keep, new_h, h), np.where(keep, new_c, c)
            states.append(h)
        kernel, bias = self.hidden
        hidden = np.maximum(np.concatenate(states, axis=1) @ kernel + bias, 0.0)
        return self.output.probabilities(hidden)


class NgramClassifier:
    """ngrams: words and word pairs, present (or counted, 1 + log(count), for topics),
    weighted (and L2-normalised for topics) -> output."""

    def __init__(self, saved: KerasFile):
        layers = saved.layers
        self.vectorizer = Vectorizer.from_layer(saved, layers["vectorize"])
        self.counted = layers["vectorize"].config["output_mode"] == "count"
        weights = layers["feature_weights"]
        _require(weights.class_name == "FeatureWeights")
        (self.feature_weights,) = (a.astype(np.float32) for a in weights.arrays[""])
        self.normalize = bool(weights.config.get("normalize"))
        self.sublinear = bool(weights.config.get("sublinear"))
        self.output = _output_layer(layers)
        self.classes = max(2, self.output.kernel.shape[1])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        features = [self.vectorizer.features(text) for text in texts]
        rows = np.repeat(np.arange(len(texts)), [len(ids) for ids, _ in features])
        columns = np.concatenate([ids for ids, _ in features])
        values = (np.concatenate([n for _, n in features]).astype(np.float32) if self.counted
                  else np.ones(len(columns), np.float32))
        if self.sublinear:
            values = 1.0 + np.log(values)
        values *= self.feature_weights[columns]
        if self.normalize:
            norms = np.sqrt(np.bincount(rows, values * values, minlength=len(texts)))
            values = values / np.maximum(norms[rows], 1e-12)
        kernel, bias = self.output.kernel, self.output.bias
        logits = np.stack([np.bincount(rows, values * kernel[columns, k], minlength=len(texts))
                           for k in range(kernel.shape[1])], axis=1).astype(np.float32)
        return self.output.from_logits(logits + bias)


class NumpyClassifier:
    """Class probabilities for raw texts from a saved classifier, in NumPy; build once (reads
    the file), call often."""

    EXPECTED = {  # the saved layers (beside the input and the dropout) of each architecture
        "lstm": {"vectorize", "last_tokens", "embedding", "hidden"},
        "ngrams": {"vectorize", "feature_weights"},
    }

    def __init__(self, model: SequenceClassifier | NgramClassifier):
        self.model = model
        self.classes = model.classes

    @classmethod
    def read(cls, path: Path) -> NumpyClassifier | None:
        """The classifier in the file, or None when it is not a shape this reader reproduces
        (or not a file it can read: Keras will say what is wrong with it)."""
        try:
            saved = read_keras_file(path)
            names = set(saved.layers) - {"text", "dropout"}
            recurrent = names - cls.EXPECTED["lstm"] - {"probability", "probabilities"}
            if names - {"probability", "probabilities"} == cls.EXPECTED["ngrams"]:
                return cls(NgramClassifier(saved))
            if cls.EXPECTED["lstm"] <= names and len(recurrent) == 1 and recurrent <= {
                    "lstm", "gru", "simplernn", "bidirectional"}:
                return cls(SequenceClassifier(saved))
        except (Unsupported, *READ_ERRORS):
            pass
        return None

    def known_words(self, texts: list[str]) -> list[int]:
        """Per text: how many of its words the model's vocabulary holds (with none, its label
        is the model's prior, not a reading of the text)."""
        index = self.model.vectorizer.index
        return [sum(word in index for word in words(text)) for text in texts]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n, classes) probabilities; for two classes, columns are P(class 0), P(class 1)."""
        if not texts:
            return np.zeros((0, self.classes))
        return np.concatenate([self.model.probabilities(texts[i : i + BATCH_SIZE])
                               for i in range(0, len(texts), BATCH_SIZE)])
