"""The fit loop both modes share: checkpoint callbacks, time budget, progress display, history.

`fit_run` trains a compiled Keras model into a run folder. Each finished epoch is committed in
this order: last.keras, best.keras (if improved), history.csv, then run.json, whose
`epochs_done` is the commit point a resume starts from.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from textgen.errors import TextgenError
from textgen.runs import RunDir, default_checkpoint_dir, save_model_atomic

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
    repeat_data: bool = True  # False: a finite dataset that is one epoch long


@dataclass
class TrainOptions:
    """How to train (as opposed to what model to build: GeneratorConfig)."""

    epochs: int = 20
    batch_size: int = 64
    val_split: float = 0.1
    steps_per_epoch: int | None = None
    checkpoint_dir: Path = field(default_factory=default_checkpoint_dir)
    run_name: str | None = None
    rng_seed: int = 42
    resume: bool = False
    overwrite: bool = False
    max_time: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TextgenError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise TextgenError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise TextgenError(f"--steps-per-epoch must be >= 1, got {self.steps_per_epoch}")
        if self.max_time is not None and self.max_time <= 0:
            raise TextgenError(f"--max-time must be > 0 minutes, got {self.max_time}")


@dataclass
class TrainResult:
    run: RunDir
    summary: dict[str, Any]
    already_finished: bool = False
    notes: list[str] = field(default_factory=list)


def prepare_run_folder(run: RunDir, options: TrainOptions, mode: str) -> dict | None:
    """The existing run's metadata when resuming, None when starting fresh.

    Without --resume or --overwrite an existing run is refused, so no model is lost.
    """
    if run.exists():
        if options.resume:
            meta = run.read_meta()
            if meta["mode"] != mode:
                raise TextgenError(f"{run.path} is a {meta['mode']} run; pick another --run-name")
            if run.last.exists():
                return meta
        elif options.overwrite:
            for path in run.path.iterdir():
                if path.name != ".lock":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        else:
            raise TextgenError(
                f"{run.path} already holds a run; pass --resume to continue it, --overwrite to "
                "start it again, or --run-name NAME for a new one"
            )
    return None


def finished_result(run: RunDir, meta: dict) -> TrainResult:
    """--resume on a run that has already done its epochs: nothing to train."""
    training = meta["training"]
    summary = {"epochs_done": training.get("epochs_done", 0),
               "best_epoch": training.get("best_epoch"),
               "best_logs": training.get("best_logs", {}), "seconds": 0.0,
               "stopped_by_time": False}
    return TrainResult(run, summary, already_finished=True)


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
            steps_per_epoch=plan.steps_per_epoch if plan.repeat_data else None,
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
