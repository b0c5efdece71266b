"""How big a generator to train when the user does not say: chosen from the corpus size and,
with `--max-time`, from the time budget and this machine's training speed. No TensorFlow.

The speed comes from a one-second timing probe (textgen.generate.probe: how many multiply-adds
per second this machine runs now in the training precision), turned into training characters
per second by a line fitted once per precision by `benchmarks/sizing.py` (TRAINING_SHARE,
OVERHEAD_MULTIPLY_ADDS). So a busy or a fast machine gets a model it can train in the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from textgen.errors import named_fields, written, written_setting
from textgen.generate.config import Cell, GeneratorConfig
from textgen.generate.data import MIN_STEPS_PER_EPOCH, steps_per_epoch
from textgen.training.options import BUDGET_EPOCHS, TrainOptions, in_minutes

# Each constant below is the rule and a one-line reason; the runs behind each figure are in
# docs/performance.md ("The sizing rule, with the figures behind it").

# The sizes the chooser picks from, smallest first: (layers, units).
LADDER: tuple[tuple[int, int], ...] = ((2, 128), (2, 256), (2, 384), (2, 512), (3, 512))
# Without a budget, at least this size: a smaller one does not learn a short text in the
# default 20 epochs (the config's defaults are this size).
SMALLEST_WITHOUT_BUDGET = (GeneratorConfig.layers, GeneratorConfig.units)
EMBED_DIM = GeneratorConfig.embed_dim  # the chooser does not change it

# Training time per character = (forward multiply-adds per character + OVERHEAD) /
# (TRAINING_SHARE x the probe's rate): a line fitted by benchmarks/sizing.py over the ladder
# at the budget's batch and windows, at full speed (it held within 15% when checked).
TRAINING_SHARE = {"mixed_bfloat16": 0.22, "float32": 0.20}
OVERHEAD_MULTIPLY_ADDS = {"mixed_bfloat16": 0.61e6, "float32": 0.24e6}
# Graph tracing inside the budget (its clock starts before the first step), as measured.
STARTUP_SECONDS = 3.0
USABLE_SHARE = 0.9  # the rest of the budget goes to validation and checkpoints

# char-rnn's rule of thumb: parameters on the order of the characters of training text.
MAX_PARAMS_PER_CHAR = 2.0
# Under a budget, a model that gets dropout may have this many times more (char-rnn's other
# rule: as big a network as there is time for, with dropout against overfitting).
DROPOUT_PARAMS_FACTOR = 2.0
# With HIGH_DROPOUT, a model that still sees its text HIGH_DROPOUT_PARAMS_PASSES times may
# have this many times more: the larger model won on long texts (docs/performance.md).
HIGH_DROPOUT_PARAMS_FACTOR = 4.0
HIGH_DROPOUT_PARAMS_PASSES = 30
# Under a budget, a model needs this many training signals per parameter to be worth its
# size (a larger one that got fewer lost to the smaller one, in slow and fast phases).
MIN_SIGNALS_PER_PARAM = 1.5
# Under a budget, dropout by how many times the text will be seen (as estimated): DROPOUT
# from DROPOUT_PASSES passes, HIGH_DROPOUT from HIGH_DROPOUT_PASSES (it overfits without).
DROPOUT_PASSES = 6
DROPOUT = GeneratorConfig.dropout
HIGH_DROPOUT_PASSES = 18
HIGH_DROPOUT = 0.4
# Under a budget, the default batch of 64: as many characters a second as 128 at short
# windows, and twice the updates.
BUDGET_BATCH_SIZE = TrainOptions.batch_size
# Under a budget, windows of 25 instead of the default 100: four times the updates for the
# same characters of signal, which a budget of minutes is short of (12 lost: the per-step
# cost no longer amortises). Without a budget the text is seen many times and windows of
# 100 give more context to learn from.
BUDGET_WINDOW = 25
CHECKS_PER_BUDGET = 10  # epochs are cut so the best model is checked at least this often
# Adam's peak rate by width, measured at batch 64-128; the narrowest is the config's default.
LEARNING_RATE_BY_UNITS = ((256, GeneratorConfig.learning_rate), (384, 4e-3), (512, 3e-3))
# Under a budget, 1.5 times that rate: on windows of 25 a higher rate paid.
BUDGET_RATE_FACTOR = 1.5
# Fine-tuning a pretrained base: this share of the rate a model from scratch gets, so the steps
# refine the base's English instead of overwriting it (docs/base.md).
FINE_TUNING_RATE_FACTOR = 1 / 3
# Without a budget the plan runs up to FINE_TUNING_EPOCHS epochs, many passes over a small
# text, so a fifteenth: a third overwrote what the base knew (docs/base.md).
FINE_TUNING_UNBUDGETED_RATE_FACTOR = 1 / 15
# Those gentle rates suit a text the base already predicts (its bits/char on the text at most
# NEAR_BASE_BITS: English lost at the full rate); from FAR_BASE_BITS on (code, other
# languages) the base's English is little to keep and the rate from scratch gains; log-linear
# in between (docs/base.md, "Texts far from the base").
NEAR_BASE_BITS = 2.5
FAR_BASE_BITS = 3.0
# A far text this large may do better from scratch, or worse: no rule measured tells them
# apart (docs/base.md), so the base stays and the note says so.
LARGE_FAR_TEXT_CHARS = 350_000
FINE_TUNING_EPOCHS = 10
# ...but no more epochs than make about this many passes over the text: an epoch is at least
# MIN_STEPS_PER_EPOCH batches, dozens of passes over a 2 kB text, and past ~80 passes a small
# text's unseen rest scores worse (docs/base.md; benchmarks/small_texts.py).
FINE_TUNING_PASSES = 80
# A fine-tuned base gets no dropout: its English already regularises it (better or equal on
# every small text measured); under a budget, until it would see the text
# FINE_TUNING_DROPOUT_PASSES times (docs/base.md).
FINE_TUNING_DROPOUT = 0.0
FINE_TUNING_DROPOUT_PASSES = 15
# Fine-tuning stops after this many epochs without a better validation loss: a small text is
# soon memorised (the bundled speech: best at epoch 6 of 10 from one base, 9 from the next), and
# the size is the base's, so no speed reading decides the plan beyond the epochs' length.
FINE_TUNING_PATIENCE = 3


def parameters(layers: int, units: int, vocab_size: int, embed_dim: int = EMBED_DIM,
               cell: Cell = Cell.lstm) -> int:
    """Weights of Embedding -> `layers` x the cell -> Dense(vocab), as Keras counts them."""
    total = vocab_size * embed_dim + units * vocab_size + vocab_size
    inputs = embed_dim
    for _ in range(layers):
        total += cell.gates * units * (inputs + units + cell.bias_rows)
        inputs = units
    return total


def multiply_adds_per_char(layers: int, units: int, vocab_size: int,
                           embed_dim: int = EMBED_DIM, gates: int = 4) -> int:
    """Forward multiply-adds per character: the recurrent layers and the output layer."""
    total, inputs = units * vocab_size, embed_dim
    for _ in range(layers):
        total += gates * units * (inputs + units)
        inputs = units
    return total


def window_for(max_minutes: float | None, given: dict[str, Any]) -> int:
    """The training window: as given, else BUDGET_WINDOW under a budget, else the default."""
    default = GeneratorConfig.seq_length if max_minutes is None else BUDGET_WINDOW
    return given.get("seq_length", default)


def passes_per_epoch(train_chars: int, given: dict[str, Any]) -> float:
    """How many times one epoch without a budget goes over the training text."""
    batch = given.get("batch_size", TrainOptions.batch_size)
    window = window_for(None, given)
    steps = given.get("steps_per_epoch") or steps_per_epoch(train_chars, window, batch)
    return steps * batch * window / max(train_chars, 1)


def fine_tuning_epochs(train_chars: int, given: dict[str, Any]) -> int:
    """FINE_TUNING_EPOCHS, or fewer where they would pass over the text more than
    FINE_TUNING_PASSES times (at least one epoch)."""
    by_passes = round(FINE_TUNING_PASSES / passes_per_epoch(train_chars, given))
    return max(1, min(FINE_TUNING_EPOCHS, by_passes))


def learning_rate_for(units: int, max_minutes: float | None = None,
                      fine_tuning: bool = False, base_bits: float | None = None) -> float:
    """Adam's peak rate for this width, BUDGET_RATE_FACTOR times higher under a budget; when
    fine-tuning a base, fine_tuning_rate_factor times that."""
    factor = 1.0 if max_minutes is None else BUDGET_RATE_FACTOR
    if fine_tuning:
        factor *= fine_tuning_rate_factor(max_minutes, base_bits)
    rate = next((rate for limit, rate in LEARNING_RATE_BY_UNITS if units <= limit),
                LEARNING_RATE_BY_UNITS[-1][1])
    return round(rate * factor, 6)  # 0.0045, not 0.0045000000000000005


def fine_tuning_rate_factor(max_minutes: float | None, base_bits: float | None) -> float:
    """The share of the rate from scratch that fine-tuning gets: FINE_TUNING_RATE_FACTOR under a
    budget, FINE_TUNING_UNBUDGETED_RATE_FACTOR without, for a text the base predicts at
    `base_bits` <= NEAR_BASE_BITS (or unknown: None); rising to all of it at FAR_BASE_BITS
    (a base that could score none of the text: NaN, counts as far)."""
    gentle = FINE_TUNING_UNBUDGETED_RATE_FACTOR if max_minutes is None else FINE_TUNING_RATE_FACTOR
    return gentle ** (1 - distance_from_base(base_bits))


def distance_from_base(base_bits: float | None) -> float:
    """How far a text lies from the base's books, by the base's bits/char on it: 0 up to
    NEAR_BASE_BITS (and unknown: None), 1 from FAR_BASE_BITS (and NaN: nothing scored),
    linear between."""
    if base_bits is None:
        return 0.0
    if math.isnan(base_bits):
        return 1.0
    return min(1.0, max(0.0, (base_bits - NEAR_BASE_BITS) / (FAR_BASE_BITS - NEAR_BASE_BITS)))


def scratch_worth_trying(train_chars: int, base_bits: float | None) -> bool:
    """Whether a text is large enough, and far enough from the base, that `--base none` may
    do better."""
    return train_chars >= LARGE_FAR_TEXT_CHARS and distance_from_base(base_bits) == 1.0


@dataclass(frozen=True)
class SizeChoice:
    """The options chosen (only those the user left out) and the one line that says why."""

    values: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Machine:
    """What the sizing rule knows of the machine: the precision training will use and the
    probe's multiply-adds per second in it."""

    precision: str
    probe_rate: float

    @property
    def training_rate(self) -> float:
        """Multiply-adds per second training reaches (overhead counted as multiply-adds)."""
        return self.probe_rate * TRAINING_SHARE[self.precision]

    def chars_per_second(self, multiply_adds_per_char: float) -> float:
        return self.training_rate / (multiply_adds_per_char +
                                     OVERHEAD_MULTIPLY_ADDS[self.precision])


