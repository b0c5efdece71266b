"""The recurrent cells both modes offer: Keras' three built-in recurrent layers."""

from __future__ import annotations

from enum import StrEnum


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
    def states(self) -> int:
        """Recurrent state tensors per layer: [h, c] for an LSTM, [h] otherwise."""
        return 2 if self is Cell.lstm else 1

    def layer_class(self) -> type:
        """The Keras layer (imports Keras)."""
        import keras

        return {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
                "simplernn": keras.layers.SimpleRNN}[self.value]
