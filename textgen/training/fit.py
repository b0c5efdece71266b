"""The fit loop both modes share: checkpoint callbacks, time budget, progress display, history.

`fit_run` trains a compiled Keras model into a run folder. Each finished epoch is committed in
this order: last.keras, best.keras (if improved), history.csv, then run.json, whose
`epochs_done` is the commit point a resume starts from. Within an epoch, a backup of the model
(with optimizer state) is saved every `backup_every` steps as
`backup/epoch-EEEEEE-step-SSSSSSSSS.keras`, so a crash or Ctrl-C loses at most that many steps;
a resume continues the interrupted epoch at the step after the backup.
"""

from __future__ import annotations

import contextlib
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

from textgen.errors import TextgenError
from textgen.runs import RunDir, save_model_atomic
from textgen.training.options import BUDGET_EPOCHS

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

ExtraMetrics = Callable[[dict[str, float]], dict[str, float]]
# A cross-entropy past 100 nats an example: e**-100 for the right answer on average, where a
# uniform guess over 100,000 classes costs 11.5. Only a diverged model gets there.
DIVERGED_LOSS = 100.0


_BACKUP_NAME = re.compile(r"^epoch-(\d{6})-step-(\d{9})\.keras$")


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM during training; finished epochs and a backup of the current step
    are saved. `signal` is the one that stopped it (the exit code is 128 + its number)."""

    def __init__(self, run: RunDir, epoch: int, step: int, stopped_by: int = signal.SIGINT):
        super().__init__(f"training interrupted in epoch {epoch + 1} after step {step}")
        self.run = run
        self.epoch = epoch
        self.step = step
        self.signal = signal.Signals(stopped_by)


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


@dataclass(frozen=True)
class ResumePoint:
    """Where training starts: a model file (None: a new model), epochs done, steps done after."""

    model_file: Path | None
    epoch: int = 0
    step: int = 0


def resume_point(run: RunDir, meta: dict | None) -> ResumePoint:
    """The latest consistent state: a mid-epoch backup past the last finished epoch, or
    last.keras at that epoch's end."""
    if meta is None:
        return ResumePoint(None)
    done = meta.get("training", {}).get("epochs_done", 0)
    later = [b for b in backups(run) if b.epoch == done and b.step > 0]
    if later:
        return ResumePoint(later[-1].path, done, later[-1].step)
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
    max_time_minutes: float | None = None
    monitor: str = "val_loss"
    tensorboard: bool = False
    patience: int | None = None  # stop after this many epochs without a better `monitor`

    def epoch_label(self, epoch: int, width: int = 0) -> str:
        """'5/20' for the 0-based epoch 4 of 20; '5' where the time budget, not a count, ends
        training (its epoch count is a number no run reaches, so it means nothing to show)."""
        number = f"{epoch + 1:>{width}}" if width else str(epoch + 1)
        return number if self.epochs >= BUDGET_EPOCHS else f"{number}/{self.epochs}"


def check_finite(loss: Any, epoch: int) -> None:
    """A loss that became NaN, infinite or absurd: the weights are lost, so nothing more is
    saved (a diverged model samples one character over and over); one line says what to
    change."""
    loss = float(loss)
    if not math.isfinite(loss) or loss > DIVERGED_LOSS:
        raise TextgenError(f"the training loss became {loss:.3g} in epoch {epoch}: the model "
                           "diverged and nothing from it was saved; start again with a lower "
                           "--learning-rate (--overwrite)")


def _checkpoint_callback(run: RunDir, meta: dict, plan: TrainingPlan, extra: ExtraMetrics):
    import keras

    class RunCheckpoint(keras.callbacks.Callback):
        """Saves last/best models, the history and run.json after every epoch, atomically."""

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
            save_model_atomic(self.model, run.last)
            improved = value < self.best
            if improved:
                self.best = value
                save_model_atomic(self.model, run.best, optimizer=False)
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
            if plan.patience and since_best >= plan.patience:
                training["stopped_early"] = True  # the commit point says so: resume is done
                self.model.stop_training = True
            run.write_meta(meta)

    return RunCheckpoint()


def _time_budget_callback(minutes: float):
    import keras

    class TimeBudget(keras.callbacks.Callback):
        """Stops training cleanly (after the current batch) once the wall-clock budget is spent."""

        def __init__(self) -> None:
            super().__init__()
            self.deadline = time.monotonic() + minutes * 60
            self.stopped_early = False

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if time.monotonic() >= self.deadline:
                self.model.stop_training = True
                self.stopped_early = True

    return TimeBudget()


def _backup_callback(run: RunDir, plan: TrainingPlan):
    import keras

    class MidEpochBackup(keras.callbacks.Callback):
        """Every `backup_every` steps, saves the model and optimizer state into backup/.

        At an epoch's end the backups are dropped: last.keras now holds that state.
        """

        def __init__(self) -> None:
            super().__init__()
            self.epoch = plan.initial_epoch
            self.step = plan.start_step
            self.since_save = 0
            self.steps_run = 0  # in this process, for the summary

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if epoch != self.epoch:
                self.epoch, self.step = epoch, 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            self.steps_run += 1
            self.since_save += 1
            if self.since_save >= plan.backup_every:
                check_finite((logs or {}).get("loss", 0.0), self.epoch + 1)
                self.save()

        def save(self) -> None:
            if self.step == 0 or self.step >= plan.steps_per_epoch:
                return  # nothing beyond the last finished epoch (or about to commit it)
            self.since_save = 0
            path = run.backup / f"epoch-{self.epoch:06d}-step-{self.step:09d}.keras"
            save_model_atomic(self.model, path)
            for old in backups(run):
                if old.path != path:
                    old.path.unlink(missing_ok=True)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            shutil.rmtree(run.backup, ignore_errors=True)
            self.epoch, self.step, self.since_save = epoch + 1, 0, 0

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

        def _stop_bar(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._stop_bar()
            values = {k: float(v) for k, v in (logs or {}).items()}
            values.update(extra(values))
            seconds = time.monotonic() - self.start
            console.print(f"epoch {plan.epoch_label(epoch, width=3)}  {describe(values)}  "
                          f"[dim]{seconds:.1f}s[/dim]")

        def on_train_end(self, logs: dict | None = None) -> None:
            self._stop_bar()

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


def tensorboard_callback(run: RunDir):
    """TensorBoard logs in the run folder (`tensorboard --logdir checkpoints`)."""
    import keras

    return keras.callbacks.TensorBoard(log_dir=str(run.path / "tensorboard"), update_freq="epoch")


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
    console = console or Console(stderr=True)
    if validation_data is None:
        plan.monitor = "loss"
    backup = _backup_callback(run, plan)
    all_callbacks = [_checkpoint_callback(run, meta, plan, extra_metrics), backup,
                     _progress_callback(console, plan, extra_metrics, describe)]
    budget = None
    if plan.max_time_minutes is not None:
        budget = _time_budget_callback(plan.max_time_minutes)
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
        stopped = (budget and budget.stopped_early) or meta["training"].get("stopped_early")
        if first_epoch < plan.epochs and not stopped:
            model.fit(train_data, epochs=plan.epochs, initial_epoch=first_epoch,
                      steps_per_epoch=plan.steps_per_epoch, **fit_args)
    except KeyboardInterrupt:
        backup.save()
        _plot_quietly(run)
        raise TrainingInterrupted(run, backup.epoch, backup.step, interrupt.signal) from None
    finally:
        interrupt.restore(previous_handlers)
    shutil.rmtree(run.backup, ignore_errors=True)
    _plot_quietly(run)
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
