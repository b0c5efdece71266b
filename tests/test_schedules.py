"""The learning-rate rule both modes share (textgen.training.schedules): cosine with warm-up,
exponential, plateau, and the cosine that follows a time budget's clock."""

from __future__ import annotations

import re

import pytest

from tests.conftest import TINY_CLASSIFIER, TINY_GENERATOR


def test_cosine_rule_warms_up_then_decays_to_a_tenth():
    from textgen.training.schedules import cosine_rate, plan_learning_rate, warmup_length

    assert warmup_length(100, 10_000) == 100 and warmup_length(100, 50) == 5
    assert cosine_rate(1.0, 1, 10, 0.0) == pytest.approx(0.19)
    assert cosine_rate(1.0, 10, 10, 0.0) == pytest.approx(1.0)
    assert cosine_rate(1.0, 11, 10, 0.5) == pytest.approx(0.55)
    assert cosine_rate(1.0, 11, 10, 1.5) == pytest.approx(0.1)
    schedule = plan_learning_rate(2.0, "cosine", 100, 1000, None).learning_rate
    assert float(schedule(0)) == pytest.approx(0.2)
    assert float(schedule(100)) == pytest.approx(2.0)
    assert float(schedule(1000)) == pytest.approx(0.2, rel=1e-3)
    timed = plan_learning_rate(2.0, "cosine", 100, 1000, max_time=1.0)
    assert timed.learning_rate == 2.0 and len(timed.callbacks) == 1
    constant = plan_learning_rate(2.0, "constant", 100, 1000, max_time=1.0)
    assert constant.learning_rate == 2.0 and not constant.callbacks


def test_exponential_schedule_decays_by_epoch_whatever_the_epoch_count():
    from textgen.training.schedules import plan_learning_rate

    for total_steps in (100, 100_000):  # the planned length changes nothing
        plan = plan_learning_rate(2.0, "exponential", 100, total_steps, None,
                                  steps_per_epoch=50, decay=0.5)
        assert not plan.callbacks
        rates = [float(plan.learning_rate(step)) for step in (0, 25, 50, 100, 150)]
        assert rates == pytest.approx([2.0, 2.0 * 0.5**0.5, 1.0, 0.5, 0.25])


def test_the_budget_cosine_follows_the_clock_not_the_steps(monkeypatch):
    from types import SimpleNamespace

    from textgen.training import schedules

    now = [100.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: now[0])
    rates = []
    rate = SimpleNamespace(assign=rates.append)
    callback = schedules.time_budget_cosine(1.0, 2.0, warmup=10)  # 60 s, peak 2
    callback.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=rate)))

    def rate_at(seconds: float) -> float:
        now[0] = 100.0 + seconds
        callback.on_train_batch_begin(0)
        return rates[-1]

    assert rate_at(0.0) == pytest.approx(2.0 * (0.1 + 0.9 * 0.1))  # warm-up, step 1 of 10
    # on a machine too slow for 10 steps, warm-up also ends by the clock (at 5% of the budget)
    assert rate_at(1.5) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # step 2, half the 3 s
    assert rate_at(3.0) == pytest.approx(schedules.cosine_rate(2.0, 3, 0, 0.05))  # step 3
    assert rate_at(30.0) == pytest.approx(1.1)  # half the budget: halfway down the cosine
    assert rate_at(59.0) < 0.21 and rate_at(90.0) == pytest.approx(0.2)  # then 10% of the peak


def test_a_budget_with_no_planned_epochs_decays_by_epoch_down_to_a_tenth(monkeypatch):
    """x0.5 an epoch under a generator's budget (100,000 epochs, a formality) took a small
    text's rate to 0.5**13 of the peak in 3 s of an 18 s budget, and a resume to 0."""
    from types import SimpleNamespace

    from textgen.training import schedules

    plan = schedules.plan_learning_rate(2.0, "exponential", 0, 100_000 * 10, max_time=0.3,
                                        steps_per_epoch=10, decay=0.5, steps_done=15)
    assert plan.learning_rate == 2.0 and len(plan.callbacks) == 1
    rates = []
    plan.callbacks[0].set_model(SimpleNamespace(optimizer=SimpleNamespace(
        learning_rate=SimpleNamespace(assign=rates.append))))
    for _ in range(100):
        plan.callbacks[0].on_train_batch_begin(0)
    # a resumed run goes on from its 15 steps: step 16 is 1.6 epochs in
    assert rates[0] == pytest.approx(2.0 * 0.5 ** 1.6) and rates[-1] == pytest.approx(0.2)
    # 20 real epochs under a budget: the steep decay asked for, no floor (Keras's schedule)
    planned = schedules.plan_learning_rate(1.0, "exponential", 0, 20 * 100, max_time=5.0,
                                           steps_per_epoch=100, decay=0.5)
    assert not planned.callbacks
    assert float(planned.learning_rate(2000)) == pytest.approx(0.5 ** 20)


