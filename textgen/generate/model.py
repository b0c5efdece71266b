"""The stacked-LSTM character generator: one Keras definition.

The model reads a window of character ids and predicts the next character at every position.
Built `with_states`, it also takes and returns the recurrent state, so a long text runs in
pieces (evaluation) or one character at a time (the exported generator). `textgen sample`
runs the same recurrence in NumPy (textgen.generate.stepper), without TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textgen.generate.config import Cell, GeneratorConfig, Precision, resolve_precision
from textgen.tf_setup import cpu_supports_bfloat16, import_tensorflow

if TYPE_CHECKING:
    import keras

LOSS = "categorical_crossentropy"  # on one-hot targets, as keras.utils.to_categorical makes


def machine_precision(precision: Precision) -> Precision:
    """What `precision` means on this machine (`auto` resolved; an explicit choice stays)."""
    if precision != Precision.auto:
        return precision
    tf = import_tensorflow()  # quietly where the CLI asked, and set up as textgen sets it up
    gpus = len(tf.config.list_logical_devices("GPU"))
    return resolve_precision(precision, cpu_supports_bfloat16(), gpus)


def output_norm(layer: int, dtype: str | None = None) -> keras.layers.Layer:
    """The LayerNormalization after recurrent layer `layer` (1-based), Keras' defaults."""
    import keras

    return keras.layers.LayerNormalization(name=f"norm_{layer}", dtype=dtype)


def build_generator(config: GeneratorConfig, with_states: bool = False,
                    precision: Precision | None = None) -> keras.Model:
    """Embedding -> `layers` x (the cell -> [LayerNormalization] -> Dropout) -> Dense(vocab)
    -> softmax, per position: the one Keras definition of the generator.

    Input: int ids of shape (batch, time). Output: float32 probabilities (batch, time, vocab).
    `with_states`: the recurrent state is an input and an output too, for text longer than a
    window (evaluation, the exported generator): (ids, *states) -> (probs, *new_states), per
    layer [h, c] for an LSTM, [h] for a GRU or SimpleRNN, each (batch, units), h being the
    layer's output before any layer normalisation. The weights are the same either way.
    `precision` overrides the config's (the exported generator computes in float32, as
    `textgen sample` does).
    """
    import keras

    dtype = machine_precision(Precision(precision or config.precision)).value
    inputs = keras.Input(shape=(None,), dtype="int32", name="char_ids")
    per_layer = config.cell.states  # [h, c] for an LSTM, else [h]
    state_inputs = [keras.Input(shape=(config.units,), name=f"state_{i}_{j}")
                    for i in range(1, config.layers + 1) for j in range(per_layer)
                    ] if with_states else []
    x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding",
                               dtype=dtype)(inputs)
    new_states = []
    for i in range(1, config.layers + 1):
        layer = Cell(config.cell).layer_class()(config.units, name=f"rnn_{i}", dtype=dtype,
                                                return_sequences=True,
                                                return_state=with_states)
        if with_states:
            x, *states = layer(x, initial_state=state_inputs[(i - 1) * per_layer:i * per_layer])
            new_states.extend(states)
        else:
            x = layer(x)
        if config.layer_norm:
            x = output_norm(i, dtype)(x)
        x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(config.vocab_size, name="logits", dtype=dtype)(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name="next_char")(logits)
    if with_states:
        return keras.Model([inputs, *state_inputs], [probs, *new_states],
                           name="char_generator_stream")
    return keras.Model(inputs, probs, name="char_generator")
