"""The model chosen for the text and the time budget (textgen.generate.sizing) and the speed
probe it plans with (textgen.generate.probe)."""

from __future__ import annotations

import json

import pytest

MACHINE_RATE = 25e9  # the probe's multiply-adds/s in bfloat16 on this 2-core VM (20-31G seen)


def _chosen(chars, minutes, given=None, rate=MACHINE_RATE):
    from textgen.generate.sizing import Machine, choose_size

    return choose_size(chars, 65, minutes, Machine("mixed_bfloat16", rate), given or {}).values


def test_bigger_texts_and_budgets_get_bigger_models():
    from textgen.generate.sizing import parameters

    def size(chars, minutes):
        values = _chosen(chars, minutes)
        return parameters(values["layers"], values["units"], 65)

    assert size(2_000, None) <= size(100_000, None) < size(1_000_000, None) < size(10**8, None)
    assert size(2_000, None) >= parameters(2, 256, 65)  # enough to learn a short text
    assert size(1_000_000, 2) < size(1_000_000, 10) <= size(1_000_000, 30)
    assert size(10_000_000, 30) < size(10_000_000, 600)
    assert size(1_000_000, 2) <= size(1_000_000, None)  # a short budget trains a smaller model


def test_the_chosen_model_can_do_one_pass_in_the_budget():
    from textgen.generate.sizing import LADDER, Machine, training_signals

    for chars in (50_000, 1_000_000, 5_000_000, 20_000_000):
        for minutes in (1, 2, 10, 30, 120):
            values = _chosen(chars, minutes)
            size = (values["layers"], values["units"])
            if size != LADDER[0]:  # the smallest is the fallback when nothing can
                machine = Machine("mixed_bfloat16", MACHINE_RATE)
                assert training_signals(*size, 65, minutes, machine) >= chars
            assert values["epochs"] == 100_000  # the budget ends training
            assert "batch_size" not in values  # the default batch: as fast, more updates


def test_options_the_user_gives_win_and_the_rest_follow_them():
    values = _chosen(1_000_000, 10, {"units": 512, "batch_size": 32, "dropout": 0.5})
    assert not {"units", "batch_size", "dropout"} & set(values)
    assert values["learning_rate"] == 0.0045  # 1.5x the 3e-3 measured for 512 units
    assert _chosen(1_000_000, None, {"units": 512})["learning_rate"] == 3e-3  # no budget
    small = _chosen(1_000_000, 10, {"units": 64})
    assert small["learning_rate"] == 0.0075
    assert _chosen(1_000_000, None, {"units": 64})["learning_rate"] == 5e-3
    assert _chosen(1_000_000, 10, {"layers": 1})["units"] >= _chosen(1_000_000, 10)["units"]


def test_dropout_only_when_the_text_is_seen_many_times_and_more_the_more_it_is_seen():
    from textgen.generate.sizing import HIGH_DROPOUT

    assert _chosen(1_000_000, None)["dropout"] == 0.2  # 20 epochs without a budget
    assert _chosen(1_000_000, 10)["dropout"] == 0.0  # a few passes
    assert _chosen(2_000, 2)["dropout"] == HIGH_DROPOUT > 0.2  # a speech, seen thousands of times
    fast = MACHINE_RATE * 9  # the probe on this VM in a fast phase
    by_budget = [_chosen(1_000_000, minutes, rate=fast) for minutes in (2, 10, 30)]
    assert [values["dropout"] for values in by_budget] == [0.0, 0.2, HIGH_DROPOUT]
    same_model = [(values["layers"], values["units"]) for values in by_budget[1:]]
    assert same_model[0] == same_model[1]  # the same model, more dropout
    assert "dropout" not in _chosen(2_000, 2, {"dropout": 0.1})  # the user's wins