def test_the_budget_exponential_follows_the_steps_or_the_clock_whichever_is_ahead(monkeypatch):
    from types import SimpleNamespace

    from textgen.training import schedules

    now = [100.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: now[0])
    rates = []
    rate = SimpleNamespace(assign=rates.append)
    # 60 s; peak 1; x0.5 per epoch of 10 steps; 4 epochs planned (40 steps, ending at 1/16)
    callback = schedules.time_budget_exponential(1.0, 1.0, 0.5, 10, 40)
    callback.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=rate)))

    def rate_at(seconds: float, steps: int = 1) -> float:
        now[0] = 100.0 + seconds
        for _ in range(steps):
            callback.on_train_batch_begin(0)
        return rates[-1]

    assert rate_at(0.0) == pytest.approx(0.5 ** 0.1)  # step 1 of 10 in the first epoch
    assert rate_at(0.0, 19) == pytest.approx(0.25)  # step 20: two epochs of steps
    assert rate_at(45.0) == pytest.approx(0.5 ** 3)  # 3/4 of the minute: ahead of the steps
    assert rate_at(90.0) == pytest.approx(0.5 ** 4)  # past the budget: the plan's last rate


@pytest.mark.parametrize("mode", ["generate", "generate-exponential", "classify",
                                  "classify-exponential"])
def test_a_time_budget_ends_on_a_small_rate_in_both_modes(cli, tiny_corpus, reviews, tmp_path,
                                                          mode):
    from textgen.runs import load_keras_model

    if mode == "generate":
        args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--learning-rate", "0.01"]
    elif mode == "generate-exponential":  # x0.9 an epoch: never 0.9**(share x 100,000)
        # (0.9, not 0.5: a fast machine's 500 steps would take 0.5 below float32's smallest
        # normal number, which TensorFlow flushes to 0)
        args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--learning-rate", "0.01",
                "--lr-schedule", "exponential", "--lr-decay", "0.9", "--base", "none"]
    elif mode == "classify-exponential":  # classify's default schedule, over the budget
        args = ["classify", "train", str(reviews), *TINY_CLASSIFIER, "--learning-rate", "0.01",
                "--steps-per-epoch", "4", "--patience", "100000"]
    else:
        # classify's default schedule decays by epoch; the budget-long cosine is asked for,
        # and a patience no run this short reaches, so that the budget ends it
        args = ["classify", "train", str(reviews), *TINY_CLASSIFIER, "--learning-rate", "0.01",
                "--steps-per-epoch", "4", "--lr-schedule", "cosine", "--patience", "100000"]
    result = cli(*args, "--epochs", "100000", "--max-time", "0.25", "--run-name", "timed",
                 "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "time budget (--max-time) reached" in result.stdout
    import textgen.classify.model  # noqa: F401  (registers the classifier's layers)

    model = load_keras_model(tmp_path / "timed" / "last.keras", compile=True)
    steps = int(re.search(r"steps this session\W+(\d+)", result.stdout).group(1))
    # The schedule runs over the 15-second budget, not over 100,000 planned epochs: the last
    # step began at most one step before the budget's end. (On a loaded machine the first
    # step's graph tracing can outlast the whole budget; its rate then says nothing.)
    rate = float(model.optimizer.learning_rate)
    if mode == "generate-exponential":  # x0.9 per epoch of 4 steps, down to a tenth
        assert rate == pytest.approx(0.01 * max(0.1, 0.9 ** (steps / 4)), rel=1e-3)
        return
    assert steps == 1 or rate < 0.004


def test_plateau_schedule_cuts_the_rate_after_an_epoch_without_progress():
    import keras
    import numpy as np

    from textgen.training.schedules import PLATEAU_FACTOR, plan_learning_rate

    plan = plan_learning_rate(0.01, "plateau", warmup_steps=0, total_steps=100, max_time=None)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(plan.learning_rate), loss="mse")
    losses = iter([1.0, 0.5, 0.6, 0.4, 0.45])
    rates = []

    class FakeValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(losses)  # runs before the plateau callback sees the logs

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    x = np.zeros((4, 1), "float32")
    model.fit(x, x, epochs=5, verbose=0, callbacks=[FakeValidation(), *plan.callbacks, Record()])
    cut = 0.01 * PLATEAU_FACTOR
    assert rates == pytest.approx([0.01, 0.01, cut, cut, cut * PLATEAU_FACTOR])



