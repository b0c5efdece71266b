"""One training lifecycle for both modes.

A mode hands `train_run` a Recipe: its data, how to make its config, build its model and
datasets, and how to describe an epoch. The lifecycle owns the rest, in this order:

    check options -> strategy -> lock the run folder -> new run, or resume point and the
    saved config (changed architecture refused, other changes noted) -> seed -> plan the
    steps and the learning rate -> build or load the model -> run.json -> datasets
    positioned after the batches done -> sharding -> fit (textgen.training.fit) -> the
    mode's finishing step (e.g. the test-set evaluation)
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console

from textgen.console import stderr_console
from textgen.errors import (
    FIELD,
    FieldError,
    TextgenError,
    named_fields,
    written,
    written_command,
)
from textgen.modes import Mode
from textgen.reading import Decoding
from textgen.runs import RunDir, check_mode, is_temporary, run_lock
from textgen.tf_setup import keras_defaults, random_states_kept
from textgen.training import distribute
from textgen.training.fit import (
    Diverged,
    ResumePoint,
    TrainingInterrupted,
    TrainingPlan,
    fit_run,
    resume_point,
    settle_commit,
)
from textgen.training.options import (
    BUDGET_EPOCHS,
    SAVED_WITH_THE_RUN,
    LRSchedule,
    ModeConfig,
    TrainOptions,
    in_minutes,
)
from textgen.training.schedules import (
    FINAL_FRACTION,
    make_optimizer,
    plan_learning_rate,
    uses_schedule,
)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclass
class TrainResult:
    run: RunDir
    summary: dict[str, Any]
    already_finished: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Datasets:
    """The training stream (endless, already past the batches done) and validation batches."""

    train: tf.data.Dataset
    validation: tf.data.Dataset | None


class Recipe(Protocol):
    """A mode's part of training. The recipe is made (its data found and checked) and
    `new_config` runs before TensorFlow loads, so bad data or options fail fast."""

    mode: Mode
    run_name: str  # the default run folder name (from the data's name)
    facts: dict[str, Any]  # written into run.json (where the data came from, its size)
    data_notes: list[str]  # told when training starts (e.g. the files a folder's reading skipped)

    def config_from_dict(self, saved: dict, source: str) -> ModeConfig: ...

    def new_config(self, given: dict[str, Any]) -> ModeConfig: ...

    def choose_defaults(self, options: TrainOptions, given: dict[str, Any],
                        given_options: set[str], notes: Notes) -> dict[str, Any]:
        """For a new run: config values for the options the user left out (e.g. a model sized
        for the data and the time budget); it may also set training options the user left
        out in `options`. {} when the mode keeps its plain defaults."""

    def check_resume(self, config: ModeConfig, run: RunDir) -> None: ...

    def prepare_data(self, config: ModeConfig, options: TrainOptions, global_batch: int
                     ) -> int:
        """Load and split the training data; returns the batches in one pass over it."""

    def holds_out(self) -> bool:
        """Whether prepare_data kept validation data (a split too small for the data holds
        none)."""

    def build_model(self, config: ModeConfig, notes: Notes) -> keras.Model: ...

    def example_memory(self, config: ModeConfig) -> int:
        """Bytes one training example's activations, targets and gradients take (float32,
        an upper bound): a batch takes --batch-size times this."""

    def model_memory(self, config: ModeConfig) -> tuple[int, tuple[str, ...]]:
        """Bytes the weights, their gradients and Adam's moments take, and the fields that
        size them (for the error when they do not fit)."""

    def compile_args(self, config: ModeConfig) -> dict[str, Any]: ...

    def load_model(self, path: Path, config: ModeConfig, run: RunDir) -> keras.Model:
        """The run's saved model, to resume; a one-line error where it is not the model
        `config` describes (another run's file copied in)."""
        ...

    def write_files(self, run: RunDir) -> None: ...

    def datasets(self, config: ModeConfig, options: TrainOptions, global_batch: int,
                 skip_batches: int) -> Datasets: ...

    def describe_epoch(self, logs: dict[str, float]) -> str: ...

    def extra_metrics(self, logs: dict[str, float]) -> dict[str, float]: ...

    def finish(self, result: TrainResult, config: ModeConfig) -> None: ...


class Notes(list):
    """Notes for the user: printed as they arise and kept for the result."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def add(self, note: str, settings: dict[str, tuple[str, Any]] | None = None) -> None:
        """Print and keep a note; each `{key}` of `settings` in it is a setting, written as
        the running shell writes them (errors.written)."""
        note = written(note, settings)
        self.append(note)
        self.console.print(f"note: {note}", markup=False, highlight=False)


# A batch's activations may take this share of the memory available: the rest is for the
# model, its optimizer state, the data and TensorFlow itself.
BATCH_MEMORY_SHARE = 0.5
# Training memory per parameter: float32 weights, gradients and Adam's two moments.
BYTES_PER_PARAMETER = 16


def check_batch_fits(recipe: Recipe, config: ModeConfig, batch_size: int) -> None:
    """Refuse, before TensorFlow allocates it, a batch that cannot fit in memory; the error
    names the largest --batch-size that would."""
    from textgen.reading import available_memory, gigabytes

    available = available_memory()
    if available is None:
        return
    weights, sized_by = recipe.model_memory(config)
    if weights > available * BATCH_MEMORY_SHARE:
        smaller = " or ".join("{" + name + "}" for name in sized_by)
        raise TextgenError(f"the model needs about {gigabytes(weights)} to train (weights, "
                           f"gradients, optimizer state), more than half the "
                           f"{gigabytes(available)} available; use a smaller {smaller}",
                           named_fields(*sized_by))
    per_example = recipe.example_memory(config)
    room = available * BATCH_MEMORY_SHARE - weights
    if per_example * batch_size <= room:
        return
    fits = int(room // per_example)
    advice = ("use {fix} or less" if fits >= 1 else
              "use a smaller model (fewer units or layers, shorter windows)")
    raise FieldError("batch_size", f"{batch_size} needs about "
                     f"{gigabytes(per_example * batch_size)} to train one batch, more than "
                     f"half the {gigabytes(available)} available; {advice}",
                     fix=("batch_size", fits) if fits >= 1 else None)


def refuse_existing_run(run: RunDir, options: TrainOptions) -> None:
    """Without --resume or --overwrite an existing run is refused, so no model is lost; a
    folder of other files is never a run's, whatever the options (--overwrite would delete
    them)."""
    if options.resume and options.overwrite:
        raise FieldError("resume", "continues a run and {overwrite} starts it again; give one",
                         fixes={"overwrite": ("overwrite", True)})
    if run.exists() and not options.resume and not options.overwrite:
        raise FieldError("run_name", f"{run.path.name!r} is taken: {run.path} already holds a "
                         "run; pass {resume} to continue it, {overwrite} to start it again, or "
                         "{rename} for a new one", fixes={
                             "resume": ("resume", True), "overwrite": ("overwrite", True),
                             "rename": ("run_name", "NAME")})
    if options.overwrite and run.exists() and (others := run.others()):
        shown = ", ".join(p.name + ("/" if p.is_dir() else "") for p in others[:3])
        raise FieldError("overwrite", f"would delete what {run.path} holds besides the run: "
                         f"{shown}{', ...' if len(others) > 3 else ''}; move it out of the run "
                         "folder, or train under another {rename}",
                         fixes={"rename": ("run_name", "NAME")})
    # a start killed while writing its first run.json leaves the lock and a temporary
    if not run.exists() and run.path.is_dir() and any(
            p.name != ".lock" and not is_temporary(p) for p in run.path.iterdir()):
        raise FieldError("run_name", f"{run.path.name!r}: {run.path} holds files but no run (no "
                         "run.json); choose another {rename} or {elsewhere}",
                         fixes={"rename": ("run_name", "NAME"),
                                "elsewhere": ("checkpoint_dir", "DIR")})


def prepare_run_folder(run: RunDir, options: TrainOptions, mode: Mode) -> dict | None:
    """The existing run's metadata when resuming, None when starting fresh.

    --overwrite deletes nothing here: clear_run_folder runs once the new run has passed
    every check (its data, options and model), just before its first file is written.
    """
    refuse_existing_run(run, options)
    if run.exists() and options.resume:
        meta = run.read_meta()
        check_mode(run, meta, mode)
        settle_commit(run, meta)  # an epoch commit a crash cut short
        if resumable(run, meta):
            return meta
    return None


def resumable(run: RunDir, meta: dict) -> bool:
    """Whether --resume goes on from a saved model (False: nothing was saved yet, so the run
    starts from the beginning). A trained run with nothing to go on from is refused, by
    every worker alike: starting afresh would overwrite its files."""
    if resume_point(run, meta).model_file is not None:
        return True
    if has_models(run) or meta.get("training", {}).get("epochs_done", 0):
        raise FieldError("resume", f"cannot go on: {run.path} has no last.keras (nor a backup) "
                         "to go on from, though it holds a trained run; train a new one with "
                         "{rename}, or start this one again with {overwrite}",
                         fixes={"rename": ("run_name", "NAME"),
                                "overwrite": ("overwrite", True)})
    return False


def _load_resumed_model(recipe: Recipe, start: ResumePoint, config: ModeConfig,
                        run: RunDir) -> keras.Model:
    """The model a resume goes on from; a damaged mid-epoch backup is named with the way
    past it (a resume cannot be told which checkpoint to take)."""
    try:
        return recipe.load_model(start.model_file, config, run)
    except TextgenError as exc:
        if start.step == 0:  # last.keras: the message says it all
            raise
        after = (f"go on from {run.last.name} (the end of epoch {start.epoch})"
                 if run.last.exists() else "start the run again")
        raise TextgenError(f"{start.model_file}: a damaged mid-epoch backup; delete "
                           f"{run.backup} to {after}") from exc


def clear_run_folder(run: RunDir) -> None:
    """Everything in the run folder but its lock (for --overwrite and a fresh start: the
    folder holds only the run's files, refuse_existing_run saw to it); a link the user put
    there goes, never what it points to."""
    for path in run.path.iterdir():
        if path.name != ".lock":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def has_models(run: RunDir) -> bool:
    """Whether training has saved anything worth keeping (a model or a mid-epoch backup)."""
    # a backup's .json is written before its .keras: only a model counts
    return run.best.exists() or run.last.exists() or (
        run.backup.is_dir() and any(run.backup.glob("*.keras")))


@contextlib.contextmanager
def writable_run(run: RunDir, is_chief: bool = True, worker_index: int = 0
                 ) -> Iterator[RunDir]:
    """Where this process writes: the run folder (locked) for the chief; for other workers of
    a multi-worker job, a temporary folder that is removed afterwards."""
    if is_chief:
        with run_lock(run):
            yield run
        return
    tmp = Path(tempfile.mkdtemp(prefix=f"textgen-worker{worker_index}-"))
    try:
        yield RunDir(tmp / run.name)
    except TrainingInterrupted as stop:  # named as the run the chief saves, not this folder
        raise TrainingInterrupted(run, stop.epoch, stop.step, stop.signal, stop.saved_step,
                                  stop.finished) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def existing_run(run: RunDir, options: TrainOptions, mode: Mode, is_chief: bool) -> dict | None:
    """The chief prepares the run folder; other workers only read it when resuming."""
    if is_chief:
        return prepare_run_folder(run, options, mode)
    if options.resume and run.exists():
        meta = run.read_meta()
        return meta if resumable(run, meta) else None
    return None


def resumed_reading(options: TrainOptions, default_name: str, encoding: str | None,
                    decode_errors: str | None) -> tuple[Decoding, dict]:
    """How to read the data, and the run.json of the run `options` resume ({} for a new run,
    or one that cannot be read: the lifecycle says why): the encoding and decode errors
    given, and where left out, a resumed run's own (its data reads as it did), else the
    defaults."""
    meta: dict = {}
    if options.resume:
        with contextlib.suppress(TextgenError, OSError):
            meta = RunDir(options.checkpoint_dir / (options.run_name or default_name)).read_meta()
    return Decoding.from_dict(meta.get("decoding")).overridden(encoding, decode_errors), meta


def reconcile_config(saved: ModeConfig, given: dict[str, Any], notes: Notes) -> None:
    """A resumed run keeps its saved config. An architecture option given with another value
    is refused (the saved weights have the old shape); any other changed option gets a note."""
    saved_values = saved.to_dict()
    for key, value in given.items():
        old = saved_values.get(key)
        if key not in saved_values or old == value:
            continue
        if key in saved.ARCHITECTURE:
            raise TextgenError("{given} differs from the run's {saved}; a resumed run keeps its "
                               "architecture: drop the option, or start a new run with "
                               "{overwrite} or another {run_name}",
                               {"given": (key, value), "saved": (key, old),
                                "overwrite": ("overwrite", True),
                                "run_name": ("run_name", FIELD)})
        notes.add(f"resuming with the run's {{saved}} (not {value})", {"saved": (key, old)})


def check_decay_applies(config: ModeConfig, given: dict[str, Any], resumed: bool = False
                        ) -> None:
    """--lr-decay is the exponential schedule's rate: given with another schedule it would be
    ignored, so it is refused. (`resumed`: the schedule is the run's own, kept whatever
    --lr-schedule says.)"""
    if "lr_decay" not in given or config.lr_schedule == LRSchedule.exponential:
        return
    exponential = ("lr_schedule", str(LRSchedule.exponential))
    if resumed:
        raise FieldError("lr_decay", f"{given['lr_decay']} applies to {{fix}} only, and the "
                         f"run's schedule is {config.lr_schedule}, which a resumed run keeps; "
                         "leave out the decay", fix=exponential)
    raise FieldError("lr_decay", f"{given['lr_decay']} applies to {{fix}} only (the schedule "
                     f"is {config.lr_schedule}); add it, or leave out the decay", fix=exponential)


def reconcile_options(options: TrainOptions, given: set[str], meta: dict, notes: Notes) -> None:
    """A resumed run keeps the batch size, validation split, seed and epoch length it was
    started with; a different value given now gets a note."""
    training = meta.get("training", {})
    for key in SAVED_WITH_THE_RUN:
        saved = training.get(key)
        if saved is None or saved == getattr(options, key):
            continue
        if key in given:
            notes.add(f"resuming with the run's {{saved}} (not {getattr(options, key)})",
                      {"saved": (key, saved)})
        setattr(options, key, saved)


def resumed_strategy(options: TrainOptions, given: set[str], run: RunDir) -> bool:
    """A resumed mirrored run trains on the devices it started on unless --strategy or
    --devices is given: --batch-size is per device, so fewer devices would shrink every
    step's batch. (A multi-worker run needs its cluster's TF_CONFIG: it is never assumed.)
    Returns whether the run's own were taken."""
    if not options.resume or {"strategy", "devices"} & given:
        return False
    with contextlib.suppress(TextgenError, OSError):  # a damaged run.json is said later
        training = run.read_meta().get("training", {})
        devices = training.get("devices")
        # (a CPU split cannot be made once TensorFlow runs: the run goes on as the process
        # trains, with note_changed_replicas' note)
        if training.get("strategy") == distribute.Strategy.mirrored and not (
                distribute.too_late_for(distribute.Strategy.mirrored, devices)):
            options.strategy, options.devices = distribute.Strategy.mirrored, devices
            return True
    return False


