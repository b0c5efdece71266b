"""A review classifier's hyper-parameters and their checks.

Free of TensorFlow, so bad options are reported before the slow TensorFlow import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from textgen.errors import TextgenError

ARCHITECTURE_NAMES = ("lstm", "ngrams")  # built by textgen.classifier.ARCHITECTURES
# Word pairs need a larger vocabulary than words: 100,000 n-grams beat 20,000 by 1.4 points of
# IMDb accuracy (benchmarks/README.md).
DEFAULT_MAX_TOKENS = {"lstm": 20000, "ngrams": 100000}
# Adam's peak rate. The LSTM, which overfits IMDb after two epochs, does best with a short,
# high-then-decaying run (benchmarks/README.md).
DEFAULT_LEARNING_RATE = {"lstm": 2e-3, "ngrams": 1e-3}


@dataclass
class ClassifierConfig:
    """Hyper-parameters of a classifier; saved in the run folder."""

    class_names: list[str] = field(default_factory=lambda: ["neg", "pos"])
    max_tokens: int | None = None  # None: the architecture's default (DEFAULT_MAX_TOKENS)
    seq_length: int = 200
    embed_dim: int = 128
    units: int = 64
    bidirectional: bool = False
    dropout: float = 0.5
    learning_rate: float | None = None  # None: the architecture's DEFAULT_LEARNING_RATE
    arch: str = "lstm"
    lr_schedule: str = "cosine"  # cosine decay to 10% over the planned steps, or constant

    def __post_init__(self) -> None:
        if self.max_tokens is None and self.arch in DEFAULT_MAX_TOKENS:
            self.max_tokens = DEFAULT_MAX_TOKENS[self.arch]
        if self.learning_rate is None and self.arch in DEFAULT_LEARNING_RATE:
            self.learning_rate = DEFAULT_LEARNING_RATE[self.arch]
        checks = [
            (self.arch in ARCHITECTURE_NAMES,
             f"--arch must be one of {', '.join(ARCHITECTURE_NAMES)}, got {self.arch!r}"),
            (len(self.class_names) >= 2, "a classifier needs at least two classes"),
            (self.max_tokens is not None and self.max_tokens >= 2,
             f"--max-tokens must be >= 2, got {self.max_tokens}"),
            (self.seq_length >= 1, f"--seq-length must be >= 1, got {self.seq_length}"),
            (self.embed_dim >= 1, f"--embed-dim must be >= 1, got {self.embed_dim}"),
            (self.units >= 1, f"--units must be >= 1, got {self.units}"),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}"),
            (self.learning_rate is not None and self.learning_rate > 0,
             f"--learning-rate must be > 0, got {self.learning_rate}"),
            (self.lr_schedule in ("cosine", "constant"),
             f"--lr-schedule must be cosine or constant, got {self.lr_schedule!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TextgenError(message)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
