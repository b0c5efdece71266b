"""The registry of modes: one enum, one object per mode, found by the mode's name.

Shared code (runs, serve, export, info, plots) asks a run's mode object what it needs and
never compares a mode's name: adding a mode adds a member here and a package with its
`mode.py`. The objects are imported when first asked for (a mode package imports its own
config and, lazily, TensorFlow), so this module sits at the bottom, beside errors.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from textgen.errors import TextgenError

if TYPE_CHECKING:
    from textgen.runs import Checkpoint, ModelChoice, RunDir
    from textgen.training.lifecycle import Recipe
    from textgen.training.options import ModeConfig


class Mode(StrEnum):
    """What a run is for; the value is what run.json's `mode` holds."""

    generate = "generate"
    classify = "classify"


# Where each mode's object lives (`MODE` in that module).
_OBJECTS = {Mode.generate: "textgen.generate.mode", Mode.classify: "textgen.classify.mode"}


class RunMode(Protocol):
    """What shared code asks a mode."""

    mode: Mode
    train_command: str  # how a run of this mode is made, for advice ("textgen train")
    use_command: str  # how one is used ("textgen sample/evaluate")
    train_function: str  # the same from Python ("textgen.train_generator")
    use_function: str  # ("textgen.load_sampler or evaluate_text")
    figure: Figure  # the one figure users compare runs by
    served_checkpoint: Checkpoint  # the model file `serve` loads from a run folder
    streams: bool  # `serve` runs its requests as streams through one shared batch (a sampler)
    # run.json's fields of this mode (what its recipe records) and their JSON types, checked
    # when run.json is read so that a hand-edited one is an error, not a crash later
    meta_fields: dict[str, tuple[type, ...]]

    @property
    def config_class(self) -> type[ModeConfig]: ...

    @property
    def recipe_class(self) -> type[Recipe]:
        """What this mode hands the training lifecycle (textgen.training.lifecycle)."""

    def info_rows(self, run: RunDir, meta: dict) -> dict[str, Any]:
        """What `textgen info` adds for a run of this mode (its vocabulary, its classes)."""

    def load_for_serving(self, choice: ModelChoice) -> Any:
        """The loaded model `serve` answers with (TensorFlow may load)."""

    def describe_served(self, loaded: Any) -> dict[str, Any]:
        """What /v1/models says about the loaded model."""

    def export_module(self, choice: ModelChoice) -> tuple[Any, dict[str, Any]]:
        """A tf.Module and its signatures for `textgen export`."""


class Figure:
    """A mode's headline figure: the log key (validation, else training) and how it reads."""

    def __init__(self, key: str, fallback: str, unit: str, per_nat: float | None = None):
        self.key, self.fallback, self.unit = key, fallback, unit
        self.per_nat = per_nat  # the figure is the loss times this (bits/char), or None

    @property
    def label(self) -> str:
        """`val bits/char`, `val accuracy`: the figure's name on a plot's axis."""
        return f"val {self.unit}"

    def best(self, meta: dict) -> float | None:
        """The figure of a run's best epoch, from run.json."""
        return self.best_entry(meta)[1]

    def best_entry(self, meta: dict) -> tuple[str, float | None]:
        """(the log key, its value) of a run's best epoch: the validation figure, or the
        training one for a run without a validation split."""
        best = meta.get("training", {}).get("best_logs") or {}
        key = self.key if self.key in best or self.fallback not in best else self.fallback
        return key, best.get(key)

    def show(self, value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} {self.unit}"


def mode_object(mode: Mode | str) -> RunMode:
    """The object of a mode, by its enum member or its name."""
    try:
        mode = Mode(mode)
    except ValueError:
        raise TextgenError(f"unknown mode {mode!r}; one of "
                           f"{', '.join(m.value for m in Mode)}") from None
    return importlib.import_module(_OBJECTS[mode]).MODE


def mode_of(meta: dict) -> RunMode:
    """The object of a run's mode, from its run.json (already checked by RunDir.read_meta)."""
    return mode_object(meta["mode"])


def is_mode(name: Any) -> bool:
    return name in set(Mode)


def wrong_mode(has: Mode | str, wanted: Mode | str | None) -> bool:
    """Whether something of mode `has` cannot serve where `wanted` is asked (None: any mode).

    The package's one comparison of modes."""
    return wanted is not None and Mode(has) != Mode(wanted)