def note_changed_replicas(training: dict, dist: distribute.Distribution, batch_size: int,
                          notes: Notes) -> None:
    """A resumed run on another number of devices than before gets a note (each step's batch
    changes with it), and run.json says what it trains on now."""
    saved = training.get("replicas") or 1
    if saved != dist.replicas:
        notes.add(f"training on {dist.replicas} device{'s' if dist.replicas != 1 else ''} "
                  f"({dist.name}) where the run trained on {saved}: a step's batch is "
                  f"{batch_size * dist.replicas} windows, not {batch_size * saved} "
                  f"({_as_before(training)})",
                  {"strategy": ("strategy", training.get("strategy")),
                   "devices": ("devices", training.get("devices"))})
    training.update(strategy=dist.name, replicas=dist.replicas,
                    devices=distribute.requested_devices())


def _as_before(training: dict) -> str:
    """How a resumed run trains on its own devices again (note_changed_replicas)."""
    strategy, devices = training.get("strategy"), training.get("devices")
    if devices:  # a CPU split is made as TensorFlow starts: from Python, in a new process
        return written_command("give {strategy} {devices} to train as before",
                               "give {strategy} {devices} in a new process to train as before")
    if strategy == distribute.Strategy.multi_worker:
        return "it trained as a multi-worker job: resume it on its cluster to train as before"
    if strategy == distribute.Strategy.mirrored:  # no devices named: all GPUs of its machine
        return "it trained on every GPU of its machine: resume it there to train as before"
    return "give {strategy} to train as before"


