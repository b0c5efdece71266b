"""The stacked-LSTM character generator and its one-step twin for sampling.

The training model reads a window of character ids and predicts the next character at every
position. The one-step twin has the same layers and weights but takes one character and the
recurrent state, and returns the next-character distribution and the new state, so sampling
costs one step per character instead of a re-run of the whole window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textgen.generate.config import Cell, GeneratorConfig, Precision, resolve_precision
from textgen.tf_setup import cpu_supports_bfloat16

if TYPE_CHECKING:
    import keras

STATES_PER_LAYER = {cell: cell.states for cell in Cell}  # [h, c] for an LSTM, else [h]
LOSS = "categorical_crossentropy"  # on one-hot targets, as keras.utils.to_categorical makes


def machine_precision(precision: Precision) -> Precision:
    """What `precision` means on this machine (`auto` resolved; an explicit choice stays)."""
    if precision != Precision.auto:
        return precision
    import tensorflow as tf

    gpus = len(tf.config.list_logical_devices("GPU"))
    return resolve_precision(precision, cpu_supports_bfloat16(), gpus)


def output_norm(layer: int, dtype: str | None = None) -> keras.layers.Layer:
    """The LayerNormalization after recurrent layer `layer` (1-based), Keras' defaults."""
    import keras

    return keras.layers.LayerNormalization(name=f"norm_{layer}", dtype=dtype)


def build_generator(config: GeneratorConfig) -> keras.Model:
    """Embedding -> `layers` x (the cell -> [LayerNormalization] -> Dropout) -> Dense(vocab)
    -> softmax, per position.

    Input: int ids of shape (batch, time). Output: float32 probabilities (batch, time, vocab).
    """
    import keras

    dtype = machine_precision(config.precision).value
    inputs = keras.Input(shape=(None,), dtype="int32", name="char_ids")
    x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding",
                               dtype=dtype)(inputs)
    for i in range(1, config.layers + 1):
        x = Cell(config.cell).layer_class()(config.units, name=f"rnn_{i}", dtype=dtype,
                                          return_sequences=True)(x)
        if config.layer_norm:
            x = output_norm(i, dtype)(x)
        x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(config.vocab_size, name="logits", dtype=dtype)(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name="next_char")(logits)
    return keras.Model(inputs, probs, name="char_generator")


def build_stream_model(config: GeneratorConfig, trained: keras.Model | None = None
                       ) -> keras.Model:
    """The generator with its recurrent state as input and output, for text longer than a
    window: (ids (batch, time), *states) -> (probs (batch, time, vocab), *new_states).

    States are per layer: [h, c] for an LSTM, [h] for a GRU or SimpleRNN, each (batch, units);
    h is the layer's output before any layer normalisation.
    Weights are copied from `trained` when given (the layer order and shapes are the same).
    """
    import keras

    ids = keras.Input(shape=(None,), dtype="int32", name="char_ids")
    per_layer = STATES_PER_LAYER[config.cell]
    state_inputs = [
        keras.Input(shape=(config.units,), name=f"state_{i}_{j}")
        for i in range(1, config.layers + 1)
        for j in range(per_layer)
    ]
    x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding")(ids)
    new_states = []
    for i in range(config.layers):
        layer = Cell(config.cell).layer_class()(config.units, return_sequences=True,
                                              return_state=True, name=f"rnn_{i + 1}")
        initial = state_inputs[i * per_layer : (i + 1) * per_layer]
        x, *states = layer(x, initial_state=initial)
        if config.layer_norm:
            x = output_norm(i + 1)(x)
        new_states.extend(states)
    logits = keras.layers.Dense(config.vocab_size, name="logits")(x)
    probs = keras.layers.Activation("softmax", name="next_char")(logits)
    stream = keras.Model([ids, *state_inputs], [probs, *new_states], name="char_generator_stream")
    if trained is not None:
        stream.set_weights(trained.get_weights())
    return stream


def build_step_model(config: GeneratorConfig, trained: keras.Model | None = None) -> keras.Model:
    """The one-step twin: (ids (batch, 1), *states) -> (probs (batch, vocab), *new_states)."""
    import keras

    stream = build_stream_model(config, trained)
    ids, *state_inputs = stream.inputs
    probs, *new_states = stream.outputs
    return keras.Model([ids, *state_inputs], [probs[:, -1, :], *new_states],
                       name="char_generator_step")
