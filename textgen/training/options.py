"""How to train, for both modes: the options every training run takes, their defaults and checks.

Free of TensorFlow, so bad options fail before the slow TensorFlow import. Each default is
declared here once; the CLI and the Python API read it from these dataclasses.
"""

from __future__ import annotations

import functools
import numbers
import os
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import numpy as np

from textgen.errors import (
    FieldError,
    TextgenError,
    as_path,
    check_field,
    check_run_name,
    choice,
    seed_value,
)
from textgen.runs import default_checkpoint_dir
from textgen.training.distribute import Strategy, parse_devices


class LRSchedule(StrEnum):
    """cosine: linear warm-up, then cosine decay to 10% of the peak over the planned steps (or
    over --max-time when a time budget is given). exponential: from the peak, the rate shrinks
    smoothly by --lr-decay every epoch (no epoch count needed: pair it with early stopping).
    plateau:
    warm-up, then the peak rate until an epoch does not improve the validation loss, then a
    third of it, and so on. constant: the peak rate throughout."""

    cosine = "cosine"
    exponential = "exponential"
    plateau = "plateau"
    constant = "constant"


class Optimizer(StrEnum):
    """adam (both modes' default) or sgd (with momentum: the topic n-gram model's, whose
    rare features Adam's per-weight steps over-fit)."""

    adam = "adam"
    sgd = "sgd"


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether `value` has the type `hint` names (int, float, str, bool, an enum, a list or
    tuple, or `X | None`; NumPy's numbers count as Python's), and the value as that type."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in options:
        origin = typing.get_origin(kind) or kind
        if kind is type(None) and value is None:
            return True, value
        if origin is bool and isinstance(value, bool | np.bool_):
            return True, bool(value)
        if isinstance(value, bool | np.bool_):
            continue  # True is an int to Python, never a number of units
        if origin is int and isinstance(value, numbers.Integral):
            return True, int(value)
        if origin is float and isinstance(value, numbers.Real):
            return True, float(value)
        if isinstance(origin, type) and issubclass(origin, StrEnum) and value in set(origin):
            return True, origin(value)
        if origin is str and isinstance(value, str):
            return True, value
        if origin in (list, tuple) and isinstance(value, list | tuple):
            return True, origin(value)
    return False, None


def _described(hint: Any, python: bool = False) -> str:
    """What a value of `hint` is, for a message: 'a whole number or null' in a JSON file's
    words, 'a whole number or None' in Python's."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    words = {bool: "True or False" if python else "true or false", int: "a whole number",
             float: "a number", str: "a string", list: "a list", tuple: "a list",
             type(None): "None" if python else "null"}
    return " or ".join(
        "one of " + ", ".join(m.value for m in k) if isinstance(k, type) and issubclass(k, StrEnum)
        else words.get(typing.get_origin(k) or k, getattr(k, "__name__", str(k)))
        for k in options)


def _checked(value: Any, hint: Any, where: str) -> Any:
    """`value` as the type `hint` names, else a TextgenError saying what `where` (a key of a
    saved file) must hold."""
    ok, conformed = _conform(value, hint)
    if not ok:
        raise TextgenError(f"{where} must be {_described(hint)}, got {value!r}; the file was "
                           "edited or damaged: train the run again")
    return conformed


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_types(options: Any) -> None:
    """A dataclass's fields as the types they declare (NumPy numbers made Python's), else a
    FieldError naming the field: the Python API passes values untyped, and "no" is truthy
    (`overwrite="no"` overwrote a run). Enums are left to `choice`, paths to Path()."""
    for f in fields(options):
        hint, value = _field_hints(type(options))[f.name], getattr(options, f.name)
        if hint is Path or isinstance(hint, type) and issubclass(hint, StrEnum):
            continue
        ok, conformed = _conform(value, hint)
        if not ok:
            raise FieldError(f.name, f"must be {_described(hint, python=True)}, got {value!r}")
        setattr(options, f.name, conformed)


class ModeConfig:
    """What both modes' model configs share: saved in run.json as plain JSON, read back
    ignoring keys this version does not know, and the names a user may set.

    The training lifecycle also reads each config's learning_rate, lr_schedule, lr_decay,
    warmup_steps and clipnorm, and ARCHITECTURE: the options a resumed run cannot change.
    """

    DERIVED: frozenset[str] = frozenset()  # fields that come from the data, not from options
    # Fields added after runs were saved without them: the value those runs trained with
    # (a missing field otherwise reads as today's default).
    EARLIER_RUNS: dict[str, Any] = {}
    ARCHITECTURE: frozenset[str] = frozenset()

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer a new model trains with (a mode's config may choose another)."""
        return Optimizer.adam

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Any, source: str = "run.json") -> Self:
        """The config saved in `source`, checked: a missing key, a value of the wrong type or
        out of range is a one-line error naming the file and the key (never a traceback)."""
        if not isinstance(data, dict):
            raise TextgenError(f"{source}: 'config' is missing or not an object; the file was "
                               "edited or damaged: train the run again")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name in cls.EARLIER_RUNS:
                    values[f.name] = cls.EARLIER_RUNS[f.name]
                    continue
                if f.default is MISSING and f.default_factory is MISSING:
                    raise TextgenError(f"{source}: config.{f.name} is missing; the file was "
                                       "edited or damaged: train the run again")
                continue
            values[f.name] = _checked(data[f.name], hints[f.name], f"{source}: config.{f.name}")
        try:
            return cls(**values)
        except TextgenError as exc:
            raise TextgenError(f"{source}: invalid config ({exc})") from None

    @classmethod
    def option_names(cls) -> set[str]:
        return {f.name for f in fields(cls)} - cls.DERIVED