def saved_budget(training: dict, start: ResumePoint) -> dict | None:
    """The run's --max-time budget as last saved ({"minutes", "spent_s"}), or None."""
    if start.minutes is not None:  # the backup's budget is the latest word
        return {"minutes": start.minutes, "spent_s": start.spent_s}
    saved = training.get("budget")
    return saved if isinstance(saved, dict) else None


def budget_used_up(saved: dict | None) -> bool:
    """Whether the run trained to the end of its --max-time (saved_budget; a second's
    rounding aside): it is finished, as a run that did its epochs is, until a new budget or
    --epochs is given."""
    return saved is not None and (saved.get("spent_s") or 0.0) >= saved["minutes"] * 60 - 1


def resumed_budget(options: TrainOptions, given: set[str], training: dict, start: ResumePoint,
                   notes: Notes) -> float:
    """Seconds already spent of the --max-time budget a resumed run goes on with. A budget an
    interruption cut short goes on (the same --max-time, or none given), its learning rate
    where it was; a used-up budget or another --max-time is a new budget (0 spent)."""
    saved = saved_budget(training, start)
    if saved is None or options.max_time not in (None, saved.get("minutes")):
        return 0.0
    minutes, spent = saved["minutes"], saved.get("spent_s") or 0.0
    if budget_used_up(saved):  # a new one if given
        return 0.0
    options.max_time = minutes
    # the budget in words: as a setting, 20 seconds read `--max-time 0.333333`
    notes.add(f"going on with the run's {{max_time}} budget: {in_minutes(spent / 60)} of its "
              f"{in_minutes(minutes)} were spent (another {{max_time}} starts a new budget)",
              {"max_time": ("max_time", FIELD)})
    return spent


