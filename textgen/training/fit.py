"""The fit loop both modes share: checkpoint callbacks, time budget, progress display, history.

`fit_run` trains a compiled Keras model into a run folder. Each finished epoch is committed in
this order: its models as `backup/commit-NNNNNN-last.keras` (and `-best` if improved),
history.csv, then run.json, whose `epochs_done` is the commit point a resume starts from, then
the models renamed into last.keras and best.keras. A crash before run.json leaves the previous
epoch's models as they were (and history.csv a row ahead, which readers and a resume leave
out); after it, the next resume finishes the renames (`settle_commit`).
Within an epoch, a backup of the model (with optimizer state) is saved every `backup_every`
steps as `backup/epoch-EEEEEE-step-SSSSSSSSS.keras`, beside a `.json` holding the epoch's
running training figures and the time budget spent, so a crash or Ctrl-C loses at most that
many steps; a resume continues the interrupted epoch at the step after the backup, and that
epoch's figures cover all its steps, not only the ones after the resume.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from textgen.console import stderr_console
from textgen.errors import FIELD, TextgenError
from textgen.runs import RunDir, save_model_atomic, write_json_atomic
from textgen.training.options import BUDGET_EPOCHS

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

ExtraMetrics = Callable[[dict[str, float]], dict[str, float]]
# A cross-entropy past 100 nats an example: e**-100 for the right answer on average, where a
# uniform guess over 100,000 classes costs 11.5. Only a diverged model gets there.
DIVERGED_LOSS = 100.0


_BACKUP_NAME = re.compile(r"^epoch-(\d{6})-step-(\d{9})\.keras$")
_COMMIT_NAME = re.compile(r"^commit-(\d{6})-(last|best)\.keras$")


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM during training; finished epochs and a backup of the current step
    are saved. `signal` is the one that stopped it (the exit code is 128 + its number)."""

    def __init__(self, run: RunDir, epoch: int, step: int, stopped_by: int = signal.SIGINT,
                 saved_step: int | None = None, finished: bool = False):
        super().__init__(
            f"training interrupted as it ended; everything is saved in {run.path}" if finished
            else f"training interrupted in epoch {epoch + 1} after step {step}; the same call "
                 f"with resume=True goes on from {run.path}")
        self.run = run
        # the signal came after the last step: every epoch done is saved, no step is lost
        self.finished = finished
        self.epoch = epoch
        self.step = step
        self.signal = signal.Signals(stopped_by)
        # the epoch's steps a --resume goes on from: all but an epoch's end not yet committed
        self.saved_step = step if saved_step is None else saved_step


@dataclass(frozen=True)
class Backup:
    """A mid-epoch backup: `step` batches of epoch index `epoch` (0-based) were done."""

    path: Path
    epoch: int
    step: int


def backups(run: RunDir) -> list[Backup]:
    """Complete backup files of a run (temporary files never match), oldest first."""
    if not run.backup.is_dir():
        return []
    found = []
    for path in run.backup.iterdir():
        match = _BACKUP_NAME.match(path.name)
        if match:
            found.append(Backup(path, int(match[1]), int(match[2])))
    return sorted(found, key=lambda b: (b.epoch, b.step))


def settle_commit(run: RunDir, meta: dict) -> None:
    """Finish or drop an epoch commit a crash cut short: its models go into place when
    run.json says the epoch is done, and are dropped when it does not (the previous epoch's
    files are then the consistent state)."""
    if not run.backup.is_dir():
        return
    done = meta.get("training", {}).get("epochs_done", 0)
    for path in run.backup.iterdir():
        match = _COMMIT_NAME.match(path.name)
        if match and int(match[1]) == done:
            path.replace(run.last if match[2] == "last" else run.best)
        elif match:
            path.unlink()
    with contextlib.suppress(OSError):
        run.backup.rmdir()  # when nothing else is left in it


def _carry_file(backup: Path) -> Path:
    return backup.with_suffix(".json")


@dataclass(frozen=True)
class ResumePoint:
    """Where training starts: a model file (None: a new model), epochs done, steps done after,
    and what the backup recorded: the interrupted epoch's running training figures over those
    steps (`logs`) and the seconds of the time budget spent (`spent_s`; None: not recorded)."""

    model_file: Path | None
    epoch: int = 0
    step: int = 0
    logs: dict[str, float] | None = None
    spent_s: float | None = None
    minutes: float | None = None  # the budget that `spent_s` is of


