"""A generator's hyper-parameters, their defaults and checks (no TensorFlow).

Saved in run.json as `config`, so the model can be rebuilt and sampled from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from textgen.errors import check, check_field, choice
from textgen.recurrent import Cell
from textgen.training.options import LRSchedule, ModeConfig, check_types
from textgen.training.schedules import DEFAULT_LR_DECAY, DEFAULT_WARMUP_STEPS

# Deeper stacks than this are no recurrent model anyone trains (char-rnn's use 2-3 layers);
# at a thousand, building the Keras model ran out of Python's recursion depth.
MAX_LAYERS = 32


class Precision(StrEnum):
    """float32, or mixed_bfloat16: bfloat16 compute with float32 weights (much faster on CPUs
    with AVX512-BF16 or AMX). auto: mixed_bfloat16 where the CPU computes bfloat16 natively
    and no GPU is in use, float32 elsewhere; resolved when the model is built and saved so."""

    auto = "auto"
    float32 = "float32"
    mixed_bfloat16 = "mixed_bfloat16"


def resolve_precision(precision: Precision, cpu_bfloat16: bool, gpus: int) -> Precision:
    """The precision `auto` stands for on this machine (an explicit choice stays)."""
    if precision != Precision.auto:
        return precision
    # GPUs train the LSTM through cuDNN in float32; bfloat16 is only measured on CPUs here.
    return Precision.mixed_bfloat16 if cpu_bfloat16 and not gpus else Precision.float32


@dataclass
class GeneratorConfig(ModeConfig):
    """Embedding -> `layers` x (cell -> [LayerNormalization] -> Dropout) -> Dense(vocab_size),
    trained with Adam.

    `layer_norm` normalises each recurrent layer's output sequence (not the recurrence inside
    the cell: Keras has no layer-normalised LSTM cell). Off by default: it did not gain at the
    10-minute budget's choice (docs/performance.md), and a run.json written before the option
    existed has no such key and was built without it.

    The fields in CHOSEN are chosen by the sizing rule (textgen.generate.sizing) for the text,
    the time budget and the base when the user leaves them out; the defaults here are what a
    config made directly gets, and the rule's starting point (its smallest size without a
    budget, its rate for that width, its dropout, its window without a budget).
    """

    vocab_size: int
    seq_length: int = 100
    layers: int = 2
    units: int = 256
    dropout: float = 0.2
    cell: Cell = Cell.lstm
    layer_norm: bool = False
    embed_dim: int = 64
    learning_rate: float = 5e-3
    lr_schedule: LRSchedule = LRSchedule.cosine
    lr_decay: float = DEFAULT_LR_DECAY  # per epoch, under --lr-schedule exponential
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    clipnorm: float = 1.0
    precision: Precision = Precision.auto
    # The pretrained model fine-tuned from (textgen.generate.base): "auto" (the shipped base
    # that predicts the text best), a shipped base's name, a generator run, or "none" for
    # random weights. run.json records the base actually used.
    base: str = "auto"

    DERIVED = frozenset({"vocab_size"})  # from the data
    # Chosen for a new run when not given: by the sizing rule, or copied from the base.
    CHOSEN = frozenset({"seq_length", "layers", "units", "dropout", "learning_rate", "base",
                        "cell", "layer_norm", "embed_dim"})
    # Options that shape the weights: a resumed run cannot change them.
    ARCHITECTURE = frozenset({"vocab_size", "layers", "units", "cell", "layer_norm",
                              "embed_dim", "seq_length"})
    EARLIER_RUNS = {"base": "none"}  # runs saved before bases existed trained from scratch

    def __post_init__(self) -> None:
        check_types(self)
        self.cell = choice(Cell, self.cell, "cell")
        self.precision = choice(Precision, self.precision, "precision")
        self.lr_schedule = choice(LRSchedule, self.lr_schedule, "lr_schedule")
        check(self.vocab_size >= 1, f"vocab_size must be >= 1, got {self.vocab_size}")
        check_field(self.seq_length >= 1, "seq_length", f"must be >= 1, got {self.seq_length}")
        check_field(1 <= self.layers <= MAX_LAYERS, "layers",
                    f"must be from 1 to {MAX_LAYERS}, got {self.layers}")
        check_field(self.units >= 1, "units", f"must be >= 1, got {self.units}")
        check_field(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check_field(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        check_field(self.learning_rate > 0 and math.isfinite(self.learning_rate),
                    "learning_rate", f"must be a number > 0, got {self.learning_rate}")
        check_field(0 < self.lr_decay <= 1, "lr_decay", f"must be in (0, 1], got {self.lr_decay}")
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.clipnorm > 0, f"clipnorm must be > 0, got {self.clipnorm}")
        check_field(isinstance(self.base, str) and self.base.strip() != "", "base",
                    "needs a shipped base's name, a generator run, or none")