def resumed_plan(options: TrainOptions, given: set[str], meta: dict) -> None:
    """A resumed run goes on with the plan it started with, unless an option is given again:
    its epochs (under a new --max-time the budget ends training, as for a new run, unless the
    plan's epochs were themselves capped by a budget, as a classifier's are; a budget's epochs
    without one fall back to the default) and its chosen patience."""
    training, chosen = meta.get("training", {}), meta.get("chosen", {})
    if "epochs" not in given:
        planned = training.get("epochs_requested", chosen.get("epochs"))
        capped = "budget" in training and planned is not None and planned < BUDGET_EPOCHS
        if options.max_time is not None and not capped:
            options.epochs = BUDGET_EPOCHS
        elif planned is not None and planned < BUDGET_EPOCHS:
            options.epochs = planned
    if "patience" not in given and chosen.get("patience") is not None:
        options.patience = chosen["patience"]


def asks_for_more(options: TrainOptions, given: set[str], training: dict) -> bool:
    """Whether --resume on a run its patience stopped asks for more than the run had: a new
    --max-time, a new --epochs above the epochs done (its planned count, from the first
    command, would have stopped there too), a larger --patience (the same command again
    does not)."""
    return ("max_time" in given or
            "epochs" in given and options.epochs > training.get("epochs_done", 0)
            and options.epochs != training.get("epochs_requested") or
            "patience" in given and (options.patience or 0) > (training.get("patience") or 0))


