"""The learning-rate rule both modes train with, and the optimizer.

One rule: a linear warm-up from a tenth of the peak, then cosine decay to 10% of the peak,
over the planned steps, or over the wall-clock budget when `--max-time` is given (so a
time-limited run always ends on a small rate, whenever the budget runs out).
`--lr-schedule exponential` multiplies the rate by `--lr-decay` every epoch from the peak,
whatever the epoch count;
`--lr-schedule constant` keeps the peak throughout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textgen.training.options import BUDGET_EPOCHS, LRSchedule, Optimizer

if TYPE_CHECKING:
    import keras

FINAL_FRACTION = 0.1  # the cosine ends at 10% of the peak
DEFAULT_WARMUP_STEPS = 100
WARMUP_BUDGET_SHARE = 0.05  # under --max-time, warm-up never takes more of the budget
PLATEAU_FACTOR = 0.3  # the rate after an epoch that did not improve the monitored loss
DEFAULT_LR_DECAY = 0.5  # the rate's factor over one epoch under --lr-schedule exponential
# Under --max-time, an exponential decay ending above this share of the peak was planned over
# the epochs (a classifier's) and follows the clock too; one ending below it is a per-epoch
# factor over a budget's formal 100,000 epochs (0.5**100000 is 0) and stays per epoch.
PLANNED_END_FLOOR = 1e-3


@dataclass
class LearningRatePlan:
    """What the optimizer gets (a rate or a Keras schedule) and callbacks that set the rate."""

    learning_rate: Any
    callbacks: list[Any] = field(default_factory=list)


def warmup_length(warmup_steps: int, total_steps: int) -> int:
    """Warm-up steps: as configured, but never more than a tenth of a short run."""
    return max(0, min(warmup_steps, total_steps // 10))


def cosine_rate(peak: float, step: int, warmup: int, progress: float) -> float:
    """The rate at `step` (1-based) during warm-up, else at `progress` (0..1) of the decay."""
    if warmup and step <= warmup:
        return peak * (0.1 + 0.9 * step / warmup)
    progress = min(1.0, max(0.0, progress))
    return peak * (FINAL_FRACTION
                   + (1 - FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def plan_learning_rate(peak: float, schedule: LRSchedule, warmup_steps: int, total_steps: int,
                       max_time: float | None, resumed: bool = False,
                       monitor: str = "val_loss", steps_per_epoch: int = 1,
                       decay: float = DEFAULT_LR_DECAY, spent_s: float = 0.0,
                       steps_done: int = 0, best_so_far: float | None = None
                       ) -> LearningRatePlan:
    """The rate for a new model: constant, x `decay` every `steps_per_epoch` (with `max_time`,
    over the steps or the minutes, whichever run out first), cosine over `total_steps`, cosine
    over `max_time` minutes, or plateau (callbacks set the rate; no warm-up again when
    resuming). A resumed run's budget goes on from `spent_s` seconds and `steps_done` steps;
    its plateau from the best `monitor` value of its epochs so far (`best_so_far`)."""
    import keras

    if schedule == LRSchedule.constant:
        return LearningRatePlan(peak)
    planned_end = decay ** (max(1, total_steps) / max(1, steps_per_epoch))
    if schedule == LRSchedule.exponential and max_time is not None and \
            planned_end >= PLANNED_END_FLOOR:  # a decay planned over the epochs, capped
        return LearningRatePlan(peak, [time_budget_exponential(
            max_time, peak, decay, max(1, steps_per_epoch), max(1, total_steps), spent_s,
            steps_done)])
    if schedule == LRSchedule.exponential and max_time is not None and (
            total_steps >= BUDGET_EPOCHS * max(1, steps_per_epoch)):
        # Under a budget whose epochs are a formality (a generator's): x `decay` an epoch,
        # down to FINAL_FRACTION of the peak, where cosine ends too: a small text's short
        # epochs took the rate to nothing within seconds, and a resume trained at ~0.
        def rate_at(step: int, share: float) -> float:
            return peak * max(FINAL_FRACTION, decay ** (step / max(1, steps_per_epoch)))

        return LearningRatePlan(peak, [budget_callback(max_time, rate_at, spent_s, steps_done)])
    if schedule == LRSchedule.exponential:  # a Keras schedule: a resumed run goes on
        return LearningRatePlan(keras.optimizers.schedules.ExponentialDecay(
            initial_learning_rate=peak, decay_steps=max(1, steps_per_epoch), decay_rate=decay))
    if schedule == LRSchedule.plateau:
        warmup = warmup_length(warmup_steps, total_steps)
        callbacks = [plateau_callback(monitor, peak * 1e-3, best_so_far)]
        if warmup > steps_done:  # a run resumed in its warm-up finishes it
            callbacks.append(warmup_callback(peak, warmup, steps_done))
        return LearningRatePlan(peak, callbacks)
    if max_time is not None:
        # a new budget on a resumed run warms up no more; a budget going on finishes its own
        warmup = 0 if resumed and not spent_s else warmup_length(warmup_steps, total_steps)
        return LearningRatePlan(peak, [time_budget_cosine(max_time, peak, warmup, spent_s,
                                                          steps_done)])
    warmup = warmup_length(warmup_steps, total_steps)
    return LearningRatePlan(keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.1 if warmup else peak,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
        decay_steps=max(1, total_steps - warmup),
        alpha=FINAL_FRACTION,
    ))


def plateau_callback(monitor: str, min_lr: float, best_so_far: float | None = None
                     ) -> keras.callbacks.Callback:
    """Keras's ReduceLROnPlateau (x PLATEAU_FACTOR after an epoch no better than the best),
    whose state outlives `fit`: Keras resets it at every `fit` call, so a resumed run would
    take its first epoch for an improvement however it scored (a mid-epoch resume calls `fit`
    twice). It starts from `best_so_far`, the run's best before the resume."""
    import keras

    class LastingPlateau(keras.callbacks.ReduceLROnPlateau):
        def __init__(self) -> None:
            super().__init__(monitor=monitor, factor=PLATEAU_FACTOR, patience=1,
                             min_lr=min_lr, verbose=0)
            self.kept = (math.inf if best_so_far is None else best_so_far, 0, 0)

        def on_train_begin(self, logs: dict | None = None) -> None:
            super().on_train_begin(logs)
            self.best, self.wait, self.cooldown_counter = self.kept

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            super().on_epoch_end(epoch, logs)
            self.kept = (self.best, self.wait, self.cooldown_counter)

    return LastingPlateau()