def test_a_budget_with_dropout_trains_a_bigger_model_than_the_text_alone_allows():
    from textgen.generate.sizing import DROPOUT_PARAMS_FACTOR, MAX_PARAMS_PER_CHAR, parameters

    fast = MACHINE_RATE * 9  # the probe on this VM in a fast phase (224G)
    values = _chosen(1_000_000, 10, rate=fast)
    params = parameters(values["layers"], values["units"], 65)
    assert values["dropout"] == 0.2
    cap = MAX_PARAMS_PER_CHAR * 1_000_000  # without dropout
    assert cap < params <= cap * DROPOUT_PARAMS_FACTOR
    without_budget = _chosen(1_000_000, None)  # 20 epochs: the text alone caps the size
    assert parameters(without_budget["layers"], without_budget["units"], 65) < params
    no_dropout = _chosen(1_000_000, 10, {"dropout": 0.0}, rate=fast)  # the user's wins
    assert "dropout" not in no_dropout
    assert parameters(no_dropout["layers"], no_dropout["units"], 65) <= cap


def test_a_small_text_seen_very_many_times_gets_a_bigger_model_with_more_dropout():
    from textgen.generate.sizing import (
        DROPOUT_PARAMS_FACTOR,
        HIGH_DROPOUT,
        HIGH_DROPOUT_PARAMS_FACTOR,
        MAX_PARAMS_PER_CHAR,
        parameters,
    )

    fast = MACHINE_RATE * 9  # the probe on this VM in a fast phase (224G)
    chars = 424_046  # Paradise Lost's training part, 30 minutes: a hundred passes and more
    values = _chosen(chars, 30, rate=fast)
    params = parameters(values["layers"], values["units"], 65)
    assert values["dropout"] == HIGH_DROPOUT
    cap = MAX_PARAMS_PER_CHAR * chars
    assert cap * DROPOUT_PARAMS_FACTOR < params <= cap * HIGH_DROPOUT_PARAMS_FACTOR
    lighter = _chosen(chars, 30, {"dropout": 0.2}, rate=fast)  # the user's dropout decides
    assert parameters(lighter["layers"], lighter["units"], 65) <= cap * DROPOUT_PARAMS_FACTOR
    # a bigger text: the 3x512 four times its cap allows would see it too few times
    bigger = _chosen(1_000_000, 30, rate=fast)
    assert bigger["dropout"] == HIGH_DROPOUT
    assert parameters(bigger["layers"], bigger["units"], 65) <= (
        MAX_PARAMS_PER_CHAR * 1_000_000 * DROPOUT_PARAMS_FACTOR)


def test_a_budget_trains_on_shorter_windows_unless_told():
    from textgen.generate.sizing import BUDGET_WINDOW, window_for

    # A budget trains on windows of 25 (more updates for the same signal), else of 100.
    assert (window_for(10, {}), window_for(None, {})) == (BUDGET_WINDOW, 100) == (25, 100)
    assert window_for(10, {"seq_length": 200}) == window_for(None, {"seq_length": 200}) == 200
    for chars, minutes in ((50_000, 2), (1_000_000, 10), (20_000_000, 30)):
        assert _chosen(chars, minutes)["seq_length"] == BUDGET_WINDOW
    assert "seq_length" not in _chosen(1_000_000, 10, {"seq_length": 200})
    assert "seq_length" not in _chosen(1_000_000, None)  # the default's 100


def test_long_texts_are_checked_several_times_within_the_budget():
    values = _chosen(50_000_000, 10)
    assert 10 <= values["steps_per_epoch"] < 50_000_000 / (128 * 100)
    assert "steps_per_epoch" not in _chosen(20_000, 10)  # one pass is short already


def test_a_new_run_prints_and_records_the_choice_and_a_resume_keeps_it(cli, tiny_corpus,
                                                                      tmp_path):
    args = ["train", str(tiny_corpus), "--embed-dim", "8", "--seq-length", "16",
            "--steps-per-epoch", "2", "--epochs", "1", "--checkpoint-dir", str(tmp_path),
            "--layers", "1", "--units", "12"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("note: chose ")]
    assert len(lines) == 1 and "--learning-rate 0.005" in lines[0] and "--units" not in lines[0]
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["chosen"]["reason"] == lines[0][len("note: "):]
    assert meta["config"]["units"] == 12 and meta["config"]["layers"] == 1
    assert meta["config"]["dropout"] == meta["chosen"]["dropout"] == 0.2
    again = cli(*args[:-4], "--epochs", "2", "--resume", "--max-time", "5")
    assert again.exit_code == 0, again.stderr
    assert "note: chose" not in again.stderr  # a resumed run keeps its model
    assert json.loads((tmp_path / "hamlet" / "run.json").read_text())["config"]["units"] == 12


