"""A review classifier's hyper-parameters and training defaults, and their checks.

Free of TensorFlow, so bad options are reported before the slow TensorFlow import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from textgen.errors import check, check_field, choice
from textgen.recurrent import Cell
from textgen.training.options import (
    LRSchedule,
    ModeConfig,
    Optimizer,
    TrainOptions,
    check_types,
)
from textgen.training.schedules import DEFAULT_WARMUP_STEPS


class Arch(StrEnum):
    """lstm: the sequence model. ngrams: a linear model over which words and word pairs a
    review holds, naive-Bayes weighted (fast and strong). Built by textgen.classify.model."""

    lstm = "lstm"
    ngrams = "ngrams"


# The vectorizer's largest vocabulary (the texts' own is used when smaller): word pairs need
# more room than words, and topics more still (measured: docs/classify.md).
DEFAULT_MAX_TOKENS = {Arch.lstm: 20000, Arch.ngrams: 100000}
TOPICS_MAX_TOKENS = 300_000
# Adam's peak rate by architecture (measured on IMDb; docs/classify.md).
DEFAULT_LEARNING_RATE = {Arch.lstm: 2e-3, Arch.ngrams: 1e-3}
# N-grams over more than two classes (topics) are unit-length TF-IDF vectors for a softmax
# regression trained with SGD and momentum at this rate: Adam's per-weight steps give rare
# features (names, addresses) large weights (docs/classify.md).
TOPICS_NGRAMS_LEARNING_RATE = 10.0
# ... to a margin of this many log-odds between a text's class and the next best
# (textgen.classify.losses): more accurate and better calibrated than cross-entropy
# (docs/classify.md). The margin sets how sure the probabilities are: 1 left them nearly
# uniform, 20 over-sure.
TOPICS_MARGIN = 10.0
# The rate's factor per epoch under the exponential schedule when no sizing rule chose one
# (textgen.classify.sizing chooses it from the planned epochs for a new run).
DEFAULT_LR_DECAY = {Arch.lstm: 0.5, Arch.ngrams: 0.8}
# The sequence model's options, which the n-gram model has no use for.
SEQUENCE_ONLY = ("seq_length", "embed_dim", "units", "bidirectional", "cell", "input_dropout")


@dataclass
class ClassifyTrainOptions(TrainOptions):
    """Classify mode's training defaults (the rest as in TrainOptions). A new run's batch
    size, validation split, epochs, steps per epoch and patience are chosen for its data by
    textgen.classify.sizing; these are what a resumed or hand-configured run starts from."""

    epochs: int = 10
    patience: int | None = 2


@dataclass
class ClassifierConfig(ModeConfig):
    """Hyper-parameters of a classifier; saved in the run folder."""

    class_names: list[str] = field(default_factory=lambda: ["neg", "pos"])
    # The n-gram model: it beat the LSTM at every size measured, from 100 IMDb reviews to
    # 25,000 and on 20 Newsgroups, in a fraction of the time (docs/classify.md).
    arch: Arch = Arch.ngrams
    max_tokens: int | None = None  # None: the architecture's default (DEFAULT_MAX_TOKENS)
    seq_length: int = 200
    embed_dim: int = 128
    units: int = 64
    bidirectional: bool = False
    cell: Cell = Cell.lstm
    dropout: float = 0.5
    # Dropout on the recurrent layer's inputs (the word vectors; one mask for all the steps
    # of a review): 0.5 gave the LSTM its best IMDb validation loss (docs/classify.md).
    input_dropout: float = 0.5
    learning_rate: float | None = None  # None: the architecture's DEFAULT_LEARNING_RATE
    lr_schedule: LRSchedule = LRSchedule.exponential
    lr_decay: float | None = None  # None: the architecture's DEFAULT_LR_DECAY
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    clipnorm: float = 1.0

    DERIVED = frozenset({"class_names"})  # from the data
    EARLIER_RUNS = {"input_dropout": 0.0}  # runs saved before the option trained without it
    # Options that shape the weights: a resumed run cannot change them.
    ARCHITECTURE = frozenset({"class_names", "arch", "max_tokens", "seq_length", "embed_dim",
                              "units", "bidirectional", "cell"})

    def __post_init__(self) -> None:
        check_types(self)
        self.arch = choice(Arch, self.arch, "arch")
        self.cell = choice(Cell, self.cell, "cell")
        self.lr_schedule = choice(LRSchedule, self.lr_schedule, "lr_schedule")
        if self.max_tokens is None:
            self.max_tokens = TOPICS_MAX_TOKENS if self.topics else DEFAULT_MAX_TOKENS[self.arch]
        if self.lr_decay is None:
            self.lr_decay = DEFAULT_LR_DECAY[self.arch]
        if self.learning_rate is None:
            self.learning_rate = (TOPICS_NGRAMS_LEARNING_RATE if self.topics
                                  else DEFAULT_LEARNING_RATE[self.arch])
        check(len(self.class_names) >= 2, "a classifier needs at least two classes")
        check_field(self.max_tokens >= 2, "max_tokens", f"must be >= 2, got {self.max_tokens}")
        check_field(self.seq_length >= 1, "seq_length", f"must be >= 1, got {self.seq_length}")
        check_field(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check_field(self.units >= 1, "units", f"must be >= 1, got {self.units}")
        check_field(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        check_field(0.0 <= self.input_dropout < 1.0,
                    "input_dropout", f"must be in [0, 1), got {self.input_dropout}")
        check_field(self.learning_rate > 0 and math.isfinite(self.learning_rate),
                    "learning_rate", f"must be a number > 0, got {self.learning_rate}")
        check_field(0 < self.lr_decay <= 1, "lr_decay", f"must be in (0, 1], got {self.lr_decay}")
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.clipnorm > 0, f"clipnorm must be > 0, got {self.clipnorm}")

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def topics(self) -> bool:
        """The n-gram model over more than two classes: sublinear TF-IDF, trained with SGD."""
        return self.arch == Arch.ngrams and not self.binary

    @property
    def optimizer(self) -> Optimizer:
        return Optimizer.sgd if self.topics else Optimizer.adam

    def ignored(self, given: set[str]) -> list[str]:
        """The given options this architecture has no use for."""
        if self.arch != Arch.ngrams:
            return []
        return [name for name in SEQUENCE_ONLY if name in given]