def training_signals(layers: int, units: int, vocab_size: int, minutes: float,
                     machine: Machine, gates: int = 4) -> float:
    """Characters of training signal this machine gets through in `minutes` (estimated)."""
    seconds = max(0.0, minutes * 60 * USABLE_SHARE - STARTUP_SECONDS)
    return seconds * machine.chars_per_second(
        multiply_adds_per_char(layers, units, vocab_size, gates=gates))


def choose_size(train_chars: int, vocab_size: int, max_minutes: float | None,
                machine: Machine | None, given: dict[str, Any], fine_tuning: bool = False,
                base_bits: float | None = None) -> SizeChoice:
    """The generator for this corpus (and budget, on `machine`): layers, units, dropout,
    learning rate and, under a budget, batch size and epoch length. Options in `given`
    (config and training options the user set) are kept and left out of the choice; the rest
    follow them (the learning rate follows given units, the passes a given batch size and
    window length).

    Without a budget: the largest size with at most MAX_PARAMS_PER_CHAR parameters per
    character (at least SMALLEST_WITHOUT_BUDGET), trained for the default epochs, with dropout.
    Fine-tuning a base (`fine_tuning`, its size in `given`): the base's size, a lower rate (by
    `base_bits`, the base's bits/char on the text: fine_tuning_rate_factor) and early
    stopping (FINE_TUNING_PATIENCE); FINE_TUNING_DROPOUT and, without a budget,
    fine_tuning_epochs; with one, DROPOUT from FINE_TUNING_DROPOUT_PASSES passes.
    With a budget: the largest size that also gets MIN_SIGNALS_PER_PARAM training signals per
    parameter and at least one pass over the text in the budget (else the smallest size);
    dropout, and DROPOUT_PARAMS_FACTOR times the parameters, when it sees the text
    DROPOUT_PASSES times; more dropout from HIGH_DROPOUT_PASSES, and then
    HIGH_DROPOUT_PARAMS_FACTOR times the parameters for a model that still sees the text
    HIGH_DROPOUT_PARAMS_PASSES times.
    """
    cell = Cell(given.get("cell", GeneratorConfig.cell))
    embed_dim = given.get("embed_dim", EMBED_DIM)

    def size_of(size: tuple[int, int]) -> tuple[int, int]:
        return given.get("layers", size[0]), given.get("units", size[1])

    def params(size: tuple[int, int]) -> int:
        return parameters(*size_of(size), vocab_size, embed_dim, cell)

    def signals(size: tuple[int, int]) -> float:
        return training_signals(*size_of(size), vocab_size, max_minutes, machine,
                                cell.gates)

    def passes(size: tuple[int, int]) -> float:
        return signals(size) / max(train_chars, 1)

    def dropout_for(size: tuple[int, int]) -> float:
        """Under a budget: the user's dropout, else by how many times it sees the text."""
        if "dropout" in given:
            return given["dropout"]
        if fine_tuning:
            return (DROPOUT if passes(size) >= FINE_TUNING_DROPOUT_PASSES
                    else FINE_TUNING_DROPOUT)
        if passes(size) >= HIGH_DROPOUT_PASSES:
            return HIGH_DROPOUT
        return DROPOUT if passes(size) >= DROPOUT_PASSES else 0.0

    def cap_factor(size: tuple[int, int]) -> float:
        """How many times the text's parameter cap this size may have."""
        if max_minutes is None or dropout_for(size) == 0:
            return 1.0
        if dropout_for(size) >= HIGH_DROPOUT and passes(size) >= HIGH_DROPOUT_PARAMS_PASSES:
            return HIGH_DROPOUT_PARAMS_FACTOR
        return DROPOUT_PARAMS_FACTOR

    def fits(size: tuple[int, int]) -> bool:
        if fine_tuning:
            return True  # the base's size (given) whatever the text's length
        if params(size) > MAX_PARAMS_PER_CHAR * train_chars * cap_factor(size):
            return False
        return max_minutes is None or (signals(size) >= train_chars and
                                       signals(size) >= MIN_SIGNALS_PER_PARAM * params(size))

    smallest = LADDER[0] if max_minutes is not None else SMALLEST_WITHOUT_BUDGET
    fitting = [size for size in LADDER if size >= smallest and fits(size)]
    size = fitting[-1] if fitting else smallest
    layers, units = size_of(size)
    chosen: dict[str, Any] = {"layers": layers, "units": units,
                              "learning_rate": learning_rate_for(units, max_minutes, fine_tuning,
                                                                 base_bits)}
    if fine_tuning:
        chosen["patience"] = FINE_TUNING_PATIENCE
    if max_minutes is None:
        if fine_tuning:
            chosen["epochs"] = fine_tuning_epochs(train_chars, given)
        chosen["dropout"] = FINE_TUNING_DROPOUT if fine_tuning else DROPOUT
        why = (f"{params(size) / 1e6:.2f}M parameters for {train_chars:,} characters of "
               "training text")
        if fine_tuning:
            epochs = given.get("epochs", chosen["epochs"])
            passes = epochs * passes_per_epoch(train_chars, given)
            how_often = (f"{passes:.0f} times" if passes >= 1.5 else "once"
                         if round(passes, 1) == 1 else f"{passes:.1f} times")
            why += f", {epochs} epoch{'s' if epochs != 1 else ''} going over it about {how_often}"
    else:
        batch = given.get("batch_size", BUDGET_BATCH_SIZE)
        window = window_for(max_minutes, given)
        steps = signals(size) / (batch * window)
        chosen["dropout"] = dropout_for(size)
        chosen["seq_length"] = window
        chosen["epochs"] = BUDGET_EPOCHS
        if math.ceil(train_chars / (batch * window)) > steps / CHECKS_PER_BUDGET:
            chosen["steps_per_epoch"] = max(MIN_STEPS_PER_EPOCH, int(steps / CHECKS_PER_BUDGET))
        budget_passes = passes(size)
        ended_by = ""
        if "epochs" in given:  # a plan of fewer steps than the budget ends it sooner
            epoch_steps = given.get("steps_per_epoch", chosen.get("steps_per_epoch")) or (
                steps_per_epoch(train_chars, window, batch))
            planned_passes = given["epochs"] * epoch_steps * batch * window / max(train_chars, 1)
            if planned_passes < budget_passes:
                ended_by = written(" (the {epochs} given end it sooner)", named_fields("epochs"))
                budget_passes = planned_passes
        why = (f"{params(size) / 1e6:.2f}M parameters, about {budget_passes:.1f} passes over "
               f"{train_chars:,} characters in {in_minutes(max_minutes)}{ended_by} at "
               f"{machine.training_rate / 1e9:.1f}G multiply-adds/s ({machine.precision})")
    if fine_tuning and "learning_rate" not in given and distance_from_base(base_bits) > 0:
        score = ("knows none of its characters" if math.isnan(base_bits)
                 else f"predicts it at {base_bits:.2f} bits/char")
        why += f"; a higher rate, as the base {score} (texts it knows score under {NEAR_BASE_BITS})"
    kept = {k: v for k, v in chosen.items() if k not in given}
    # the budget's epochs are a formality (the budget ends training); a fine-tuning plan's count
    # is shown, and its patience only where it can act (kept for a resume with more epochs)
    planned = given.get("epochs", chosen.get("epochs", BUDGET_EPOCHS))
    shown = ", ".join(written_setting(k, v) for k, v in kept.items()
                      if (k != "epochs" or max_minutes is None)
                      and (k != "patience" or planned > v))
    return SizeChoice(kept, f"chose {shown or 'nothing'}: {why} (options you give win)")