def test_a_faster_machine_trains_a_bigger_model_in_the_same_budget():
    from textgen.generate.sizing import parameters

    def size(rate):
        values = _chosen(1_000_000, 10, rate=rate)
        return parameters(values["layers"], values["units"], 65)

    assert size(MACHINE_RATE / 4) < size(MACHINE_RATE) < size(MACHINE_RATE * 4)


def test_the_budgets_passes_count_the_epochs_given(monkeypatch):
    """`--max-time 0.3 --epochs 1 --steps-per-epoch 4` was said to make 17.6 passes: the
    budget's, where the epochs given make 0.4."""
    from textgen.generate.sizing import Machine, choose_size

    given = {"epochs": 1, "steps_per_epoch": 4, "batch_size": 8}
    reason = choose_size(1_800, 65, 0.3, Machine("mixed_bfloat16", MACHINE_RATE), given).reason
    assert "about 0.4 passes over 1,800 characters in 0.3 minutes (the epochs given end it " \
           "sooner)" in reason
    free = choose_size(1_800, 65, 0.3, Machine("mixed_bfloat16", MACHINE_RATE), {}).reason
    assert "sooner" not in free and float(free.split("about ")[1].split(" ")[0]) > 1
    # epochs of a small text are at least 10 steps: 6 of them outlast this budget
    six = choose_size(1_800, 65, 0.3, Machine("mixed_bfloat16", MACHINE_RATE), {"epochs": 6})
    assert "sooner" not in six.reason and six.reason.split("about ")[1].startswith(
        free.split("about ")[1].split(" ")[0] + " passes")


def test_the_speed_probe_grows_its_chain_then_takes_the_median(monkeypatch):
    """The probe runs its TensorFlow chain for real; a stand-in clock says how long each run
    took, so the rate it reports is known exactly."""
    from textgen.generate import probe

    # seconds per timed run: the warm-up, 8 steps (too short: x4), 32 steps, then 5 repeats
    took = iter([0.01, 0.01, 0.04, 0.04, 0.05, 0.03, 0.04, 0.06])
    now, started = [0.0], [False]

    def clock() -> float:  # called at the start and at the end of each run
        started[0] = not started[0]
        if not started[0]:
            now[0] += next(took)
        return now[0]

    monkeypatch.setattr(probe.time, "perf_counter", clock)
    rate = probe.multiply_adds_per_second("float32")
    batch, inputs, outputs = probe.PROBE_SHAPE
    assert next(took, None) is None  # exactly the runs described
    assert rate == pytest.approx(32 * batch * inputs * outputs / 0.04)  # the median, 0.04 s
    assert rate == pytest.approx(5.37e10, rel=1e-3)


@pytest.mark.parametrize("minutes", [None, 2, 10])
@pytest.mark.parametrize("rate", [20e9, 240e9])
def test_fine_tuning_keeps_the_bases_size_whatever_the_speed_reading(minutes, rate):
    from textgen.generate.sizing import (
        DROPOUT,
        FINE_TUNING_PATIENCE,
        Machine,
        choose_size,
        learning_rate_for,
    )

    base = {"layers": 2, "units": 512}
    for chars in (1_600, 135_000, 1_000_000):
        values = choose_size(chars, 70, minutes, Machine("mixed_bfloat16", rate), base,
                             fine_tuning=True).values
        assert "layers" not in values and "units" not in values  # the base's, as given
        # a third of the rate from scratch under a budget, a fifteenth over 10 epochs without
        share = 1 / 3 if minutes else 1 / 15
        assert values["learning_rate"] == pytest.approx(learning_rate_for(512, minutes) * share,
                                                        rel=1e-3)
        assert values["patience"] == FINE_TUNING_PATIENCE
        # without a budget no dropout; under one, by the passes (a test below)
        assert values["dropout"] in ((0.0,) if minutes is None else (0.0, DROPOUT))
        if minutes is not None:
            assert values["epochs"] == 100_000  # the budget ends training
        else:  # a 1.6 kB text's epochs of 10 batches pass over it dozens of times: fewer
            assert values["epochs"] == (2 if chars == 1_600 else 10)
    given = choose_size(135_000, 70, None, None, {**base, "dropout": 0.5, "patience": 9},
                        fine_tuning=True).values
    assert "dropout" not in given and "patience" not in given  # options you give win