def test_the_plateau_remembers_the_best_epoch_across_a_resume_and_fit_calls():
    """Resumed after a best of 0.5, an epoch at 0.6 is no progress (Keras alone would take it
    for the first best); nor is 0.55 in the second `fit` call a mid-epoch resume makes."""
    import keras
    import numpy as np

    from textgen.training.schedules import PLATEAU_FACTOR, plan_learning_rate

    plan = plan_learning_rate(0.01, "plateau", warmup_steps=0, total_steps=100, max_time=None,
                              resumed=True, best_so_far=0.5)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    losses = iter([0.6, 0.55, 0.4])
    rates = []

    class FakeValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(losses)

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    x = np.zeros((4, 1), "float32")
    callbacks = [FakeValidation(), *plan.callbacks, Record()]
    model.fit(x, x, epochs=1, verbose=0, callbacks=callbacks)
    model.fit(x, x, initial_epoch=1, epochs=3, verbose=0, callbacks=callbacks)
    cut = 0.01 * PLATEAU_FACTOR
    assert rates == pytest.approx([cut, cut * PLATEAU_FACTOR, cut * PLATEAU_FACTOR])

def test_warm_up_takes_at_most_a_twentieth_of_a_time_budget(monkeypatch):
    """On a slow machine a 2-minute budget may hold only ~100 steps: it is not all warm-up."""
    from textgen.training import schedules

    clock = iter([0.0, 0.0, 1.0, 2.9, 3.1, 59.0])  # seconds: creation, then one per step
    monkeypatch.setattr(schedules.time, "monotonic", lambda: next(clock))
    callback = schedules.time_budget_cosine(minutes=1, peak=1.0, warmup=100)
    rates = []

    class Rate:
        def assign(self, value):
            rates.append(value)

    class Model:
        optimizer = type("Optimizer", (), {"learning_rate": Rate()})()

    callback.set_model(Model())
    for step in range(5):
        callback.on_train_batch_begin(step)
    assert rates[0] == pytest.approx(0.1 + 0.9 * 0.01)  # step 1 of 100
    assert rates[1] == pytest.approx(0.1 + 0.9 * (1.0 / 3.0))  # a third of the 3 s share
    assert rates[2] == pytest.approx(0.1 + 0.9 * (2.9 / 3.0))
    assert 0.99 < rates[3] <= 1.0  # past 5% of the budget: the cosine decay, near the peak
    assert rates[4] < 0.11  # the end of the budget: a tenth of the peak


def test_a_run_resumed_in_its_warm_up_finishes_it():
    """Resumed after 4 of 10 warm-up steps, the rate goes on from step 5, not from where the
    backup left it (it stayed there: the plateau rule never raised it to the peak)."""
    from types import SimpleNamespace

    from textgen.training.schedules import plan_learning_rate

    rates = []
    model = SimpleNamespace(optimizer=SimpleNamespace(
        learning_rate=SimpleNamespace(assign=rates.append)))
    plan = plan_learning_rate(1.0, "plateau", warmup_steps=10, total_steps=1000, max_time=None,
                              resumed=True, steps_done=4)
    (warmup,) = [c for c in plan.callbacks if type(c).__name__ == "Warmup"]
    warmup.set_model(model)
    for step in range(7):
        warmup.on_train_batch_begin(step)
    assert rates == pytest.approx([0.1 + 0.9 * s / 10 for s in range(5, 11)])
    done = plan_learning_rate(1.0, "plateau", warmup_steps=10, total_steps=1000, max_time=None,
                              resumed=True, steps_done=40)
    assert not [c for c in done.callbacks if type(c).__name__ == "Warmup"]


def test_a_decay_given_to_a_resumed_run_of_another_schedule_is_refused(cli, tiny_corpus,
                                                                       tmp_path):
    """The run's own schedule decides: its cosine would have ignored --lr-decay."""
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--base", "none", "--checkpoint-dir",
            str(tmp_path)]
    assert cli(*args, "--epochs", "1").exit_code == 0
    meta = (tmp_path / "hamlet" / "run.json").read_text()
    for extra in ([], ["--lr-schedule", "exponential"]):  # a resumed run keeps its own
        resumed = cli(*args, "--epochs", "2", "--resume", "--lr-decay", "0.9", *extra)
        assert resumed.exit_code == 2
        assert resumed.stderr.strip().splitlines()[-1] == (
            "error: --lr-decay 0.9 applies to --lr-schedule exponential only, and the run's "
            "schedule is cosine, which a resumed run keeps; leave out the decay")
    assert (tmp_path / "hamlet" / "run.json").read_text() == meta
