"""The generator's recurrence in NumPy, from the weights in its saved `.keras` file.

No TensorFlow import, so a cold `textgen sample` starts in well under a second and each
character costs one step. tests/test_sampling.py checks it against the Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.errors import TextgenError
from textgen.generate.config import Cell, GeneratorConfig
from textgen.keras_file import READ_ERRORS, read_keras_file
from textgen.recurrent import cell_step, split_bias
from textgen.runs import RunDir, load_keras_model
from textgen.tf_setup import random_states_kept

CELL_ARRAYS = 3  # a recurrent layer's kernel, recurrent kernel and bias
LAYER_NORM_EPSILON = 1e-3  # keras.layers.LayerNormalization's default


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """keras.layers.LayerNormalization over the last axis (its default epsilon, 1e-3)."""
    mean = x.mean(axis=1, keepdims=True)
    variance = np.square(x - mean).mean(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(variance + LAYER_NORM_EPSILON) * gamma + beta


@dataclass
class RecurrentState:
    """The recurrent state of a batch of sequences: per layer, h (and c for an LSTM) with one
    row per sequence. Rows join and leave as sequences start and end."""

    h: list[np.ndarray]  # per layer (rows, units)
    c: list[np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.h[0])

    def keep(self, rows: np.ndarray | list[int]) -> None:
        """Keep only these rows, in this order."""
        self.h = [h[rows] for h in self.h]
        self.c = [c[rows] for c in self.c]

    def rows_of(self, rows: list[int]) -> RecurrentState:
        """A copy of these rows (a row named twice, twice)."""
        return RecurrentState([h[rows] for h in self.h], [c[rows] for c in self.c])

    def extend(self, other: RecurrentState) -> None:
        """Add the other state's rows after these."""
        self.h = [np.concatenate([a, b]) for a, b in zip(self.h, other.h, strict=True)]
        self.c = [np.concatenate([a, b]) for a, b in zip(self.c, other.c, strict=True)]


class NumpyStepper:
    """The generator's one-step recurrence in NumPy: feed one id per sequence, get each one's
    next-character probabilities.

    float32 like Keras. The first layer's input projection is precomputed for every character
    (embedding @ kernel + bias is a vocab x gates table), so a step costs one matrix product
    per layer plus the output layer, for one sequence or for a batch of them (`advance`: the
    batch shares the weight reads, which is what makes serving many sequences at once cheap).
    """

    def __init__(self, config: GeneratorConfig, weights: list[np.ndarray]):
        if problem := weight_shape_problem(config, weights):
            raise ValueError(problem)
        per_layer = CELL_ARRAYS + (2 if config.layer_norm else 0)  # [, gamma, beta]
        w = [np.asarray(a, dtype=np.float32) for a in weights]
        self.config = config
        self.cell = Cell(config.cell)
        embedding = w[0]
        layers = [w[1 + per_layer * i : 1 + per_layer * (i + 1)] for i in range(config.layers)]
        self.cells = [tuple(arrays[:CELL_ARRAYS]) for arrays in layers]
        self.norms = [tuple(arrays[CELL_ARRAYS:]) for arrays in layers]  # (gamma, beta) or ()
        self.dense_kernel, self.dense_bias = w[-2], w[-1]
        kernel, _, bias = self.cells[0]
        input_bias, _ = split_bias(self.cell, bias)
        self.first_input = embedding @ kernel + input_bias  # (vocab, gates * units)
        self.reset()

    def zero_state(self, rows: int = 1) -> RecurrentState:
        units = self.config.units
        return RecurrentState([np.zeros((rows, units), np.float32) for _ in self.cells],
                              [np.zeros((rows, units), np.float32) for _ in self.cells])

    def reset(self) -> None:
        """Start the one-sequence state of `step` again."""
        self.state = self.zero_state(1)

    def step(self, char_id: int) -> np.ndarray:
        """One sequence: advance by one character; return the next-character probabilities."""
        return self.advance(self.state, np.array([char_id]))[0]

    def dense_input(self, state: RecurrentState) -> np.ndarray:
        """The output layer's input for each row of `state`: the last layer's output."""
        return _layer_norm(state.h[-1], *self.norms[-1]) if self.norms[-1] else state.h[-1]

    def advance(self, state: RecurrentState, char_ids: np.ndarray) -> np.ndarray:
        """Advance each row of `state` by its character (in place); (rows, vocab)
        next-character probabilities."""
        x = None
        for i, (kernel, recurrent, bias) in enumerate(self.cells):
            input_bias, recurrent_bias = split_bias(self.cell, bias)
            projected = self.first_input[char_ids] if i == 0 else x @ kernel + input_bias
            state.h[i], state.c[i] = cell_step(self.cell, projected, state.h[i], state.c[i],
                                               recurrent, recurrent_bias)
            x = _layer_norm(state.h[i], *self.norms[i]) if self.norms[i] else state.h[i]
        logits = x @ self.dense_kernel + self.dense_bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def weight_shapes(config: GeneratorConfig) -> list[tuple[int, ...]]:
    """The shapes of a generator's weights, in `model.get_weights()` order."""
    c, cell = config, Cell(config.cell)
    width = cell.gates * c.units
    bias = (2, width) if cell is Cell.gru else (width,)  # a GRU's two rows (split_bias)
    shapes: list[tuple[int, ...]] = [(c.vocab_size, c.embed_dim)]
    for i in range(c.layers):
        shapes += [(c.embed_dim if i == 0 else c.units, width), (c.units, width), bias]
        shapes += [(c.units,), (c.units,)] if c.layer_norm else []
    return [*shapes, (c.units, c.vocab_size), (c.vocab_size,)]


def weight_shape_problem(config: GeneratorConfig, weights: list[np.ndarray]) -> str | None:
    """What is wrong with these weights for a model of this config (another run's model file
    copied into a run), or None."""
    expected = weight_shapes(config)
    if len(weights) != len(expected):
        return f"expected {len(expected)} weight arrays, got {len(weights)}"
    for index, (array, shape) in enumerate(zip(weights, expected, strict=True)):
        if np.shape(array) != shape:
            return (f"weight {index} has the shape {np.shape(array)}, the run's "
                    f"hyper-parameters give {shape}")
    return None


def check_run_weights(config: GeneratorConfig, weights: list[np.ndarray], path: Path,
                      run: RunDir) -> None:
    """A one-line error where a run's model file does not hold the model its run.json
    describes (another run's file copied in)."""
    if problem := weight_shape_problem(config, weights):
        raise TextgenError(f"{path}: does not match {run.meta.name} ({problem}); use the run's "
                           "own model file, or retrain the run")


def read_keras_weights(path: Path) -> list[np.ndarray]:
    """The generator's weights from a `.keras` file, in `model.get_weights()` order (read
    directly: no code from the file runs, no TensorFlow)."""
    return [a for layer in read_keras_file(path).layers.values() for a in layer.weights()]


def load_generator_weights(path: Path) -> list[np.ndarray]:
    """Weights for sampling: read directly when possible, else through Keras (safe mode)."""
    if not path.is_file():
        raise TextgenError(f"{path}: missing model file; train or resume the run to write it")
    try:
        return read_keras_weights(path)
    except READ_ERRORS:
        with random_states_kept():  # Keras' initializers draw from Python's as a model loads
            return load_keras_model(path).get_weights()