def _read_carry(path: Path) -> dict[str, Any]:
    """What a backup's .json recorded, each figure kept only where it is one a run writes:
    the figures are extras (the model file is the state), so an edited or damaged one is
    left out, never an error, and never a NaN loss carried into the resumed epoch."""
    try:
        carry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(carry, dict):
        return {}

    def number(value: Any, low: float) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value) and value >= low)

    logs = carry.get("logs")
    return {"logs": {key: float(value) for key, value in logs.items() if number(value, 0)}
            if isinstance(logs, dict) else None,
            "spent_s": carry["spent_s"] if number(carry.get("spent_s"), 0) else None,
            "minutes": carry["minutes"] if number(carry.get("minutes"), 0) and carry[
                "minutes"] > 0 else None}


def resume_point(run: RunDir, meta: dict | None) -> ResumePoint:
    """The latest consistent state: a mid-epoch backup past the last finished epoch, or
    last.keras at that epoch's end."""
    if meta is None:
        return ResumePoint(None)
    done = meta.get("training", {}).get("epochs_done", 0)
    later = [b for b in backups(run) if b.epoch == done and b.step > 0]
    if later:
        carry = _read_carry(_carry_file(later[-1].path))
        return ResumePoint(later[-1].path, done, later[-1].step, carry.get("logs"),
                           carry.get("spent_s"), carry.get("minutes"))
    if run.last.exists():
        return ResumePoint(run.last, done, 0)
    return ResumePoint(None)


@dataclass
class TrainingPlan:
    """How long to train and what to watch."""

    epochs: int
    steps_per_epoch: int
    backup_every: int
    initial_epoch: int = 0
    start_step: int = 0  # steps of `initial_epoch` already done (resuming from a backup)
    start_logs: dict[str, float] | None = None  # their running training figures, if recorded
    max_time_minutes: float | None = None
    budget_spent_s: float = 0.0  # of the budget, in earlier sessions (a budget going on)
    monitor: str = "val_loss"
    tensorboard: bool = False
    patience: int | None = None  # stop after this many epochs without a better `monitor`

    def epoch_label(self, epoch: int, width: int = 0) -> str:
        """'5/20' for the 0-based epoch 4 of 20; '5' where the time budget, not a count, ends
        training (its epoch count is a number no run reaches, so it means nothing to show)."""
        number = f"{epoch + 1:>{width}}" if width else str(epoch + 1)
        return number if self.epochs >= BUDGET_EPOCHS else f"{number}/{self.epochs}"


class Diverged(TextgenError):
    """The training loss became NaN, infinite or absurd: one line says what to change, with
    {overwrite} where the run's folder is left to be started again."""

    def __init__(self, loss: float, epoch: int, folder_left: bool = True):
        self.loss, self.epoch = loss, epoch
        again = " ({overwrite})" if folder_left else ""
        super().__init__(f"the training loss became {loss:.3g} in epoch {epoch}: the model "
                         "diverged and nothing from it was saved; start again with a lower "
                         f"{{learning_rate}}{again}",
                         {"learning_rate": ("learning_rate", FIELD),
                          "overwrite": ("overwrite", True)})

    def without_folder(self) -> Diverged:
        """The same, for a new run whose folder was removed (nothing to overwrite)."""
        return Diverged(self.loss, self.epoch, folder_left=False)


def check_finite(loss: Any, epoch: int) -> None:
    """A loss that became NaN, infinite or absurd: the weights are lost, so nothing more is
    saved (a diverged model samples one character over and over)."""
    loss = float(loss)
    if not math.isfinite(loss) or loss > DIVERGED_LOSS:
        raise Diverged(loss, epoch)


