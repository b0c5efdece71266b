"""How to train a classifier when the user does not say: one rule, a function of the data's
size (examples, their length, classes). No TensorFlow, no training: the same data gives the
same choice, printed as one `note: chose ...: why` line and saved in run.json.

Everything is planned in optimizer steps, so warm-up and decay are shares of the planned run
whatever its size: 20 one-liners get as many updates as a model needs to fit them, 25,000
reviews get their passes. Options the user gives win; the rest follow them (a given batch
size changes the steps, a given architecture its passes). The figures behind each constant
are in docs/classify.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textgen.classify.config import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_TOKENS,
    TOPICS_MAX_TOKENS,
    TOPICS_NGRAMS_LEARNING_RATE,
    Arch,
    ClassifierConfig,
    ClassifyTrainOptions,
)
from textgen.classify.data import held_out_counts
from textgen.errors import written, written_command, written_setting
from textgen.training.options import LRSchedule, in_minutes

ARCH = ClassifierConfig.arch  # the n-gram model at every size (the reason is beside it)
# Passes over the data the plan is made of, by architecture: the linear n-gram model improves
# for about ten; the LSTM learns IMDb in two and then overfits (patience stops it).
PASSES = {Arch.ngrams: 10, Arch.lstm: 4}
# At least this many optimizer steps whatever the data's size: ten passes over 20 examples
# would be 20 steps and learn nothing; a thousand take seconds.
MIN_STEPS = 1000
# The n-gram model is linear, so its rate only sets how far the weights travel over the run:
# for two classes, a plan of fewer steps than the rate was measured with gets a proportionally
# higher rate (at most MAX_RATE_FACTOR times); measured with IMDb's 25,000 reviews (3,520
# steps at 1e-3, Adam).
BINARY_RATE_STEPS = 3520
# Topics (SGD to a margin) keep each example's step instead: the rate is measured at batches
# of TOPICS_RATE_BATCH and follows the batch down (a raise for a short plan cost small sets
# accuracy; docs/classify.md).
TOPICS_RATE_BATCH = 64
MAX_RATE_FACTOR = 10
# The rate decays to this share of the peak by the end of the plan, exponentially per epoch
# (over ten passes 0.79 an epoch, near the 0.8 measured best; docs/classify.md).
FINAL_RATE_SHARE = 0.1
WARMUP_SHARE = 0.05  # of the planned steps, for the schedules that warm up (cosine, plateau)
# The batch: 64 from DATA_PER_BATCH x 64 examples down, halving with the data to at least
# MIN_BATCH, so a small set still gets about DATA_PER_BATCH steps per pass.
MAX_BATCH = ClassifyTrainOptions.batch_size
MIN_BATCH = 8
DATA_PER_BATCH = 16
# A validation split only where it holds at least MIN_VALIDATION examples: fewer say little
# (accuracy on 25 examples moves 4 points per example) and cost training data. Below it the
# model trains on everything and stops when the training loss has converged.
VALIDATION_SHARE = ClassifyTrainOptions.val_split
MIN_VALIDATION = 250
# Topics train on every example whatever their number: their planned passes end where held-out
# loss stops improving, so a held-out tenth only costs data (docs/classify.md).
TOPICS_VALIDATION_SHARE = 0.0
# Topics' unit-length TF-IDF vectors train without dropout on the features: the two-class
# model's 0.5 did not help them (docs/classify.md).
TOPICS_DROPOUT = 0.0
# Stop after PATIENCE epochs without a better monitored loss (validation, else training).
PATIENCE = ClassifyTrainOptions.patience
# The LSTM keeps each text's last seq_length tokens: no more than the longest texts hold
# (a one-liner's run needs no 200 steps of padding), rounded up to a multiple of 8.
LSTM_MAX_SEQ_LENGTH = ClassifierConfig.seq_length


@dataclass(frozen=True)
class DataSize:
    """What the rule knows of the data: examples, their length and the classes."""

    examples: int
    words_p90: int  # the 90th percentile of words per example
    classes: int
    class_counts: tuple[int, ...] = ()  # examples per class, where known (the split's sizes)
    has_test: bool = False  # a test/ beside train/, scored when training ends

    @classmethod
    def of(cls, texts: list[str], classes: int, class_counts: tuple[int, ...] = (),
           has_test: bool = False) -> DataSize:
        lengths = sorted(len(text.split()) for text in texts) or [0]
        return cls(len(texts), lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))], classes,
                   tuple(class_counts), has_test)

    def held_out(self, val_split: float) -> int:
        """Examples a validation split holds: as the split makes it, each class keeping one to
        train on, where the classes' sizes are known."""
        if self.class_counts:
            return sum(held_out_counts(np.array(self.class_counts), val_split))
        return int(self.examples * val_split)


@dataclass(frozen=True)
class TrainingChoice:
    """The options chosen (only those the user left out), the one line that says why, and
    notes for the user (e.g. that there is too little data to hold any out)."""

    values: dict[str, Any]
    reason: str
    notes: list[str] = field(default_factory=list)


def batch_size_for(examples: int) -> int:
    """MAX_BATCH, halved while a pass would have fewer than DATA_PER_BATCH steps."""
    batch = MAX_BATCH
    while batch > MIN_BATCH and examples < DATA_PER_BATCH * batch:
        batch //= 2
    return batch


def validation_share_for(examples: int, topics: bool = False) -> float:
    """VALIDATION_SHARE where it holds MIN_VALIDATION examples, else 0 (train on all); for
    topics TOPICS_VALIDATION_SHARE."""
    if topics:
        return TOPICS_VALIDATION_SHARE
    return VALIDATION_SHARE if examples * VALIDATION_SHARE >= MIN_VALIDATION else 0.0