def new_run_meta(mode: Mode, config: dict, options: TrainOptions, steps: int,
                 dist: distribute.Distribution, **facts: Any) -> dict:
    """run.json for a new run: what it is, how it was trained, with which versions."""
    import keras

    from textgen import __version__
    from textgen.tf_setup import tf_version

    return {
        "mode": str(mode),
        "textgen_version": __version__,
        "tensorflow_version": tf_version(),
        "keras_version": keras.version(),
        **facts,
        "config": config,
        "training": {"epochs_done": 0, "steps_per_epoch": steps,
                     "batch_size": options.batch_size, "rng_seed": options.rng_seed,
                     "val_split": options.val_split, "strategy": dist.name,
                     "replicas": dist.replicas, "devices": distribute.requested_devices()},
    }


def _best_so_far(meta: dict | None, monitor: str) -> float | None:
    """The best `monitor` value of a resumed run's committed epochs (None for a new run, or
    where the run watched another figure)."""
    training = (meta or {}).get("training", {})
    if training.get("monitor") != monitor:
        return None
    return training.get("best_value")


def watched(monitor: str) -> str:
    """The loss that --patience watches: the validation loss, or with no validation split
    the training loss."""
    return "training loss" if monitor == "loss" else "validation loss"


def finished_result(run: RunDir, meta: dict, notes: Notes, budget_spent: bool = False
                    ) -> TrainResult:
    """--resume on a run that has already done its epochs (or spent its --max-time budget):
    nothing to train, said in a note with what would train it further."""
    training = meta["training"]
    summary = {"epochs_done": training.get("epochs_done", 0),
               "best_epoch": training.get("best_epoch"),
               "best_logs": training.get("best_logs", {}), "seconds": 0.0,
               "steps_run": 0, "stopped_by_time": budget_spent,
               "stopped_early": bool(training.get("stopped_early")),
               "monitor": training.get("monitor", "val_loss")}
    done = summary["epochs_done"]
    if summary["stopped_early"]:
        notes.add(f"{run.path} stopped early at epoch {done}: its {watched(summary['monitor'])} "
                  f"had stopped improving; to train it further, resume with a new {{epochs}} "
                  f"above {done}, {{max_time}} or a larger {{patience}}",
                  named_fields("epochs", "max_time", "patience"))
    elif budget_spent:
        notes.add(f"{run.path} has already finished: its {{max_time}} budget is spent ({done} "
                  "epoch(s)); give a new {max_time}, or a larger {epochs}, to train it further",
                  named_fields("epochs", "max_time"))
    else:
        notes.add(f"{run.path} has already finished {done} epoch(s); give a larger {{epochs}}, "
                  "or {max_time}, to train it further", named_fields("epochs", "max_time"))
    return TrainResult(run, summary, already_finished=True, notes=notes)