def test_fine_tuning_epochs_stop_near_80_passes_over_a_small_text():
    from textgen.generate.sizing import (
        FINE_TUNING_EPOCHS,
        FINE_TUNING_PASSES,
        fine_tuning_epochs,
        passes_per_epoch,
    )

    # the bundled speech: epochs of at least 10 batches of 64 windows of 100 characters
    assert passes_per_epoch(1_675, {}) == pytest.approx(10 * 64 * 100 / 1_675)
    for chars in (1_675, 4_528):
        epochs = fine_tuning_epochs(chars, {})
        assert 1 <= epochs < FINE_TUNING_EPOCHS
        assert abs(epochs * passes_per_epoch(chars, {}) - FINE_TUNING_PASSES) <= \
            passes_per_epoch(chars, {}) / 2  # the nearest whole number of epochs
    assert fine_tuning_epochs(9_000, {}) == FINE_TUNING_EPOCHS  # 71 passes in 10 epochs
    assert fine_tuning_epochs(1_000_000, {}) == FINE_TUNING_EPOCHS
    assert fine_tuning_epochs(200, {}) == 1  # at least one epoch
    # the options that set an epoch's length count: shorter windows, fewer steps
    assert fine_tuning_epochs(1_675, {"seq_length": 25}) == 8
    assert fine_tuning_epochs(1_675, {"steps_per_epoch": 2}) == 10


def test_fine_tuning_note_says_how_often_the_text_is_seen():
    from textgen.errors import written_for_cli
    from textgen.generate.sizing import choose_size

    base = {"layers": 2, "units": 512}
    reason = choose_size(1_675, 70, None, None, base, fine_tuning=True).reason
    assert "epochs=2" in reason and "2 epochs going over it about 76 times" in reason
    with written_for_cli():  # the options as each shell takes them: keywords, flags
        said = choose_size(1_675, 70, None, None, base, fine_tuning=True).reason
    assert said.startswith("chose --learning-rate 0.0002, --epochs 2, --dropout 0: ")
    assert reason.startswith("chose learning_rate=0.0002, epochs=2, dropout=0.0: ")
    given = choose_size(1_675, 70, None, None, {**base, "epochs": 5}, fine_tuning=True)
    assert "epochs" not in given.values  # yours wins, and the note counts its passes
    assert "5 epochs going over it about 191 times" in given.reason
    once = choose_size(64_000, 70, None, None, {**base, "epochs": 1}, fine_tuning=True)
    assert "1 epoch going over it about once" in once.reason  # not "about 1 times"
    part = choose_size(1_000_000, 70, None, None, {**base, "epochs": 1, "steps_per_epoch": 10},
                       fine_tuning=True)
    assert "1 epoch going over it about 0.1 times" in part.reason  # not "about 0 times"


def test_a_fine_tuned_base_gets_dropout_under_a_budget_only_when_it_sees_the_text_often():
    from textgen.generate.sizing import (
        DROPOUT,
        FINE_TUNING_DROPOUT_PASSES,
        Machine,
        choose_size,
        training_signals,
    )

    base, machine = {"layers": 2, "units": 512}, Machine("mixed_bfloat16", 130e9)

    def chosen(chars: int, minutes: float) -> dict:
        return choose_size(chars, 65, minutes, machine, base, fine_tuning=True).values

    def passes(chars: int, minutes: float) -> float:
        return training_signals(2, 512, 65, minutes, machine) / chars

    # Othello in 2 minutes: a few passes, no dropout (it cost 0.06 bits/char there)
    assert passes(135_000, 2) < FINE_TUNING_DROPOUT_PASSES
    assert chosen(135_000, 2)["dropout"] == 0.0
    # a 10 kB text in 10 minutes is seen hundreds of times: dropout against memorising it
    assert passes(10_000, 10) >= FINE_TUNING_DROPOUT_PASSES
    assert chosen(10_000, 10)["dropout"] == DROPOUT
    assert choose_size(135_000, 65, 2, machine, {**base, "dropout": 0.3},
                       fine_tuning=True).values.get("dropout") is None  # yours wins


