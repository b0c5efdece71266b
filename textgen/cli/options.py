"""Options more than one command takes, each declared here once.

Defaults are read from the dataclasses that own them (TrainOptions, the mode configs,
SamplingSettings), so the CLI never restates one. What a user typed is told apart from a
default (`given`): only typed options are passed on, so the Python API's defaults apply, a
preset fills in the rest, and a resumed run compares only what was asked for.
"""

import copy
import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from textgen.reading import DecodeErrors, Decoding
from textgen.runs import CHECKPOINT_DIR_VARIABLE, DEFAULT_CHECKPOINT_DIR, Checkpoint
from textgen.training.distribute import Strategy
from textgen.training.options import LRSchedule, TrainOptions
from textgen.training.schedules import FINAL_FRACTION


def path_given(value: str | Path) -> Path:
    """A path typed on the command line; an empty one is refused, not read as '.' (an unset
    shell variable would train on, or write into, the current folder)."""
    if isinstance(value, str) and not value:
        raise typer.BadParameter("is empty; give a file or folder name")
    return Path(value)


# --max-time's units, in minutes: a bare number is minutes (run.json's unit)
TIME_UNITS = {**dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1 / 60),
              **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 1.0),
              **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 60.0)}
# a sign is read, so that -2h reaches the range check as -2 does
TIME_GIVEN = re.compile(r"\s*(?P<number>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?)\s*"
                        r"(?P<unit>[a-z]*)\s*", re.IGNORECASE)


def minutes_given(value: str | float) -> float:
    """--max-time as typed: minutes (10, 0.5), or with a unit (90s, 10m, 2h), as `timeout` and
    the peers' budgets are written; the range is checked with the other options."""
    try:
        return float(value)  # minutes; nan, inf and the range are the options' check
    except ValueError:
        pass
    match = TIME_GIVEN.fullmatch(value)
    unit = match and match["unit"].lower()
    if not match or unit not in TIME_UNITS:
        raise typer.BadParameter(f"{value!r} is not a time; give minutes (10, 0.5) or a time "
                                 "with its unit (90s, 10m, 2h)")
    return float(match["number"]) * TIME_UNITS[unit]


CHECKPOINT_DIR_OPTION = typer.Option(
    "--checkpoint-dir", envvar=CHECKPOINT_DIR_VARIABLE, parser=path_given,
    help=f"Folder holding run folders (env {CHECKPOINT_DIR_VARIABLE}).")
CheckpointDir = Annotated[Path, CHECKPOINT_DIR_OPTION]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Run name under --checkpoint-dir, a run folder, or a .keras "
                 "file (that file). Default: the most recently trained run of this mode."),
]
CheckpointOption = Annotated[Checkpoint, typer.Option(
    help="Which model of the run: best (lowest validation loss) or last (the latest epoch). "
         "Ignored when a .keras file is named (that file is used).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, nothing else.")]
EncodingOption = Annotated[str | None, typer.Option(
    help="The text's encoding (any Python codec: utf-8, latin-1, cp1252...). Default: utf-8; "
         "for a trained model, what it was trained with.", show_default=False)]
LRScheduleOption = Annotated[LRSchedule, typer.Option(
    help=f"cosine (warm-up, then decay to {FINAL_FRACTION:.0%} over the planned steps or "
         "--max-time), "
         "exponential (x --lr-decay every epoch; no epoch count needed), plateau (cut when "
         "validation stops improving) or constant.")]
LR_DECAY_HELP = "The learning rate's factor per epoch under --lr-schedule exponential."
DecodeErrorsOption = Annotated[DecodeErrors | None, typer.Option(
    help="Bytes invalid in the encoding: strict (refuse the file, naming the offset), replace "
         "(with U+FFFD) or ignore (drop them). Default: strict; for a trained model, what it "
         "was trained with.", show_default=False)]
DEFAULT_DIR = Path(DEFAULT_CHECKPOINT_DIR)
# The sections of a train command's --help.
MODEL_PANEL, TRAINING_PANEL, DATA_PANEL, OUTPUT_PANEL = "Model", "Training", "Data", "Output"


def decoding(encoding: str | None, decode_errors: DecodeErrors | None,
             saved: dict | None = None) -> Decoding:
    """The Decoding asked for; what it leaves out comes from `saved` (a run's), then from
    Decoding's defaults."""
    return Decoding.from_dict(saved).overridden(encoding, decode_errors)


def given(ctx: typer.Context, **values: Any) -> dict[str, Any]:
    """The values the user typed (or set through an environment variable), not defaults."""
    out = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            out[name] = value
    return out