# One training at a time in a process: the seeds, the strategy and the precision policy are
# TensorFlow's process-wide state, and two trainings would change each other's.
_training_here = threading.Lock()


def train_run(recipe: Recipe, options: TrainOptions, given: dict[str, Any],
              given_options: set[str] = frozenset(), console: Console | None = None
              ) -> TrainResult:
    """Train (or resume) the recipe's model into its run folder; returns the run and a summary.

    `given` holds the config options the user set explicitly, `given_options` the names of
    the training options set explicitly (they decide what a resume notes or refuses).
    """
    if not _training_here.acquire(blocking=False):
        raise TextgenError("another training is running in this process; train one model at "
                           "a time in a process (or each in a process of its own)")
    try:
        return _train_run(recipe, options, given, given_options, console)
    finally:
        _training_here.release()


def _train_run(recipe: Recipe, options: TrainOptions, given: dict[str, Any],
               given_options: set[str], console: Console | None) -> TrainResult:
    run = RunDir(options.checkpoint_dir / (options.run_name or recipe.run_name))
    runs_own = resumed_strategy(options, set(given_options), run)
    distribute.request(options.strategy, options.devices, runs_own)  # before TensorFlow starts
    console = console or stderr_console()
    notes = Notes(console)
    for note in recipe.data_notes:
        notes.add(note)
    new_config = recipe.new_config(given)  # validates the options before TensorFlow loads
    if not options.resume:  # a resumed run's schedule is its own, read from run.json
        check_decay_applies(new_config, given)
    check_batch_fits(recipe, new_config, options.batch_size)
    if not distribute.is_multi_worker():  # a multi-worker job's other workers only read it
        refuse_existing_run(run, options)  # answered before TensorFlow loads
    fresh = not run.path.exists()
    if waiting := distribute.waiting_note():
        notes.add(waiting)
    dist = distribute.role()
    try:
        with random_states_kept(), keras_defaults():
            return _train_in_folder(recipe, options, given, given_options, console, notes,
                                    run, dist)
    except BaseException as exc:
        # A new run (or an --overwrite one) that fails before its first model is saved
        # leaves no folder behind to be refused as "already holds a run" next time.
        if dist.is_chief and (fresh or options.overwrite) and run.path.is_dir() and (
                not has_models(run)) and not run.lock.exists():
            shutil.rmtree(run.path, ignore_errors=True)
            if isinstance(exc, Diverged):  # nothing left to overwrite: not advised
                raise exc.without_folder() from None
        raise