@dataclass
class TrainOptions:
    """How to train (as opposed to what model to build: the mode's config).

    These defaults are generate mode's; classify mode's differ in ClassifyTrainOptions.
    """

    epochs: int = 20
    batch_size: int = 64
    val_split: float = 0.1
    steps_per_epoch: int | None = None
    max_time: float | None = None
    checkpoint_dir: Path = field(default_factory=default_checkpoint_dir)
    run_name: str | None = None
    rng_seed: int = 42
    resume: bool = False
    overwrite: bool = False
    backup_every: int = 100
    tensorboard: bool = False
    patience: int | None = None  # stop after this many epochs without a better validation loss
    # tf.distribute (textgen.training.distribute): set before TensorFlow starts when training.
    strategy: Strategy = Strategy.default
    devices: str | None = None  # mirrored: a count of logical CPU devices, or device names

    def __post_init__(self) -> None:
        check_types(self)
        if not isinstance(self.checkpoint_dir, str | os.PathLike):
            raise FieldError("checkpoint_dir", f"must be a folder's path, got "
                             f"{self.checkpoint_dir!r}")
        self.checkpoint_dir = as_path(self.checkpoint_dir, "checkpoint_dir")
        check_field(not self.checkpoint_dir.exists() or self.checkpoint_dir.is_dir(),
                    "checkpoint_dir", f"is {self.checkpoint_dir}, not a folder; give the "
                    "folder that holds the runs (made if it is not there)")
        self.strategy = choice(Strategy, self.strategy, "strategy")
        parse_devices(self.devices)  # checked now, used when training starts
        check_field(1 <= self.epochs <= MAX_COUNT, "epochs",
                    f"must be in [1, {MAX_COUNT:,}], got {self.epochs}")
        check_field(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check_field(0.0 <= self.val_split < 1.0,
                    "val_split", f"must be in [0, 1), got {self.val_split}")
        check_field(self.steps_per_epoch is None or 1 <= self.steps_per_epoch <= MAX_COUNT,
                    "steps_per_epoch", f"must be in [1, {MAX_COUNT:,}], got "
                    f"{self.steps_per_epoch}")
        if self.max_time is not None:  # in minutes, as -2h reached here: `got -120 minutes`
            check_field(0 < self.max_time <= MAX_TIME_MINUTES, "max_time",
                        f"must be > 0 and at most {MAX_TIME_MINUTES:,} minutes (a year), got "
                        f"{in_minutes(self.max_time)}")
        self.rng_seed = seed_value(self.rng_seed)
        check_field(self.backup_every >= 1,
                    "backup_every", f"must be >= 1 step, got {self.backup_every}")
        check_field(self.patience is None or self.patience >= 1,
                    "patience", f"must be >= 1 epoch, got {self.patience}")
        if self.run_name is not None:
            check_run_name(self.run_name)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


# A resumed run keeps these from run.json (a changed value gets a note); the other options
# (epochs, time budget, backups...) may change from one session to the next.
SAVED_WITH_THE_RUN = ("batch_size", "val_split", "rng_seed", "steps_per_epoch")
# Under --max-time the budget, not an epoch count, ends training: a count no run reaches.
BUDGET_EPOCHS = 100_000
MAX_COUNT = 2**31 - 1  # epochs and steps are int32 in TensorFlow's iterators
MAX_TIME_MINUTES = 525_600  # a year: longer is a typo, and its plan prints 300-digit passes


def in_minutes(minutes: float) -> str:
    """`1 minute`, `0.5 minutes`, `0.0333 minutes` (2 s), `1,200 minutes`: a --max-time in
    words, under a minute to three figures (a time given in seconds is not a ratio of
    minutes to write out)."""
    text = f"{minutes:.3g}" if minutes < 1 else f"{minutes:,.6g}"
    return f"{text} minute{'' if text == '1' else 's'}"


def split_overrides(overrides: dict[str, Any], config_fields: set[str],
                    options_class: type[TrainOptions]) -> tuple[dict, dict]:
    """Keyword arguments of a train_* function: (model config fields, training options).

    Unknown names are a TypeError, as for any Python function.
    """
    option_names = options_class.field_names()
    unknown = set(overrides) - config_fields - option_names
    if unknown:
        raise TypeError(f"unknown training options: {sorted(unknown)}")
    config = {k: v for k, v in overrides.items() if k in config_fields}
    options = {k: v for k, v in overrides.items() if k in option_names}
    return config, options