@pytest.mark.parametrize("minutes", [None, 2.0])
def test_fine_tuning_rate_rises_to_the_rate_from_scratch_for_a_text_far_from_the_base(minutes):
    from textgen.generate.sizing import (
        FAR_BASE_BITS,
        NEAR_BASE_BITS,
        Machine,
        choose_size,
        learning_rate_for,
    )

    base, machine = {"layers": 2, "units": 512}, Machine("mixed_bfloat16", 130e9)

    def rate(bits: float | None) -> float:
        return choose_size(50_000, 70, minutes, machine, base, fine_tuning=True,
                           base_bits=bits).values["learning_rate"]

    gentle, scratch = rate(None), learning_rate_for(512, minutes)
    assert gentle < scratch / 2
    # English the base predicts (2.1-2.5 bits/char) keeps the gentle rate...
    assert rate(2.1) == rate(NEAR_BASE_BITS) == gentle
    # ...code it predicts at 4-5 bits/char gets the rate from scratch, and so does a text of
    # which it can score nothing; in between the rate rises with the distance.
    assert rate(FAR_BASE_BITS) == rate(5.07) == rate(float("nan")) == scratch
    middle = rate((NEAR_BASE_BITS + FAR_BASE_BITS) / 2)
    assert gentle < middle < scratch
    assert middle == pytest.approx((gentle * scratch) ** 0.5, rel=1e-2)  # log-linear
    far = choose_size(50_000, 70, minutes, machine, base, fine_tuning=True, base_bits=5.07)
    assert ("a higher rate, as the base predicts it at 5.07 bits/char (texts it knows score "
            f"under {NEAR_BASE_BITS})") in far.reason
    assert "higher rate" not in choose_size(50_000, 70, minutes, machine, base,
                                            fine_tuning=True, base_bits=2.3).reason
    given = choose_size(50_000, 70, minutes, machine, {**base, "learning_rate": 1e-4},
                        fine_tuning=True, base_bits=5.07)
    assert "learning_rate" not in given.values and "higher rate" not in given.reason


def test_only_a_large_text_far_from_the_base_is_told_to_try_from_scratch():
    from textgen.generate.sizing import (
        FAR_BASE_BITS,
        LARGE_FAR_TEXT_CHARS,
        NEAR_BASE_BITS,
        scratch_worth_trying,
    )

    large, small = LARGE_FAR_TEXT_CHARS, LARGE_FAR_TEXT_CHARS - 1
    assert scratch_worth_trying(large, FAR_BASE_BITS)
    assert scratch_worth_trying(large, 5.07)
    assert scratch_worth_trying(large, float("nan"))  # nothing scored: far
    assert not scratch_worth_trying(small, 5.07)
    assert not scratch_worth_trying(large, 2.1)  # English: the base is the better start
    assert not scratch_worth_trying(large, (NEAR_BASE_BITS + FAR_BASE_BITS) / 2)
    assert not scratch_worth_trying(large, None)  # not scored


@pytest.mark.parametrize("cell", ["lstm", "gru", "simplernn"])
def test_the_parameter_count_is_keras_own(cell):
    """The sizing rule's count of weights is what Keras builds, for every cell."""
    from textgen.generate.config import Cell, GeneratorConfig
    from textgen.generate.model import build_generator
    from textgen.generate.sizing import parameters

    config = GeneratorConfig(vocab_size=11, layers=2, units=7, cell=Cell(cell), embed_dim=5)
    keras_count = build_generator(config).count_params()
    assert parameters(2, 7, 11, 5, Cell(cell)) == keras_count


@pytest.mark.parametrize(("minutes", "words"), [
    (1, "1 minute"), (0.9999, "1 minute"), (0.5, "0.5 minutes"),
    (1 / 30, "0.0333 minutes"), (1200, "1,200 minutes"), (525600, "525,600 minutes")])
def test_a_budget_in_words_has_no_exponent_and_a_true_plural(minutes, words):
    """A budget of 20 h was written `1.2e+03 minutes`, and 59.99 s `1 minutes`."""
    from textgen.training.options import in_minutes

    assert in_minutes(minutes) == words