def _train_in_folder(recipe: Recipe, options: TrainOptions, given: dict[str, Any],
                     given_options: set[str], console: Console, notes: Notes,
                     run: RunDir, dist: distribute.Distribution) -> TrainResult:
    if dist.workers > 1 and options.max_time is not None:
        raise FieldError("max_time", "is not supported with {fix}: the workers' clocks would "
                         "stop them at different steps",
                         fix=("strategy", str(distribute.Strategy.multi_worker)))

    with writable_run(run, dist.is_chief, dist.worker_index) as out:
        meta = existing_run(run, options, recipe.mode, dist.is_chief)
        start = resume_point(run, meta)
        if options.resume and meta is None:
            notes.add(f"nothing saved in {run.path} yet; starting from the beginning"
                      if run.exists() else
                      f"no run {run.name} in {run.path.parent} yet: starting it (a misspelt "
                      "name? `textgen runs` lists them)")
        spent = 0.0
        if meta is None:
            dist = distribute.current()  # TensorFlow starts (quietly): the sizing uses it
            chosen = recipe.choose_defaults(options, given, set(given_options), notes)
            # made again even where nothing was chosen: choosing set the recipe's base (its
            # vocabulary), which the config made before it knew nothing of
            config = recipe.new_config({**chosen, **given})
            check_decay_applies(config, given)  # a --resume that found no run is a new one
        else:
            config = recipe.config_from_dict(meta["config"], str(run.meta))
            recipe.check_resume(config, run)  # other data is refused, finished run or not
            check_decay_applies(config, given, resumed=True)
            reconcile_config(config, given, notes)
            reconcile_options(options, given_options, meta, notes)
            spent = resumed_budget(options, given_options, meta["training"], start, notes)
            budget_done = budget_used_up(saved_budget(meta["training"], start)) and not (
                {"max_time", "epochs"} & given_options)
            resumed_plan(options, given_options, meta)
            done = meta["training"].get("epochs_done", 0)
            if meta["training"].get("stopped_early") and asks_for_more(
                    options, given_options, meta["training"]):
                # Asked for more: patience counts again from here (saved at the next epoch).
                meta["training"].update(stopped_early=False, patience_from=done)
            elif done >= meta["training"].get("epochs_requested", done + 1) and (
                    done < options.epochs):
                # a run that finished its plan, asked for more: the same, patience from here
                meta["training"]["patience_from"] = done
            if done >= options.epochs or meta["training"].get("stopped_early") or budget_done:
                return finished_result(run, meta, notes, budget_spent=budget_done)
            dist = distribute.current()  # TensorFlow starts once there is training to do
            note_changed_replicas(meta["training"], dist, options.batch_size, notes)
        check_batch_fits(recipe, config, options.batch_size * dist.replicas)

        import keras

        keras.utils.set_random_seed(options.rng_seed)
        global_batch = options.batch_size * dist.replicas
        one_pass = recipe.prepare_data(config, options, global_batch)
        steps = options.steps_per_epoch or one_pass
        monitor = "val_loss" if recipe.holds_out() else "loss"
        if options.val_split > 0 and not recipe.holds_out():
            notes.add("{val_split} holds out none of so few examples: the model trains on "
                      "all of them and watches its training loss",
                      {"val_split": ("val_split", options.val_split)})
        elif "patience" in given_options and options.patience and not recipe.holds_out():
            notes.add("{patience} watches the training loss: nothing is held out for "
                      "validation", {"patience": ("patience", options.patience)})
        rate = plan_learning_rate(config.learning_rate, config.lr_schedule, config.warmup_steps,
                                  options.epochs * steps, options.max_time,
                                  resumed=start.model_file is not None, monitor=monitor,
                                  steps_per_epoch=steps, decay=config.lr_decay,
                                  spent_s=spent, steps_done=start.epoch * steps + start.step,
                                  best_so_far=_best_so_far(meta, monitor))
        with dist.strategy.scope():
            if start.model_file is None:
                model = recipe.build_model(config, notes)
                model.compile(optimizer=make_optimizer(rate.learning_rate, config.clipnorm,
                                                     config.optimizer),
                              **recipe.compile_args(config))
            else:
                model = _load_resumed_model(recipe, start, config, run)
                if uses_schedule(model):
                    rate.callbacks = []  # the saved schedule goes on from its step count
                    saved = model.optimizer.get_config()["learning_rate"]["config"]
                    span = saved.get("decay_steps", 0) + (saved.get("warmup_steps") or 0)
                    if config.lr_schedule == LRSchedule.cosine and options.epochs * steps > span:
                        planned = span // steps
                        notes.add(f"the run's learning rate decays over its first {planned} "
                                  f"epoch{'s' if planned != 1 else ''}: the epochs after "
                                  "train at its floor, "
                                  f"{FINAL_FRACTION:.0%} of the peak (for a new decay, "
                                  "fine-tune the run: {base} and a new {run_name})",
                                  {"base": ("base", str(run.path)),
                                   "run_name": ("run_name", FIELD)})
        if meta is None and options.overwrite and out is run:
            clear_run_folder(run)  # every check has passed: the old run can go
        new_run = meta is None
        if new_run:  # run.json first: from here a killed start is a run --resume can take
            meta = new_run_meta(recipe.mode, config.to_dict(), options, steps, dist,
                                **recipe.facts)
            out.write_meta(meta)
        if new_run or out is not run:
            recipe.write_files(out)

        data = recipe.datasets(config, options, global_batch, start.epoch * steps + start.step)
        train_data, val_data = data.train, data.validation
        distribute.prepare_model(model, dist)
        if dist.workers > 1:
            train_data = distribute.shard_by_data(train_data)
            if val_data is not None:
                val_data = distribute.shard_by_data(val_data)
        plan = TrainingPlan(epochs=options.epochs, steps_per_epoch=steps,
                            initial_epoch=start.epoch, start_step=start.step,
                            start_logs=start.logs, max_time_minutes=options.max_time,
                            budget_spent_s=spent, backup_every=options.backup_every,
                            tensorboard=options.tensorboard, patience=options.patience,
                            monitor=monitor)
        meta["training"].update(epochs_requested=options.epochs, patience=options.patience)
        if options.max_time is not None:  # the budget this session trains under
            meta["training"]["budget"] = {"minutes": options.max_time, "spent_s": spent}
        else:  # no budget now: an earlier one, spent, must not end the run on --resume
            meta["training"].pop("budget", None)
        out.write_meta(meta)  # the plan, before any step: an interruption keeps it
        summary = fit_run(model, out, meta, train_data, val_data, plan, recipe.describe_epoch,
                          recipe.extra_metrics, console, callbacks=rate.callbacks)
    result = TrainResult(run, summary, notes=notes)
    if dist.is_chief:
        recipe.finish(result, config)
    return result
