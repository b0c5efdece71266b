"""A review classifier's hyper-parameters and training defaults, and their checks.

Free of TensorFlow, so bad options are reported before the slow TensorFlow import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from textgen.errors import check, check_field, choice
from textgen.recurrent import Cell
from textgen.training.options import LRSchedule, ModeConfig, TrainOptions, option_flag
from textgen.training.schedules import DEFAULT_WARMUP_STEPS


class Arch(StrEnum):
    """lstm: the sequence model. ngrams: a linear model over which words and word pairs a
    review holds, naive-Bayes weighted (fast and strong). Built by textgen.classify.model."""

    lstm = "lstm"
    ngrams = "ngrams"


# Word pairs need a larger vocabulary than words: 100,000 n-grams beat 20,000 by 1.4 points of
# IMDb accuracy (benchmarks/README.md).
DEFAULT_MAX_TOKENS = {Arch.lstm: 20000, Arch.ngrams: 100000}
# Adam's peak rate. The LSTM, which overfits IMDb after two epochs, does best with a short,
# high-then-decaying run (benchmarks/README.md).
DEFAULT_LEARNING_RATE = {Arch.lstm: 2e-3, Arch.ngrams: 1e-3}
# With more than two classes the n-gram features are unit-length TF-IDF vectors (small
# values), which 1e-3 fits too slowly: on 20 Newsgroups 0.01 gave 0.822 test accuracy in 10
# epochs against 0.805 (benchmarks/topics.py).
TOPICS_NGRAMS_LEARNING_RATE = 1e-2
# The rate's factor per epoch under the default schedule, exponential: no epoch count to guess,
# early stopping ends the run. The LSTM learns IMDb in two epochs and then overfits; the
# linear n-gram model improves for ten (benchmarks/classify.py, README "Performance").
DEFAULT_LR_DECAY = {Arch.lstm: 0.5, Arch.ngrams: 0.8}
# The sequence model's options, which the n-gram model has no use for.
SEQUENCE_ONLY = ("seq_length", "embed_dim", "units", "bidirectional", "cell", "input_dropout")


@dataclass
class ClassifyTrainOptions(TrainOptions):
    """Classify mode's training defaults (the rest as in TrainOptions).

    Early stopping with the exponential schedule: `epochs` is only an upper bound. The LSTM
    overfits IMDb after two epochs and stops at the fourth; a 10% hold-out and batches of 64
    measured better than 20% and 32 (benchmarks/classify.py).
    """

    epochs: int = 10
    batch_size: int = 64
    val_split: float = 0.1
    patience: int | None = 2


@dataclass
class ClassifierConfig(ModeConfig):
    """Hyper-parameters of a classifier; saved in the run folder."""

    class_names: list[str] = field(default_factory=lambda: ["neg", "pos"])
    arch: Arch = Arch.lstm
    max_tokens: int | None = None  # None: the architecture's default (DEFAULT_MAX_TOKENS)
    seq_length: int = 200
    embed_dim: int = 128
    units: int = 64
    bidirectional: bool = False
    cell: Cell = Cell.lstm
    dropout: float = 0.5
    # Dropout on the recurrent layer's inputs (the word vectors; Keras keeps one mask for all
    # the steps of a review). IMDb, no other flag, one session, best validation loss / test
    # accuracy: none 0.282 / 0.869, 0.3 0.268 / 0.873, 0.5 0.266 / 0.877 (README).
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
        self.arch = choice(Arch, self.arch, "arch")
        self.cell = choice(Cell, self.cell, "cell")
        self.lr_schedule = choice(LRSchedule, self.lr_schedule, "lr_schedule")
        if self.max_tokens is None:
            self.max_tokens = DEFAULT_MAX_TOKENS[self.arch]
        if self.lr_decay is None:
            self.lr_decay = DEFAULT_LR_DECAY[self.arch]
        if self.learning_rate is None:
            topics = self.arch == Arch.ngrams and len(self.class_names) > 2
            self.learning_rate = (TOPICS_NGRAMS_LEARNING_RATE if topics
                                  else DEFAULT_LEARNING_RATE[self.arch])
        check(len(self.class_names) >= 2, "a classifier needs at least two classes")
        check_field(self.max_tokens >= 2, "max_tokens", f"must be >= 2, got {self.max_tokens}")
        check_field(self.seq_length >= 1, "seq_length", f"must be >= 1, got {self.seq_length}")
        check_field(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check_field(self.units >= 1, "units", f"must be >= 1, got {self.units}")
        check_field(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        check_field(0.0 <= self.input_dropout < 1.0,
                    "input_dropout", f"must be in [0, 1), got {self.input_dropout}")
        check_field(self.learning_rate > 0,
                    "learning_rate", f"must be > 0, got {self.learning_rate}")
        check_field(0 < self.lr_decay <= 1, "lr_decay", f"must be in (0, 1], got {self.lr_decay}")
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.clipnorm > 0, f"clipnorm must be > 0, got {self.clipnorm}")

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    def ignored(self, given: set[str]) -> list[str]:
        """The given options this architecture has no use for."""
        if self.arch != Arch.ngrams:
            return []
        return [option_flag(name) for name in SEQUENCE_ONLY if name in given]