def _checkpoint_callback(run: RunDir, meta: dict, plan: TrainingPlan, extra: ExtraMetrics,
                         budget: Any = None):
    import keras

    class RunCheckpoint(keras.callbacks.Callback):
        """Commits every epoch: last/best models, the history and run.json (the module's
        docstring gives the order), with the time budget spent so far."""

        def __init__(self) -> None:
            super().__init__()
            self.rows = run.read_history()[: plan.initial_epoch]
            training = meta.setdefault("training", {})
            self.best = training.get("best_value", math.inf)
            if self.best is None:
                self.best = math.inf
            self.epoch_start = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            check_finite(logs.get("loss", 0.0), epoch + 1)
            logs.update(extra(logs))
            value = logs.get(plan.monitor, logs.get("loss", math.inf))
            save_model_atomic(self.model, run.commit_file(epoch + 1, "last"))
            improved = value < self.best
            if improved:
                self.best = value
                save_model_atomic(self.model, run.commit_file(epoch + 1, "best"),
                                  optimizer=False)
            row = {"epoch": epoch + 1, **{k: f"{v:.6g}" for k, v in logs.items()}}
            row["seconds"] = f"{time.monotonic() - self.epoch_start:.1f}"
            self.rows.append(row)
            run.write_history(self.rows)
            training = meta["training"]
            training["epochs_done"] = epoch + 1
            training["monitor"] = plan.monitor
            if improved:
                training["best_epoch"] = epoch + 1
                training["best_value"] = value
                training["best_logs"] = logs
            training["last_logs"] = logs
            since_best = epoch + 1 - max(training.get("best_epoch", epoch + 1),
                                         training.get("patience_from", 0))
            # at the planned last epoch the run has finished, whatever its patience says
            if plan.patience and since_best >= plan.patience and epoch + 1 < plan.epochs:
                training["stopped_early"] = True  # the commit point says so: resume is done
                self.model.stop_training = True
            if budget is not None:
                training["budget"] = budget.record()
            run.write_meta(meta)  # the commit point
            settle_commit(run, meta)

    return RunCheckpoint()


def _resumed_epoch_callback(plan: TrainingPlan, backup: Any):
    import keras

    class ResumedEpochFigures(keras.callbacks.Callback):
        """The epoch a resume finishes reports its training figures over all its steps: the
        backup's running means over the steps before it, weighted with this session's (Keras
        averages over the steps of its own call only)."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None and epoch == plan.initial_epoch and plan.start_logs:
                # the steps run, which a time budget may have cut short of the epoch's end
                logs.update(combined(plan.start_logs, plan.start_step, logs,
                                     backup.step - plan.start_step))

    return ResumedEpochFigures()


def combined(before: dict[str, float], steps_before: int, after: dict[str, Any],
             steps_after: int) -> dict[str, float]:
    """The running means over both spans of steps, for the figures both record."""
    if not steps_after:  # nothing run since: the figures stand
        return dict(before)
    total = steps_before + steps_after
    return {key: (before[key] * steps_before + float(after[key]) * steps_after) / total
            for key in before if key in after}


def _time_budget_callback(minutes: float, spent_before: float = 0.0):
    import keras

    class TimeBudget(keras.callbacks.Callback):
        """Stops training cleanly (after the current batch) once the wall-clock budget is
        spent, counting the seconds earlier sessions spent of it."""

        def __init__(self) -> None:
            super().__init__()
            self.start = time.monotonic()
            self.stopped_early = False

        def spent(self) -> float:
            return spent_before + time.monotonic() - self.start

        def record(self) -> dict[str, float]:
            """What run.json and a backup keep of the budget."""
            return {"minutes": minutes, "spent_s": round(self.spent(), 1)}

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.spent() >= minutes * 60:
                self.model.stop_training = True
                self.stopped_early = True

    return TimeBudget()


def _backup_callback(run: RunDir, plan: TrainingPlan, budget: Any = None):
    import keras

    class MidEpochBackup(keras.callbacks.Callback):
        """Every `backup_every` steps, saves the model and optimizer state into backup/.

        At an epoch's end the backups are dropped: last.keras now holds that state.
        """

        def __init__(self) -> None:
            super().__init__()
            self.epoch = plan.initial_epoch
            self.step = plan.start_step
            self.saved_step = plan.start_step  # the newest backup of this epoch (0: none)
            self.since_save = 0
            self.steps_run = 0  # in this process, for the summary
            self.logs: dict[str, Any] = {}  # this call's running means over its steps

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if epoch != self.epoch:
                self.epoch, self.step, self.saved_step = epoch, 0, 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            self.steps_run += 1
            self.since_save += 1
            self.logs = logs or {}
            if self.since_save >= plan.backup_every:
                check_finite(self.logs.get("loss", 0.0), self.epoch + 1)
                self.save()

        def epoch_logs(self) -> dict[str, float]:
            """The epoch's running training figures over all its steps so far."""
            if self.epoch == plan.initial_epoch and plan.start_logs:
                return combined(plan.start_logs, plan.start_step, self.logs,
                                self.step - plan.start_step)
            return {key: float(value) for key, value in self.logs.items()}

        def save(self) -> None:
            if self.step == 0 or self.step >= plan.steps_per_epoch:
                return  # nothing beyond the last finished epoch (or about to commit it)
            self.since_save = 0
            path = run.backup / f"epoch-{self.epoch:06d}-step-{self.step:09d}.keras"
            carry = {"logs": self.epoch_logs()}
            if budget is not None:
                carry.update(budget.record())  # minutes and seconds spent
            write_json_atomic(_carry_file(path), carry)  # first: a backup has its figures
            save_model_atomic(self.model, path)
            self.saved_step = self.step  # only once whole: a save cut short saved nothing
            for old in backups(run):
                if old.path != path:
                    old.path.unlink(missing_ok=True)
                    _carry_file(old.path).unlink(missing_ok=True)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            shutil.rmtree(run.backup, ignore_errors=True)
            self.epoch, self.step, self.since_save, self.saved_step = epoch + 1, 0, 0, 0

    return MidEpochBackup()