# The training options of both train commands: (type, typer option). Defaults come from the
# mode's TrainOptions class.
_TRAINING_OPTIONS: dict[str, tuple[Any, Any]] = {
    "epochs": (int, typer.Option(help="Epochs to train (in total, when resuming).")),
    "batch_size": (int, typer.Option(help="Examples per batch (per replica).")),
    "val_split": (float, typer.Option(
        help="Fraction held out for validation: the end of a text, a seeded sample of "
             "reviews.")),
    "steps_per_epoch": (int | None, typer.Option(
        help="Batches per epoch. Default: one pass over the training data.")),
    "max_time": (float | None, typer.Option(
        parser=minutes_given, metavar="<minutes>",
        help="Stop cleanly after this many minutes (10, 0.5; or 90s, 10m, 2h), keeping the "
             "best model.")),
    "checkpoint_dir": (Path, CHECKPOINT_DIR_OPTION),
    "run_name": (str | None, typer.Option(
        help="Run folder name. Default: the data's file or folder name.")),
    "rng_seed": (int, typer.Option(
        help="Seed for everything random: any whole number (taken modulo 2**32).")),
    "resume": (bool, typer.Option(help="Continue the run from its last saved step.")),
    "overwrite": (bool, typer.Option(help="Replace an existing run of the same name.")),
    "backup_every": (int, typer.Option(
        help="Save a mid-epoch backup every N steps (a crash loses at most N steps).")),
    "tensorboard": (bool, typer.Option(
        help="Write TensorBoard logs into the run folder (tensorboard --logdir checkpoints).")),
    "patience": (int | None, typer.Option(
        help="Stop after this many epochs without a better validation loss (best.keras keeps "
             "the best epoch).")),
    "strategy": (Strategy, typer.Option(
        help="default (one device), auto (mirrored when there are several GPUs), mirrored "
             "(local GPUs, or --devices N CPU devices) or multi-worker (configured by "
             "TF_CONFIG). --batch-size stays per replica. Default: default.",
        show_default=False)),
    "devices": (str | None, typer.Option(
        help="For mirrored: a count of logical CPU devices (2), or device names "
             "(GPU:0,GPU:1).")),
}


# Where each shared training option appears in --help.
_PANELS = {**dict.fromkeys(("epochs", "batch_size", "steps_per_epoch", "max_time", "rng_seed",
                            "patience", "strategy", "devices"), TRAINING_PANEL),
           "val_split": DATA_PANEL,
           **dict.fromkeys(("checkpoint_dir", "run_name", "resume", "overwrite",
                            "backup_every", "tensorboard"), OUTPUT_PANEL)}
for _name, (_, _option) in _TRAINING_OPTIONS.items():
    _option.rich_help_panel = _PANELS[_name]


def help_panels(command: Callable, panels: dict[str, str]) -> None:
    """Put a command's own options (by parameter name) into sections of its --help."""
    for name, parameter in inspect.signature(command).parameters.items():
        for info in getattr(parameter.annotation, "__metadata__", ()):
            if name in panels and hasattr(info, "rich_help_panel"):
                info.rich_help_panel = panels[name]


def _shown_default(option: Any, shown: str | None) -> Any:
    """The option, with `shown` as the default its --help gives (a copy: both train commands
    share the option)."""
    if shown is None:
        return option
    option = copy.copy(option)
    option.show_default = shown
    return option


@dataclass
class TrainingArgs:
    """The training options a user typed, ready to pass to train_generator/train_classifier."""

    given: dict[str, Any]


def with_training_options(options_class: type[TrainOptions],
                          shown_defaults: dict[str, str] | None = None) -> Callable:
    """Add the shared training options to a command; it receives them as `training`.

    The command takes `ctx: typer.Context` (to tell typed options from defaults).
    `shown_defaults` is what --help says of the defaults the mode chooses for the data (the
    options class's own would mislead there).
    """
    defaults = {f.name: (f.default_factory() if callable(f.default_factory) else f.default)
                for f in fields(options_class)}
    defaults["checkpoint_dir"] = DEFAULT_DIR

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "training"]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    annotation=Annotated[kind, _shown_default(
                                        option, (shown_defaults or {}).get(name))],
                                    default=defaults[name])
                  for name, (kind, option) in _TRAINING_OPTIONS.items()]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in _TRAINING_OPTIONS}
            typed = given(kwargs["ctx"], **values)
            return command(*args, training=TrainingArgs(typed), **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + shared)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
        return wrapper

    return decorate
