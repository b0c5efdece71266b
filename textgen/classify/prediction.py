"""Using a trained review classifier: batched prediction, evaluation on labelled folders.

The sequence classifier's network (LSTM, GRU or SimpleRNN) is rebuilt for inference from its
trained weights:

- The embedding and the LSTM's input projection are folded into one table
  (embedding @ kernel + bias), so each time step does one small matmul (the recurrent one)
  instead of two, the larger of which is gone.
- The recurrence is one XLA-compiled loop for a fixed (batch, seq_length) shape: one
  compilation, fused gate arithmetic.
- The string work (standardise, split, look up) runs in a tf.data map beside it.

Together, about 2x the reviews/s of `model.predict` on a 2-core CPU (benchmarks/README.md).
tests/test_classify.py checks that it predicts what the Keras model predicts. Models of
another shape (the n-gram model) use plain `model.predict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import textgen.classify.model  # noqa: F401  (registers its layers for loading)
from textgen.classify.config import ClassifierConfig
from textgen.classify.data import Examples, evaluation_examples, load_all
from textgen.classify.metrics import Metrics
from textgen.classify.model import RNN_LAYER_NAMES
from textgen.classify.tables import Columns
from textgen.reading import Decoding
from textgen.recurrent import Cell
from textgen.runs import ModelChoice, load_keras_model
from textgen.tf_setup import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)


class ReviewPredictor:
    """Class probabilities for raw texts from a loaded classifier; build once, call often.

    Compiling the folded LSTM network takes about half a second, which pays off from a few
    thousand texts on: fewer than `compile_from` texts go through `model.predict`.
    """

    def __init__(self, model: keras.Model, batch_size: int = 512, compile_from: int = 4096):
        self.model = model
        self.batch_size = batch_size
        self.compile_from = compile_from
        self.foldable = _plain_rnn(model) is not None  # can run as the folded network
        self._network: _FoldedRecurrentNetwork | None = None
        width = int(model.outputs[0].shape[-1])
        self.classes = 2 if width == 1 else width  # a sigmoid output stands for two classes

    @property
    def compiled(self) -> bool:
        """Whether the folded, compiled LSTM network has been built (and is used from now on)."""
        return self._network is not None

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n, classes) probabilities; for two classes, columns are P(class 0), P(class 1)."""
        if not texts:
            return np.zeros((0, self.classes))
        data = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
        data = data.batch(self.batch_size)
        if self.foldable and (self._network is not None or len(texts) >= self.compile_from):
            if self._network is None:
                self._network = _FoldedRecurrentNetwork(self.model)
            probs = self._network.predict(data, min(self.batch_size, len(texts)))
        else:
            probs = self.model.predict(data, verbose=0)
        if probs.shape[-1] == 1:
            probs = np.concatenate([1.0 - probs, probs], axis=-1)
        return probs


def class_probabilities(model: keras.Model, texts: list[str], batch_size: int = 512
                        ) -> np.ndarray:
    """(n, classes) probabilities for raw texts, predicted in batches of `batch_size`."""
    return ReviewPredictor(model, batch_size).probabilities(texts)


def _plain_rnn(model: keras.Model) -> tuple[keras.layers.Layer, list[keras.layers.Layer]] | None:
    """The classifier's recurrent layer and its cells' layers (forward first) when the folded
    network reproduces them: last_tokens -> embedding -> a plain LSTM, GRU (reset_after) or
    SimpleRNN (default activations, bias, one output), or a concatenating Bidirectional one.
    None otherwise."""
    names = {layer.name for layer in model.layers}
    recurrent = [n for n in ("bidirectional", *RNN_LAYER_NAMES.values()) if n in names]
    if not recurrent or not {"last_tokens", "embedding"} <= names:
        return None
    layer = model.get_layer(recurrent[0])
    if isinstance(layer, keras.layers.Bidirectional):
        if layer.merge_mode != "concat":
            return None
        rnns = [layer.forward_layer, layer.backward_layer]
    else:
        rnns = [layer]
    kinds = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
    plain = all(isinstance(rnn, kinds) and rnn.use_bias
                and rnn.activation is keras.activations.tanh
                and getattr(rnn, "recurrent_activation", keras.activations.sigmoid)
                is keras.activations.sigmoid
                and getattr(rnn.cell, "reset_after", True)
                and not rnn.return_sequences and not rnn.return_state for rnn in rnns)
    return (layer, rnns) if plain else None


