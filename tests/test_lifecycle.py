"""The shared training lifecycle and the options both modes take: one rule for everything a
run does, whichever mode drives it; checks that fail before TensorFlow loads."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest

from tests.conftest import TINY_GENERATOR, run_without_tensorflow
from tests.test_classify import write_reviews
from textgen.errors import TextgenError

TINY_CLASSIFIER = ["--arch", "lstm", "--max-tokens", "60", "--seq-length", "10", "--embed-dim",
                   "8", "--units", "8", "--batch-size", "8"]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_reviews(tmp_path_factory.mktemp("reviews"), {"neg": 16, "pos": 16})


# --- options are checked before TensorFlow loads ---------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--lr-schedule", "constnat"],
     "'constnat' is not one of 'cosine', 'exponential', 'plateau'"),
    (["train", "--cell", "rnn"], "'rnn' is not one of 'lstm', 'gru'"),
    (["classify", "train", "--val-split", "1.5"], "--val-split must be in [0, 1), got 1.5"),
    (["classify", "train", "--arch", "cnn"], "'cnn' is not one of 'lstm', 'ngrams'"),
    (["classify", "train", "--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
    (["classify", "train", "--input-dropout", "1"], "--input-dropout must be in [0, 1), got 1.0"),
    (["classify", "train", "--lr-decay", "0"], "--lr-decay must be in (0, 1], got 0.0"),
    (["train", "--lr-decay", "1.5"], "--lr-decay must be in (0, 1], got 1.5"),
    (["train", "--units", "0"], "--units must be >= 1, got 0"),
    (["evaluate", "x.txt", "--checkpoint", "newest"], "'newest' is not one of 'best', 'last'"),
    (["classify", "evaluate", "x", "--checkpoint", "newest"], "is not one of 'best', 'last'"),
    (["classify", "predict", "hi", "--checkpoint", "newest"], "is not one of 'best', 'last'"),
    (["export", "run", "-o", "out", "--checkpoint", "newest"], "is not one of 'best', 'last'"),
    (["sample", "--temperature", "-1"], "--temperature must be a number >= 0"),
])
def test_bad_options_fail_before_tensorflow_loads(tmp_path, args, message):
    code, imported, stderr = run_without_tensorflow(*args, cwd=tmp_path)
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr
    assert not imported
    assert not (tmp_path / "checkpoints").exists()


def test_the_python_api_checks_options_the_same_way(tiny_corpus, tmp_path):
    from textgen.classify.train import train_classifier
    from textgen.generate.train import train_generator

    with pytest.raises(TextgenError,
                       match="--lr-schedule must be one of cosine, exponential, plateau"):
        train_generator(tiny_corpus, lr_schedule="constnat", checkpoint_dir=tmp_path)
    with pytest.raises(TextgenError, match="--val-split must be in"):
        train_classifier(tmp_path / "nowhere", val_split=1.5)
    with pytest.raises(TypeError, match="unknown training options"):
        train_generator(tiny_corpus, unitz=3)
    assert not list(tmp_path.iterdir())


# --- one learning-rate rule -------------------------------------------------------------------


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


@pytest.mark.parametrize("mode", ["generate", "classify"])
def test_a_time_budget_ends_on_a_small_rate_in_both_modes(cli, tiny_corpus, reviews, tmp_path,
                                                          mode):
    from textgen.runs import load_keras_model

    if mode == "generate":
        args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--learning-rate", "0.01"]
    else:
        # classify's default schedule decays by epoch; the budget-long cosine is asked for,
        # and a patience no run this short reaches, so that the budget ends it
        args = ["classify", "train", str(reviews), *TINY_CLASSIFIER, "--learning-rate", "0.01",
                "--steps-per-epoch", "4", "--lr-schedule", "cosine", "--patience", "100000"]
    result = cli(*args, "--epochs", "100000", "--max-time", "0.25", "--run-name", "timed",
                 "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "time budget (--max-time) reached" in result.stderr
    import textgen.classify.model  # noqa: F401  (registers the classifier's layers)

    model = load_keras_model(tmp_path / "timed" / "last.keras", compile=True)
    steps = int(re.search(r"steps this session\W+(\d+)", result.stderr).group(1))
    # The cosine runs over the 15-second budget, not over 100,000 planned epochs: the last
    # step began at most one step before the budget's end. (On a loaded machine the first
    # step's graph tracing can outlast the whole budget; its rate then says nothing.)
    assert steps == 1 or float(model.optimizer.learning_rate) < 0.004


# --- resuming ---------------------------------------------------------------------------------


def test_resume_refuses_a_changed_architecture_and_notes_other_changes(cli, tiny_corpus,
                                                                       tmp_path):
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", str(tmp_path)]
    assert cli(*args, "--epochs", "1").exit_code == 0
    for given, saved in (("--units 32", "--units 16"), ("--seq-length 12", "--seq-length 16"),
                         ("--cell gru", "--cell lstm"), ("--layer-norm", "--no-layer-norm")):
        refused = cli(*args, "--epochs", "2", "--resume", *given.split())
        assert refused.exit_code == 2, refused.stderr
        assert f"{given} differs from the run's {saved}" in refused.stderr
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 1  # nothing was trained by the refused runs
    noted = cli(*args, "--epochs", "2", "--resume", "--learning-rate", "0.5",
                "--batch-size", "2")
    assert noted.exit_code == 0, noted.stderr
    assert "resuming with the run's --learning-rate 0.005 (not 0.5)" in noted.stderr
    assert "resuming with the run's --batch-size 4 (not 2)" in noted.stderr
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["config"]["learning_rate"] == 0.005 and meta["training"]["batch_size"] == 4
    assert meta["training"]["epochs_done"] == 2


def test_classifier_resume_refuses_a_changed_architecture(cli, reviews, tmp_path):
    args = ["classify", "train", str(reviews), *TINY_CLASSIFIER, "--checkpoint-dir",
            str(tmp_path)]
    assert cli(*args, "--epochs", "1").exit_code == 0
    refused = cli(*args, "--epochs", "2", "--resume", "--units", "4")
    assert refused.exit_code == 2 and "--units 4 differs from the run's --units 8" in refused.stderr
    refused = cli(*args, "--epochs", "2", "--resume", "--arch", "ngrams")
    assert refused.exit_code == 2 and "--arch ngrams differs" in refused.stderr
    meta = json.loads((tmp_path / reviews.name / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 1


def test_ngrams_says_which_options_it_ignores(cli, reviews, tmp_path):
    result = cli("classify", "train", str(reviews), "--arch", "ngrams", "--units", "8",
                 "--bidirectional", "--input-dropout", "0.1", "--epochs", "1",
                 "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert ("note: --arch ngrams does not use --units, --bidirectional, --input-dropout; "
            "ignored") in result.stderr


def test_reconcile_is_a_pure_rule():
    from rich.console import Console

    from textgen.generate.config import GeneratorConfig
    from textgen.training.lifecycle import Notes, reconcile_config, reconcile_options
    from textgen.training.options import TrainOptions

    notes = Notes(Console(file=open("/dev/null", "w")))  # noqa: SIM115
    saved = GeneratorConfig(vocab_size=30, units=16, dropout=0.1)
    reconcile_config(saved, {"units": 16, "dropout": 0.3}, notes)
    assert notes == ["resuming with the run's --dropout 0.1 (not 0.3)"]
    with pytest.raises(TextgenError, match="--layers 3 differs from the run's --layers 2"):
        reconcile_config(saved, {"layers": 3}, notes)
    options = TrainOptions(batch_size=8, rng_seed=1)
    meta = {"training": {"batch_size": 4, "rng_seed": 7, "val_split": 0.1,
                         "steps_per_epoch": 12}}
    reconcile_options(options, {"batch_size"}, meta, notes)
    assert (options.batch_size, options.rng_seed, options.steps_per_epoch) == (4, 7, 12)
    assert notes[-1] == "resuming with the run's --batch-size 4 (not 8)"  # only what was given


# --- which model a command uses ---------------------------------------------------------------


@pytest.fixture
def run_with_different_last(tiny_run, tmp_path):
    """A copy of the tiny run whose last.keras holds re-initialised weights."""
    import keras

    target = tmp_path / "ck" / "copy"
    shutil.copytree(tiny_run.path, target)
    model = keras.saving.load_model(target / "last.keras", safe_mode=True)
    for weight in model.weights:
        weight.assign(keras.ops.zeros_like(weight))
    model.save(target / "last.keras")
    return target


def test_a_keras_path_means_that_file_everywhere(cli, run_with_different_last, tiny_corpus):
    from textgen.runs import find_model

    run = run_with_different_last
    for which in ("best", "last"):
        assert find_model(run / "last.keras", run.parent, "generate", which).file == \
            run / "last.keras"
    assert find_model("copy", run.parent, "generate", "best").file == run / "best.keras"
    assert find_model(run, run.parent, "generate", "last").file == run / "last.keras"

    def score(*args: str) -> float:
        result = cli("evaluate", str(tiny_corpus), "--json", *args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["bits_per_char"]

    uniform = math.log2(len(json.loads((run / "vocab.json").read_text())))
    assert score("--model", str(run / "last.keras")) == pytest.approx(uniform, rel=1e-4)
    assert score("--model", str(run), "--checkpoint", "last") == pytest.approx(uniform, rel=1e-4)
    assert score("--model", str(run)) < uniform - 0.05  # best.keras: the trained weights


def test_sampling_uses_the_last_epoch_from_the_cli_and_the_api(cli, run_with_different_last):
    from textgen.generate.sampling import load_sampler

    run = run_with_different_last
    (run / "best.keras").write_bytes(b"not a model")
    assert load_sampler(run).generate("To", 5, temperature=0).startswith("To")
    assert cli("sample", "--model", str(run), "--length", "5").exit_code == 0


def test_missing_runs_give_the_same_advice_everywhere(cli, tmp_path):
    for args in (["sample", "--model", "nope"], ["evaluate", "x.txt", "--model", "nope"],
                 ["classify", "predict", "hi", "--model", "nope"], ["info", "nope"],
                 ["export", "nope", "-o", str(tmp_path / "out")]):
        result = cli(*args, "--checkpoint-dir", str(tmp_path))
        assert result.exit_code == 2, result.stderr
        assert "no run named 'nope'" in result.stderr
        assert "list runs with textgen runs" in result.stderr, args


# --- precision --------------------------------------------------------------------------------


def test_precision_auto_picks_bfloat16_only_where_the_cpu_computes_it():
    from textgen.generate.config import GeneratorConfig, Precision, resolve_precision
    from textgen.tf_setup import cpu_supports_bfloat16

    assert GeneratorConfig(vocab_size=2).precision == Precision.auto
    assert resolve_precision(Precision.auto, True, 0) == Precision.mixed_bfloat16
    assert resolve_precision(Precision.auto, False, 0) == Precision.float32
    assert resolve_precision(Precision.auto, True, 1) == Precision.float32  # a GPU: cuDNN
    assert resolve_precision(Precision.float32, True, 0) == Precision.float32
    assert resolve_precision(Precision.mixed_bfloat16, False, 0) == Precision.mixed_bfloat16
    assert cpu_supports_bfloat16("model name : Intel Xeon\nflags : fpu avx512f avx512_bf16\n")
    assert cpu_supports_bfloat16("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_supports_bfloat16("model name : bf16 avx512_bf16 lookalike\nflags : fpu avx2\n")


def test_a_new_run_records_the_precision_auto_chose(cli, tiny_corpus, tmp_path):
    from textgen.tf_setup import cpu_supports_bfloat16

    result = cli("train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "1",
                 "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    expected = "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
    assert f"note: precision {expected}" in result.stderr
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["config"]["precision"] == expected


# --- early stopping ---------------------------------------------------------------------------


def test_patience_stops_training_and_a_resume_knows_it(cli, tiny_corpus, tmp_path):
    """A constant, far too high rate makes the validation loss worse after the first epochs:
    training stops `--patience` epochs after the best one, which best.keras keeps."""
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", str(tmp_path),
            "--learning-rate", "0.5", "--lr-schedule", "constant", "--patience", "2",
            "--epochs", "40"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    training = meta["training"]
    assert training["stopped_early"] is True
    assert training["epochs_done"] == training["best_epoch"] + 2 < 40
    assert "validation loss stopped improving" in result.stderr
    again = cli(*args, "--resume")
    assert again.exit_code == 0 and "stopped early at epoch" in again.stderr


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


# --- the model chosen for the text and the budget ---------------------------------------------


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
    from textgen.generate.config import GeneratorConfig
    from textgen.generate.sizing import BUDGET_WINDOW

    assert GeneratorConfig.seq_length > BUDGET_WINDOW  # more updates for the same signal
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


def test_the_speed_probe_measures_this_machine():
    from textgen.generate.probe import multiply_adds_per_second

    rate = multiply_adds_per_second("float32")
    assert math.isfinite(rate) and 1e7 < rate < 1e15


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