def budget_callback(minutes: float, rate_at: Callable[[int, float], float],
                    spent_s: float = 0.0, steps_done: int = 0) -> keras.callbacks.Callback:
    """A callback that sets the rate before each step to `rate_at(step, share)`: the step
    counted from 1 (after the `steps_done` of earlier sessions), the share of the wall-clock
    budget spent so far (with `spent_s` seconds spent in earlier sessions)."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.monotonic()
            self.step = steps_done

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            share = (spent_s + time.monotonic() - self.start) / (minutes * 60)
            self.model.optimizer.learning_rate.assign(rate_at(self.step, share))

    return TimeBudget()


def time_budget_cosine(minutes: float, peak: float, warmup: int, spent_s: float = 0.0,
                       steps_done: int = 0) -> keras.callbacks.Callback:
    """A callback: warm-up over steps (at most WARMUP_BUDGET_SHARE of the budget), then
    cosine decay over the wall-clock budget (of which `spent_s` seconds and `steps_done`
    steps went in earlier sessions)."""

    def rate_at(step: int, share: float) -> float:
        if warmup and step <= warmup and share < WARMUP_BUDGET_SHARE:
            # Warm-up ends after `warmup` steps or a share of the budget, whichever comes
            # first: on a slow machine a short budget is not all warm-up.
            return peak * (0.1 + 0.9 * max(step / warmup, share / WARMUP_BUDGET_SHARE))
        return cosine_rate(peak, step, 0, share)

    return budget_callback(minutes, rate_at, spent_s, steps_done)


def time_budget_exponential(minutes: float, peak: float, decay: float, steps_per_epoch: int,
                            total_steps: int, spent_s: float = 0.0, steps_done: int = 0
                            ) -> keras.callbacks.Callback:
    """A callback: the exponential schedule (x `decay` per epoch of steps) driven by whichever
    runs out first, the planned steps or the wall-clock budget, so a run that --max-time cuts
    short still ends at the low rate its plan ends at. A resumed run counts the steps and
    seconds it had done (`steps_done`, `spent_s`)."""
    epochs = total_steps / steps_per_epoch

    def rate_at(step: int, share: float) -> float:
        progress = min(1.0, max(step / total_steps, share))
        return peak * decay ** (progress * epochs)

    return budget_callback(minutes, rate_at, spent_s, steps_done)


def warmup_callback(peak: float, warmup: int, steps_done: int = 0) -> keras.callbacks.Callback:
    """A callback: the linear warm-up alone (from a tenth of the peak; a resumed run's goes on
    after its `steps_done`), then hands off."""
    import keras

    class Warmup(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = steps_done

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            if self.step <= warmup:
                self.model.optimizer.learning_rate.assign(cosine_rate(peak, self.step, warmup, 0))

    return Warmup()


def uses_schedule(model) -> bool:
    """Whether a loaded model's optimizer follows a Keras schedule (a step-planned run)."""
    return isinstance(model.optimizer.get_config()["learning_rate"], dict)


SGD_MOMENTUM = 0.9  # Keras' SGD with the momentum most linear-model recipes use


def make_optimizer(learning_rate: Any, clipnorm: float, kind: Optimizer = Optimizer.adam
                   ) -> keras.optimizers.Optimizer:
    """The optimizer (Adam unless the config says otherwise), with gradient-norm clipping."""
    import keras

    if kind == Optimizer.sgd:
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=SGD_MOMENTUM,
                                    clipnorm=clipnorm)
    return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
