"""The recurrent cells both modes offer (Keras' three built-in recurrent layers), and their one
step in NumPy: every path that runs a trained recurrence outside Keras (sampling, serving,
classifying a few texts) calls `cell_step`."""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class Cell(StrEnum):
    """lstm (the default: gated, with a memory cell), gru (gated, a third cheaper) or
    simplernn (one tanh layer: the tutorials' first model, weaker on long-range structure)."""

    lstm = "lstm"
    gru = "gru"
    simplernn = "simplernn"

    @property
    def gates(self) -> int:
        """Blocks of `units` columns in the layer's kernels (4 for an LSTM, 3 for a GRU)."""
        return {"lstm": 4, "gru": 3, "simplernn": 1}[self.value]

    @property
    def bias_rows(self) -> int:
        """Rows of a layer's bias: 2 for Keras' GRU (reset_after=True), 1 otherwise."""
        return 2 if self is Cell.gru else 1

    @property
    def states(self) -> int:
        """Recurrent state tensors per layer: [h, c] for an LSTM, [h] otherwise."""
        return 2 if self is Cell.lstm else 1

    def layer_class(self) -> type:
        """The Keras layer (imports Keras)."""
        import keras

        return {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
                "simplernn": keras.layers.SimpleRNN}[self.value]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # exact and overflow-free


def split_bias(cell: Cell, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
    """A layer's bias as (the part added to the input projection, the part added to the
    recurrent one): a GRU (Keras' reset_after=True) keeps two rows, the others one."""
    return (bias[0], bias[1]) if cell is Cell.gru else (bias, 0.0)


def cell_step(cell: Cell, projected: np.ndarray, h: np.ndarray, c: np.ndarray,
              recurrent_kernel: np.ndarray, recurrent_bias: np.ndarray | float = 0.0
              ) -> tuple[np.ndarray, np.ndarray]:
    """One time step of Keras' LSTM, GRU or SimpleRNN in NumPy, for a batch of rows.

    Args:
        projected: (rows, gates * units), the input already projected: x @ kernel + input bias
            (callers precompute it per token when the input is an embedding lookup).
        h, c: (rows, units) states; c is the LSTM's memory cell (passed through otherwise).
        recurrent_kernel: (units, gates * units).
        recurrent_bias: the GRU's recurrent bias row (see `split_bias`); 0 for the others.

    Returns the new (h, c). Keras' gate orders: LSTM input, forget, candidate, output; GRU
    update, reset, candidate (the reset gate scales the recurrent part of the candidate).
    """
    u = h.shape[1]
    if cell is Cell.lstm:
        z = projected + h @ recurrent_kernel
        in_forget, out = _sigmoid(z[:, : 2 * u]), _sigmoid(z[:, 3 * u :])
        c = in_forget[:, u:] * c + in_forget[:, :u] * np.tanh(z[:, 2 * u : 3 * u])
        return out * np.tanh(c), c
    if cell is Cell.gru:
        hs = h @ recurrent_kernel + recurrent_bias
        zr = _sigmoid(projected[:, : 2 * u] + hs[:, : 2 * u])
        candidate = np.tanh(projected[:, 2 * u :] + zr[:, u:] * hs[:, 2 * u :])
        return zr[:, :u] * h + (1 - zr[:, :u]) * candidate, c
    return np.tanh(projected + h @ recurrent_kernel), c