class _FoldedRecurrentNetwork:
    """Token ids -> probabilities, as the classifier's embedding, LSTM and head compute them."""

    def __init__(self, model: keras.Model):
        layer, rnns = _plain_rnn(model)
        embeddings = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
        self._directions = []
        for rnn in rnns:
            kernel, recurrent_kernel, bias = (keras.ops.convert_to_numpy(w)
                                              for w in rnn.cell.weights)
            cell = _CELLS[type(rnn)]
            # A GRU's bias rows are (input, recurrent): only the first folds into the table.
            input_bias, recurrent_bias = (bias[0], bias[1]) if cell == Cell.gru else (bias, 0)
            table = tf.constant(embeddings @ kernel + input_bias)  # (vocabulary, gates * units)
            self._directions.append((cell, table, tf.constant(recurrent_kernel),
                                     tf.constant(recurrent_bias, dtype=table.dtype),
                                     bool(rnn.go_backwards)))
        self._head = keras.Model(layer.output, model.outputs)
        last_tokens = model.get_layer("last_tokens")
        self._preprocess = keras.Model(model.inputs, last_tokens.output)  # for a tf.data map
        seq_length = last_tokens.length
        self._run = tf.function(self._probabilities, jit_compile=True, input_signature=[
            tf.TensorSpec([None, seq_length], tf.int64)])

    def predict(self, texts: tf.data.Dataset, rows: int) -> np.ndarray:
        """Probabilities for batches of texts, each padded with empty rows to `rows` rows so
        that one compiled shape serves them all."""
        ids = texts.map(self._preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
        outputs = []
        for batch in ids:
            count = int(batch.shape[0])
            padded = tf.pad(batch, [[0, rows - count], [0, 0]])
            outputs.append(self._run(padded).numpy()[:count])
        return np.concatenate(outputs)

    def _probabilities(self, ids: tf.Tensor) -> tf.Tensor:
        valid = tf.not_equal(ids, 0)  # ids are left-aligned, zero-padded after them
        outputs = []
        for cell, table, recurrent_kernel, recurrent_bias, backwards in self._directions:
            steps = ids
            if backwards:  # each review's tokens reversed, its padding left at the end
                lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
                steps = tf.reverse_sequence(ids, lengths, seq_axis=1, batch_axis=0)
            outputs.append(_last_hidden_state(cell, table, recurrent_kernel, recurrent_bias,
                                              steps))
        hidden = outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)
        return self._head(hidden, training=False)


def _last_hidden_state(cell: Cell, table: tf.Tensor, recurrent_kernel: tf.Tensor,
                       recurrent_bias: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """The recurrent layer's output after each review's last token (padding steps keep the
    state), for Keras' LSTM, GRU (reset_after=True) and SimpleRNN equations."""
    units = recurrent_kernel.shape[0]
    batch = tf.shape(ids)[0]
    inputs = tf.gather(table, tf.transpose(ids))  # (time, batch, gates * units)
    valid = tf.transpose(tf.not_equal(ids, 0))[:, :, None]

    def step(t, h, c):
        x = inputs[t]
        if cell == Cell.lstm:
            z = x + tf.matmul(h, recurrent_kernel)
            gates = tf.sigmoid(z)  # Keras' gate order: input, forget, candidate, output
            candidate = tf.tanh(z[:, 2 * units:3 * units])
            new_c = gates[:, units:2 * units] * c + gates[:, :units] * candidate
            new_h = gates[:, 3 * units:] * tf.tanh(new_c)
        elif cell == Cell.gru:  # gates update, reset; the candidate resets the recurrent part
            r = tf.matmul(h, recurrent_kernel) + recurrent_bias
            zr = tf.sigmoid(x[:, :2 * units] + r[:, :2 * units])
            candidate = tf.tanh(x[:, 2 * units:] + zr[:, units:] * r[:, 2 * units:])
            new_h, new_c = zr[:, :units] * h + (1 - zr[:, :units]) * candidate, c
        else:
            new_h, new_c = tf.tanh(x + tf.matmul(h, recurrent_kernel)), c
        return t + 1, tf.where(valid[t], new_h, h), tf.where(valid[t], new_c, c)

    zeros = tf.zeros([batch, units], dtype=table.dtype)
    _, h, _ = tf.while_loop(lambda t, h, c: t < tf.shape(ids)[1], step, [0, zeros, zeros])
    return h


_CELLS = {keras.layers.LSTM: Cell.lstm, keras.layers.GRU: Cell.gru,
          keras.layers.SimpleRNN: Cell.simplernn}


def load_classifier(model: ModelChoice) -> tuple[keras.Model, ClassifierConfig]:
    """The Keras model of a classifier run and its config (the run's mode already checked)."""
    config = ClassifierConfig.from_dict(model.meta["config"], str(model.run.meta))
    return load_keras_model(model.file), config


def evaluate_data(data: str | Path, model: ModelChoice, decoding: Decoding | None = None,
                  columns: Columns | None = None) -> Metrics:
    """Metrics of the model on labelled data: a folder of class subfolders (or a root with
    test/), or a table. Decoding and columns default to those the model was trained with."""
    config = ClassifierConfig.from_dict(model.meta["config"], str(model.run.meta))
    decoding = decoding or Decoding.from_dict(model.meta.get("decoding"))
    columns = columns or Columns.parse(saved=model.meta.get("columns"))
    return evaluate_examples(evaluation_examples(data, config.class_names, decoding, columns),
                             model)


def evaluate_examples(examples: Examples, model: ModelChoice) -> Metrics:
    """Metrics of the model on examples of its classes."""
    keras_model, config = load_classifier(model)
    texts = [t.decode("utf-8") for batch, _ in load_all(examples) for t in batch.numpy()]
    probs = class_probabilities(keras_model, texts)
    return Metrics.from_labels(examples.labels, probs.argmax(axis=-1), config.class_names)


def predict_texts(texts: list[str], model: ModelChoice) -> list[dict[str, Any]]:
    """For each text: its predicted label, that label's probability and every class's."""
    keras_model, config = load_classifier(model)
    return labelled(texts, class_probabilities(keras_model, texts), config.class_names)


def labelled(texts: list[str], probs: np.ndarray, class_names: list[str]
             ) -> list[dict[str, Any]]:
    """Each text with its label, that label's probability and every class's."""
    out = []
    for text, p in zip(texts, probs, strict=True):
        best = int(np.argmax(p))
        out.append({"text": text, "label": class_names[best],
                    "probability": float(p[best]),
                    "probabilities": {c: float(v) for c, v in zip(class_names, p,
                                                                   strict=True)}})
    return out
