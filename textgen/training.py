"""The fit loop both modes share: checkpoint callbacks, time budget, progress display, history.

`fit_run` trains a compiled Keras model into a run folder. Each finished epoch is committed in
this order: last.keras, best.keras (if improved), history.csv, then run.json, whose
`epochs_done` is the commit point a resume starts from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from textgen.runs import RunDir, save_model_atomic

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

ExtraMetrics = Callable[[dict[str, float]], dict[str, float]]


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the last finished epoch is saved."""

    def __init__(self, run: RunDir, epochs_done: int):
        super().__init__(f"training interrupted after {epochs_done} finished epoch(s)")
        self.run = run
        self.epochs_done = epochs_done


@dataclass
class TrainingPlan:
    """How long to train and what to watch."""

    epochs: int
    steps_per_epoch: int
    initial_epoch: int = 0
    validation_steps: int | None = None
    max_time_minutes: float | None = None
    monitor: str = "val_loss"


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
            logs.update(extra(logs))
            value = logs.get(plan.monitor, logs.get("loss", math.inf))
            save_model_atomic(self.model, run.last)
            improved = value < self.best
            if improved:
                self.best = value
                save_model_atomic(self.model, run.best)
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
            run.write_meta(meta)

    return RunCheckpoint()


def _time_budget_callback(minutes: float):
    import keras

    class TimeBudget(keras.callbacks.Callback):
        """Stops training cleanly (after the current batch) once the wall-clock budget is spent."""

        def __init__(self) -> None:
            super().__init__()
            self.deadline = math.inf
            self.stopped_early = False

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.deadline = time.monotonic() + minutes * 60

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if time.monotonic() >= self.deadline:
                self.model.stop_training = True
                self.stopped_early = True

    return TimeBudget()


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
                TextColumn(f"epoch {epoch + 1}/{plan.epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.task = self.progress.add_task("train", total=plan.steps_per_epoch, loss="-")
            self.progress.start()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.progress is not None and logs and "loss" in logs:
                self.progress.update(self.task, completed=batch + 1,
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
            console.print(f"epoch {epoch + 1:>3}/{plan.epochs}  {describe(values)}  "
                          f"[dim]{seconds:.1f}s[/dim]")

        def on_train_end(self, logs: dict | None = None) -> None:
            self._stop_bar()

    return ProgressDisplay()


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

    Raises TrainingInterrupted on Ctrl-C, after the last finished epoch has been saved.
    """
    console = console or Console(stderr=True)
    if validation_data is None:
        plan.monitor = "loss"
    checkpoint = _checkpoint_callback(run, meta, plan, extra_metrics)
    all_callbacks = [checkpoint, _progress_callback(console, plan, extra_metrics, describe)]
    budget = None
    if plan.max_time_minutes is not None:
        budget = _time_budget_callback(plan.max_time_minutes)
        all_callbacks.append(budget)
    all_callbacks.extend(callbacks or [])
    started = time.monotonic()
    try:
        model.fit(
            train_data,
            epochs=plan.epochs,
            initial_epoch=plan.initial_epoch,
            steps_per_epoch=plan.steps_per_epoch,
            validation_data=validation_data,
            validation_steps=plan.validation_steps,
            callbacks=all_callbacks,
            shuffle=False,  # the dataset draws its own seeded random windows
            verbose=0,
        )
    except KeyboardInterrupt:
        raise TrainingInterrupted(run, meta.get("training", {}).get("epochs_done", 0)) from None
    training = meta["training"]
    return {
        "epochs_done": training.get("epochs_done", 0),
        "best_epoch": training.get("best_epoch"),
        "best_logs": training.get("best_logs", {}),
        "seconds": time.monotonic() - started,
        "stopped_by_time": bool(budget and budget.stopped_early),
    }