def _progress_callback(console: Console, plan: TrainingPlan, extra: ExtraMetrics,
                       describe: Callable[[dict[str, float]], str]):
    import keras

    class ProgressDisplay(keras.callbacks.Callback):
        """A progress bar per epoch and one summary line per finished epoch (on stderr)."""

        def __init__(self) -> None:
            super().__init__()
            self.progress: Progress | None = None
            self.task = None
            self.start = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.monotonic()
            if not console.is_terminal:
                return  # no live bar in logs and pipes: the epoch lines say it all
            self.progress = Progress(
                TextColumn(f"epoch {plan.epoch_label(epoch)}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            first = plan.start_step if epoch == plan.initial_epoch else 0
            self.task = self.progress.add_task("train", total=plan.steps_per_epoch, loss="-",
                                               completed=first)
            self.first = first
            self.progress.start()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.progress is not None and logs and "loss" in logs:
                self.progress.update(self.task, completed=self.first + batch + 1,
                                     loss=f"{float(logs['loss']):.4f}")

        def stop_bar(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.stop_bar()
            values = {k: float(v) for k, v in (logs or {}).items()}
            values.update(extra(values))
            seconds = time.monotonic() - self.start
            console.print(Text.assemble(
                f"epoch {plan.epoch_label(epoch, width=3)}  {describe(values)}  ",
                (f"{seconds:.1f}s", "dim")))

        def on_train_end(self, logs: dict | None = None) -> None:
            self.stop_bar()

    return ProgressDisplay()


def _interrupt_callback():
    import keras

    class InterruptAtStep(keras.callbacks.Callback):
        """Ctrl-C (SIGINT) or SIGTERM (kill, timeout, Docker, systemd, job schedulers) stops
        training at the next step boundary.

        The signal handler only sets a flag; the KeyboardInterrupt is raised from this
        callback, at a known point, never inside a finaliser where Python would swallow it.
        A second Ctrl-C interrupts at once. The handler is installed explicitly, so this also
        works when the process inherited SIGINT as ignored (as background jobs of
        non-interactive shells do).
        """

        SIGNALS = (signal.SIGINT, signal.SIGTERM)

        def __init__(self) -> None:
            super().__init__()
            self.requested = False
            self.forced = False  # a second signal: stopped at once
            self.signal = signal.SIGINT

        def install(self) -> dict | None:
            """Handle the signals; returns the previous handlers, for `restore`."""
            if threading.current_thread() is not threading.main_thread():
                return None
            return {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}

        @staticmethod
        def restore(previous: dict | None) -> None:
            for s, handler in (previous or {}).items():
                signal.signal(s, handler)

        def _on_signal(self, signum, frame) -> None:
            if self.requested:
                self.forced = True
                raise KeyboardInterrupt
            self.requested = True
            self.signal = signum

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.requested:
                raise KeyboardInterrupt

    return InterruptAtStep()


def _plot_quietly(run: RunDir) -> None:
    """history.png next to history.csv; a plotting problem never fails a finished training."""
    from textgen.plots import plot_history

    with contextlib.suppress(Exception):
        plot_history(run)


def tensorboard_callback(run: RunDir) -> keras.callbacks.Callback:
    """TensorBoard logs in the run folder (`tensorboard --logdir checkpoints`)."""
    import keras

    return keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), update_freq="epoch")


def fit_run(
    model: keras.Model,
    run: RunDir,
    meta: dict,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset | None,
    plan: TrainingPlan,
    describe: Callable[[dict[str, float]], str],
    extra_metrics: ExtraMetrics = lambda logs: {},
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Train `model` into `run`; returns a summary (epochs done, best epoch and logs, time).

    `train_data` is endless and already positioned after the batches done so far. A run
    resumed mid-epoch first finishes that epoch's remaining steps, then goes on as usual.
    Raises TrainingInterrupted on Ctrl-C or SIGTERM, after saving a backup of the current step.
    """
    console = console or stderr_console()
    if validation_data is None:
        plan.monitor = "loss"
    budget = None
    if plan.max_time_minutes is not None:
        budget = _time_budget_callback(plan.max_time_minutes, plan.budget_spent_s)
    backup = _backup_callback(run, plan, budget)
    progress = _progress_callback(console, plan, extra_metrics, describe)
    # the resumed epoch's figures are mended first: every later callback reads them
    all_callbacks = [_resumed_epoch_callback(plan, backup),
                     _checkpoint_callback(run, meta, plan, extra_metrics, budget), backup,
                     progress]
    if budget is not None:
        all_callbacks.append(budget)
    if plan.tensorboard:
        all_callbacks.append(tensorboard_callback(run))
    all_callbacks.extend(callbacks or [])
    fit_args = dict(validation_data=validation_data, callbacks=all_callbacks, shuffle=False,
                    verbose=0)
    started = time.monotonic()
    first_epoch = plan.initial_epoch
    interrupt = _interrupt_callback()
    all_callbacks.append(interrupt)
    previous_handlers = interrupt.install()
    try:
        if plan.start_step:
            remaining = plan.steps_per_epoch - plan.start_step
            model.fit(train_data, epochs=first_epoch + 1, initial_epoch=first_epoch,
                      steps_per_epoch=remaining, **fit_args)
            first_epoch += 1
            # each fit call iterates the dataset from its start: past the batches just used
            train_data = train_data.skip(remaining)
        stopped = (budget and budget.stopped_early) or meta["training"].get("stopped_early")
        if first_epoch < plan.epochs and not stopped:
            model.fit(train_data, epochs=plan.epochs, initial_epoch=first_epoch,
                      steps_per_epoch=plan.steps_per_epoch, **fit_args)
    except (KeyboardInterrupt, Exception) as stop:
        # A second signal's KeyboardInterrupt raised while TensorFlow traces a step comes out
        # as another error (a ValueError from the layer being traced): a stop all the same.
        if not isinstance(stop, KeyboardInterrupt) and not interrupt.forced:
            raise
        progress.stop_bar()  # before the lines that follow; the terminal's cursor shown
        # a second signal stops the saving at once; what was saved before stands, and the
        # message still says what a resume goes on from
        with contextlib.suppress(KeyboardInterrupt):
            backup.save()
            _plot_quietly(run)
        raise TrainingInterrupted(run, backup.epoch, backup.step, interrupt.signal,
                                  backup.saved_step) from None
    finally:
        progress.stop_bar()  # whatever ended fit: an error's line must not be redrawn over
        interrupt.restore(previous_handlers)
    shutil.rmtree(run.backup, ignore_errors=True)
    _plot_quietly(run)
    if interrupt.requested:  # after the last step (in the last validation): a stop all the
        # same, before anything else runs (a test-set evaluation can take minutes)
        raise TrainingInterrupted(run, backup.epoch, 0, interrupt.signal, finished=True)
    training = meta["training"]
    return {
        "epochs_done": training.get("epochs_done", 0),
        "best_epoch": training.get("best_epoch"),
        "best_logs": training.get("best_logs", {}),
        "seconds": time.monotonic() - started,
        "steps_run": backup.steps_run,
        "stopped_by_time": bool(budget and budget.stopped_early),
        "stopped_early": bool(training.get("stopped_early")),
        "monitor": training.get("monitor", plan.monitor),
    }