def learning_rate_for(arch: Arch, classes: int, planned_steps: int, batch: int) -> float:
    """The peak rate: the architecture's; for two-class n-grams raised for a plan shorter than
    the one it was measured with; for topics (n-grams, more classes) in proportion to the
    batch, so that each example moves the weights as far as in the run it was measured with."""
    if arch != Arch.ngrams:
        return DEFAULT_LEARNING_RATE[arch]
    if classes > 2:
        rate = TOPICS_NGRAMS_LEARNING_RATE * batch / TOPICS_RATE_BATCH
    else:
        rate = DEFAULT_LEARNING_RATE[arch] * min(MAX_RATE_FACTOR,
                                                 max(1.0, BINARY_RATE_STEPS / planned_steps))
    return float(f"{rate:.2g}")  # 0.0035, not 0.0035200000000000006


def choose_training(data: DataSize, given: dict[str, Any]) -> TrainingChoice:
    """The architecture and how to train it for `data`: batch size, validation split, epochs
    and steps per epoch, patience, learning rate, its decay and warm-up, vocabulary and (for
    the LSTM) the tokens kept. `given` holds the config and training options the user set:
    they are kept and left out of the choice, and the rest follow them.
    """
    arch = Arch(given.get("arch", ARCH))
    topics = arch == Arch.ngrams and data.classes > 2
    batch = given.get("batch_size", batch_size_for(data.examples))
    val_split = given.get("val_split", validation_share_for(data.examples, topics))
    trained_on = data.examples - data.held_out(val_split)
    filled = min(batch, max(1, trained_on))  # a batch larger than the data holds all of it
    passes = given.get("epochs", PASSES[arch])
    steps_per_pass = max(1, math.ceil(trained_on / batch))
    # An epoch is one pass, stretched to reach MIN_STEPS only when the user set neither the
    # epochs nor their length (`--epochs 1` means one pass).
    stretched = "epochs" not in given and "steps_per_epoch" not in given
    steps_per_epoch = given.get("steps_per_epoch", max(
        steps_per_pass, math.ceil(MIN_STEPS / passes) if stretched else 1))
    planned = passes * steps_per_epoch
    # A decay is the exponential schedule's alone: under another the plan names none. Six
    # significant digits: 0.99998 an epoch over 100,000 epochs still ends at a tenth (rounded
    # to 4 decimals it read 1.0, no decay).
    decays = given.get("lr_schedule", LRSchedule.exponential) == LRSchedule.exponential
    chosen: dict[str, Any] = {
        "arch": arch,
        "batch_size": batch,
        "val_split": val_split,
        "epochs": passes,
        "steps_per_epoch": steps_per_epoch if steps_per_epoch > steps_per_pass else None,
        "patience": PATIENCE,
        "learning_rate": learning_rate_for(arch, data.classes, planned, filled),
        "lr_schedule": LRSchedule.exponential,
        **({"lr_decay": float(f"{FINAL_RATE_SHARE ** (1 / passes):.6g}")} if decays else {}),
        "warmup_steps": round(WARMUP_SHARE * planned),
        "max_tokens": TOPICS_MAX_TOKENS if topics else DEFAULT_MAX_TOKENS[arch],
    }
    if topics:
        chosen["dropout"] = TOPICS_DROPOUT
    if arch == Arch.lstm:
        chosen["seq_length"] = min(LSTM_MAX_SEQ_LENGTH, max(8, -(-data.words_p90 // 8) * 8))
    kept = {k: v for k, v in chosen.items() if k not in given}
    shown = ", ".join(written_setting(k, v) for k, v in kept.items()
                      if v is not None and k not in ("lr_schedule", "warmup_steps"))
    held = (f"{data.examples - trained_on:,} held out" if trained_on < data.examples else
            "none held out")
    why = (f"{data.examples:,} examples ({held}), {data.classes} classes, "
           f"90% of them at most {data.words_p90:,} word{'s' if data.words_p90 != 1 else ''} "
           f"long: {planned:,} steps of {filled}")
    if given.get("max_time") is not None:
        # The plan's steps are an upper bound: the rate decays over the steps or the minutes,
        # whichever run out first (schedules.time_budget_exponential).
        why += f" or {in_minutes(given['max_time'])}, whichever comes first"
    notes = []
    if topics and "val_split" not in given:
        notes.append(
            f"{data.examples:,} examples in {data.classes} classes: the model trains on all of "
            f"them (held-out accuracy would cost it data and change nothing of the plan); "
            f"{_scoring(data)}, or give "
            + written("{val_split} to watch it during training",
                      {"val_split": ("val_split", 0.1)}))
    elif not val_split and "val_split" not in given:
        notes.append(
            f"{data.examples:,} examples: {_too_few(int(data.examples * VALIDATION_SHARE))}, "
            "so the model trains on all of them "
            f"and stops when its training loss has converged; {_scoring(data)}")
    return TrainingChoice(kept, f"chose {shown or 'nothing'}: {why} (options you give win)",
                          notes)



def _scoring(data: DataSize) -> str:
    """How the model trained on all its examples gets scored."""
    if data.has_test:
        return "test/ scores it when training ends"
    command = written_command("`textgen classify evaluate`", "`textgen.evaluate_data(data, run)`")
    return f"score it with {command} on labelled texts it has not seen"


def _too_few(held_out: int) -> str:
    return (f"accuracy on the {held_out:,} a validation split would hold says little"
            if held_out else "too few for a validation split")
