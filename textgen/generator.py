"""The stacked-LSTM character generator and its one-step twin for sampling.

The training model reads a window of character ids and predicts the next character at every
position. The one-step twin has the same layers and weights but takes one character and the
recurrent state, and returns the next-character distribution and the new state, so sampling
costs one step per character instead of a re-run of the whole window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from textgen.errors import TextgenError

if TYPE_CHECKING:
    import keras

Cell = Literal["lstm", "gru"]
Precision = Literal["float32", "mixed_bfloat16"]


@dataclass
class GeneratorConfig:
    """Hyper-parameters of a generator; saved in the run folder so it can be rebuilt."""

    vocab_size: int
    seq_length: int = 100
    layers: int = 2
    units: int = 256
    dropout: float = 0.2
    cell: Cell = "lstm"
    embed_dim: int = 64
    learning_rate: float = 5e-3
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 100
    clipnorm: float = 1.0
    precision: Precision = "float32"

    def __post_init__(self) -> None:
        checks = [
            (self.vocab_size >= 1, "the vocabulary is empty"),
            (self.seq_length >= 1, f"--seq-length must be >= 1, got {self.seq_length}"),
            (self.layers >= 1, f"--layers must be >= 1, got {self.layers}"),
            (self.units >= 1, f"--units must be >= 1, got {self.units}"),
            (self.embed_dim >= 1, f"--embed-dim must be >= 1, got {self.embed_dim}"),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}"),
            (self.cell in ("lstm", "gru"), f"--cell must be lstm or gru, got {self.cell!r}"),
            (self.learning_rate > 0, f"--learning-rate must be > 0, got {self.learning_rate}"),
            (
                self.precision in ("float32", "mixed_bfloat16"),
                f"--precision must be float32 or mixed_bfloat16, got {self.precision!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise TextgenError(message)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _recurrent_layer(config: GeneratorConfig, name: str, **kwargs) -> keras.layers.Layer:
    import keras

    layer_class = keras.layers.LSTM if config.cell == "lstm" else keras.layers.GRU
    return layer_class(config.units, name=name, dtype=config.precision, **kwargs)


def build_generator(config: GeneratorConfig) -> keras.Model:
    """Embedding -> `layers` x (LSTM/GRU -> Dropout) -> Dense(vocab) -> softmax, per position.

    Input: int ids of shape (batch, time). Output: float32 probabilities (batch, time, vocab).
    """
    import keras

    inputs = keras.Input(shape=(None,), dtype="int32", name="char_ids")
    x = keras.layers.Embedding(
        config.vocab_size, config.embed_dim, name="embedding", dtype=config.precision
    )(inputs)
    for i in range(1, config.layers + 1):
        x = _recurrent_layer(config, f"rnn_{i}", return_sequences=True)(x)
        x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(config.vocab_size, name="logits", dtype=config.precision)(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name="next_char")(logits)
    return keras.Model(inputs, probs, name="char_generator")


def learning_rate_schedule(config: GeneratorConfig, total_steps: int | None):
    """Linear warm-up, then cosine decay to 10% over `total_steps` (or a constant rate).

    With `total_steps=None` (a wall-clock budget) the rate starts constant and
    training's TimeBudgetCosine callback sets it as time passes.
    """
    import keras

    if config.lr_schedule == "constant" or total_steps is None:
        return config.learning_rate
    warmup = min(config.warmup_steps, max(1, total_steps // 10))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.1,
    )


def compile_generator(model: keras.Model, config: GeneratorConfig, total_steps: int | None
                      ) -> None:
    """Adam with gradient-norm clipping; categorical cross-entropy on one-hot targets."""
    import keras

    optimizer = keras.optimizers.Adam(
        learning_rate=learning_rate_schedule(config, total_steps), clipnorm=config.clipnorm
    )
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")


def build_step_model(config: GeneratorConfig, trained: keras.Model | None = None) -> keras.Model:
    """The one-step twin: (ids (batch, 1), *states) -> (probs (batch, vocab), *new_states).

    States are per layer: [h, c] for an LSTM, [h] for a GRU, each (batch, units). Weights are
    copied from `trained` when given (the layer order and shapes are the same).
    """
    import keras

    ids = keras.Input(shape=(1,), dtype="int32", name="char_id")
    per_layer = 2 if config.cell == "lstm" else 1
    state_inputs = [
        keras.Input(shape=(config.units,), name=f"state_{i}_{j}")
        for i in range(1, config.layers + 1)
        for j in range(per_layer)
    ]
    x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding")(ids)
    new_states = []
    for i in range(config.layers):
        rnn = keras.layers.LSTM if config.cell == "lstm" else keras.layers.GRU
        layer = rnn(config.units, return_sequences=True, return_state=True, name=f"rnn_{i + 1}")
        initial = state_inputs[i * per_layer : (i + 1) * per_layer]
        x, *states = layer(x, initial_state=initial)
        new_states.extend(states)
    logits = keras.layers.Dense(config.vocab_size, name="logits")(x[:, -1, :])
    probs = keras.layers.Activation("softmax", name="next_char")(logits)
    step = keras.Model([ids, *state_inputs], [probs, *new_states], name="char_generator_step")
    if trained is not None:
        step.set_weights(trained.get_weights())
    return step
