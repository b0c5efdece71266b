"""The shared training lifecycle and the options both modes take: one rule for everything a
run does, whichever mode drives it; checks that fail before TensorFlow loads; resuming; which
model a command uses; early stopping."""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil

import pytest

from tests.conftest import TINY_CLASSIFIER, TINY_GENERATOR, run_without_tensorflow, write_reviews
from textgen.errors import FieldError, TextgenError
from textgen.training.options import BUDGET_EPOCHS

# --- options are checked before TensorFlow loads ---------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--lr-schedule", "constnat"],
     "'constnat' is not one of 'cosine', 'exponential', 'plateau'"),
    (["train", "--cell", "rnn"],
     "error: Invalid value for '--cell': 'rnn' is not one of 'lstm', 'gru'"),
    (["classify", "train", "--val-split", "1.5"], "--val-split must be in [0, 1), got 1.5"),
    (["classify", "train", "--arch", "cnn"], "'cnn' is not one of 'lstm', 'ngrams'"),
    (["classify", "train", "--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
    (["classify", "train", "--input-dropout", "1"], "--input-dropout must be in [0, 1), got 1.0"),
    (["classify", "train", "--lr-decay", "0"], "--lr-decay must be in (0, 1], got 0.0"),
    (["train", "--lr-decay", "1.5"], "--lr-decay must be in (0, 1], got 1.5"),
    # a decay the schedule has no use for was ignored without a word
    (["train", "--lr-decay", "0.9"], "error: --lr-decay 0.9 applies to --lr-schedule "
     "exponential only (the schedule is cosine); add it, or leave out the decay"),
    (["classify", "train", "--lr-schedule", "plateau", "--lr-decay", "0.9"],
     "--lr-decay 0.9 applies to --lr-schedule exponential only (the schedule is plateau)"),
    (["train", "--units", "0"], "--units must be >= 1, got 0"),
    (["train", "--layers", "1000"], "--layers must be from 1 to 32, got 1000"),
    (["train", "--max-time", "1e300"], "--max-time must be > 0 and at most 525,600 minutes"),
    (["train", "--max-time", "nan"], "--max-time must be > 0 and at most 525,600 minutes"),
    # the app's own option after the command: where it goes (it was only "No such option")
    (["classify", "train", "-v"], "No such option: -v; -v goes before the command: "),
    (["trian"], "No such command 'trian'. Did you mean 'train'? (see '"),
    (["train", "--max-time", "10x"], "Invalid value for '--max-time': '10x' is not a time; "
     "give minutes (10, 0.5) or a time with its unit (90s, 10m, 2h)"),
    (["classify", "train", "--max-time", "-2h"],
     "--max-time must be > 0 and at most 525,600 minutes (a year), got -120 minutes"),
    (["train", "--max-time", "2 fortnights"], "'2 fortnights' is not a time"),
    (["evaluate", "x.txt", "--checkpoint", "newest"], "'newest' is not one of 'best', 'last'"),
    (["classify", "evaluate", "x", "--checkpoint", "newest"], "is not one of 'best', 'last'"),
    (["classify", "predict", "hi", "--checkpoint", "newest"], "is not one of 'best', 'last'"),
    (["export", "run", "-o", "out", "--checkpoint", "newest"], "is not one of 'best', 'last'"),
    (["sample", "--temperature", "-1"], "--temperature must be a finite number >= 0"),
    (["train", "--epochs", "99999999999999999999"], "--epochs must be in [1, 2,147,483,647]"),
    (["train", "--steps-per-epoch", str(2**40)], "--steps-per-epoch must be in [1, 2,147,"),
    (["train", "--learning-rate", "inf"], "--learning-rate must be a number > 0, got inf"),
    (["train", "--resume", "--overwrite"], "--resume continues a run and --overwrite starts"),
    # the Unix habit for standard input (it said "-: no such file")
    (["train", "-"], "-: text is read from files, not standard input; save it to a file"),
    (["train", "--checkpoint-dir", "/dev/null"],  # it said /dev/null/othello: not a directory
     "--checkpoint-dir is /dev/null, not a folder; give the folder that holds the runs"),
])
def test_bad_options_fail_before_tensorflow_loads(tmp_path, args, message):
    code, imported, stderr = run_without_tensorflow(*args, cwd=tmp_path)
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr
    assert not imported
    assert not (tmp_path / "checkpoints").exists()


def test_the_python_api_checks_options_the_same_way(tiny_corpus, tmp_path):
    import textgen
    from textgen.classify.train import train_classifier
    from textgen.generate.train import train_generator
    from textgen.training.fit import TrainingInterrupted

    assert (textgen.FieldError, textgen.TextgenError) == (FieldError, TextgenError)
    assert textgen.TrainingInterrupted is TrainingInterrupted
    # The Python API names the keyword (the CLI the flag, for the same check).
    with pytest.raises(FieldError,
                       match="^lr_schedule must be one of cosine, exponential, plateau") as bad:
        train_generator(tiny_corpus, lr_schedule="constnat", checkpoint_dir=tmp_path)
    assert bad.value.field == "lr_schedule"
    with pytest.raises(FieldError, match="^val_split must be in") as bad:
        train_classifier(tmp_path / "nowhere", val_split=1.5)
    assert bad.value.for_cli().startswith("--val-split must be in [0, 1), got 1.5")
    with pytest.raises(TypeError, match="unknown training options"):
        train_generator(tiny_corpus, unitz=3)
    with pytest.raises(FieldError, match="^preset must be one of cpu-10min; got 'gpu'"):
        train_generator(tiny_corpus, preset="gpu", checkpoint_dir=tmp_path)
    # an AttributeError from deep inside ('int' object has no attribute 'print')
    for train in (train_generator, train_classifier):
        with pytest.raises(FieldError, match="^console must be a rich.console.Console, or None "
                                             "for stderr; got 5$"):
            train(tiny_corpus, console=5, checkpoint_dir=tmp_path)
    # Values of the wrong type are named, not taken as truthy or passed on to TensorFlow.
    for options, message in (({"overwrite": "no"}, "overwrite must be True or False, got 'no'"),
                             ({"epochs": "1"}, "epochs must be a whole number, got '1'"),
                             ({"units": 16.0}, "units must be a whole number, got 16.0"),
                             ({"layer_norm": "no"}, "layer_norm must be True or False"),
                             ({"max_time": "1"}, "max_time must be a number or None"),
                             ({"checkpoint_dir": 5}, "checkpoint_dir must be a folder's path")):
        with pytest.raises(FieldError, match=f"^{re.escape(message)}"):
            train_generator(tiny_corpus, **{"checkpoint_dir": tmp_path, **options})
    with pytest.raises(FieldError, match="^bidirectional must be True or False"):
        train_classifier(tmp_path / "nowhere", bidirectional="no")
    assert not list(tmp_path.iterdir())


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


@pytest.mark.parametrize(("given", "max_time", "training", "chosen", "epochs", "patience"), [
    # a run planned for 30 epochs, killed at 5: --resume alone goes on to 30, not the default 20
    (set(), None, {"epochs_requested": 30}, {}, 30, None),
    ({"epochs"}, None, {"epochs_requested": 30}, {}, 8, None),  # given again: it wins
    # a new budget ends the resumed run, as it ends a new one (not the run's old epoch count)
    (set(), 5.0, {"epochs_requested": 20}, {}, BUDGET_EPOCHS, None),
    ({"epochs"}, 5.0, {"epochs_requested": 20}, {}, 8, None),
    # a classifier's plan: its epochs capped by a budget; a budget again caps the same epochs
    # (100,000 epochs would spread its per-epoch decay so thin the rate starts near 0)
    (set(), 5.0, {"epochs_requested": 10, "budget": {"minutes": 1, "spent_s": 60}}, {}, 10,
     None),
    # a budget's epochs without a budget now: the default count
    (set(), None, {"epochs_requested": BUDGET_EPOCHS}, {"epochs": BUDGET_EPOCHS}, 20, None),
    # fine-tuning chose 10 epochs and patience 3: a resume keeps both
    (set(), None, {}, {"epochs": 10, "patience": 3}, 10, 3),
    ({"patience"}, None, {"epochs_requested": 10}, {"patience": 3}, 10, 7),
])
def test_a_resumed_run_keeps_its_plan_unless_told_otherwise(given, max_time, training, chosen,
                                                            epochs, patience):
    from textgen.training.lifecycle import resumed_plan
    from textgen.training.options import TrainOptions

    options = TrainOptions(max_time=max_time, **({"epochs": 8} if "epochs" in given else {}),
                           **({"patience": 7} if "patience" in given else {}))
    resumed_plan(options, given, {"training": training, "chosen": chosen})
    assert (options.epochs, options.patience) == (epochs, patience)


def test_resuming_a_finished_run_with_a_time_budget_trains_on(cli, tiny_corpus, tmp_path):
    """The run's 2 epochs are done; --resume --max-time gives it more, as a new budget would."""
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", str(tmp_path)]
    assert cli(*args, "--epochs", "2").exit_code == 0
    finished = cli(*args, "--resume")
    assert finished.exit_code == 0 and "already finished 2 epoch(s)" in finished.stderr
    # Nothing to train: answered before TensorFlow loads (it took 6 s here, as a new run).
    code, imported, stderr = run_without_tensorflow(*args, "--resume")
    assert (code, imported) == (0, False) and "already finished 2 epoch(s)" in stderr
    assert "give a larger --epochs, or --max-time, to train it further" in stderr
    # from Python: said too (it returned without a word), in the keywords' terms
    from textgen import train_generator

    result = train_generator(tiny_corpus, checkpoint_dir=tmp_path, resume=True)
    assert result.already_finished
    assert result.notes[-1] == (f"{tmp_path / 'hamlet'} has already finished 2 epoch(s); give a "
                                "larger epochs, or max_time, to train it further")
    budget = cli(*args, "--resume", "--max-time", "0.25")
    assert budget.exit_code == 0, budget.stderr
    assert "already finished" not in budget.stderr and "time budget" in budget.stdout
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["training"]["epochs_done"] > 2


def test_resuming_a_run_whose_time_budget_is_spent_says_it_is_finished(cli, tiny_corpus,
                                                                      tmp_path):
    """Plain --resume does not train on without a limit (20 default epochs at the floor
    rate): the budget was the plan; a new --max-time or --epochs asks for more."""
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", str(tmp_path)]
    assert cli(*args, "--max-time", "0.05").exit_code == 0
    done = json.loads((tmp_path / "hamlet" / "run.json").read_text())["training"]
    finished = cli(*args, "--resume")
    assert finished.exit_code == 0 and "its --max-time budget is spent" in finished.stderr
    after = json.loads((tmp_path / "hamlet" / "run.json").read_text())["training"]
    assert after["epochs_done"] == done["epochs_done"]
    more = cli(*args, "--resume", "--epochs", str(done["epochs_done"] + 1))
    assert more.exit_code == 0 and "already finished" not in more.stderr
    training = json.loads((tmp_path / "hamlet" / "run.json").read_text())["training"]
    assert training["epochs_done"] == done["epochs_done"] + 1
    # trained without a budget: the spent one is dropped, so it cannot end a later --resume
    assert "budget" not in training


def test_resume_without_last_keras_never_overwrites_the_trained_run(cli, tiny_corpus, tmp_path):
    """best.keras kept, last.keras deleted (to save space, say): --resume refuses in one line
    instead of starting afresh over the run's files."""
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", str(tmp_path)]
    assert cli(*args, "--epochs", "2").exit_code == 0
    run = tmp_path / "hamlet"
    (run / "last.keras").unlink()
    history = (run / "history.csv").read_text()
    refused = cli(*args, "--epochs", "3", "--resume")
    assert refused.exit_code == 2 and "has no last.keras" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert (run / "history.csv").read_text() == history and (run / "best.keras").is_file()


def test_a_run_resumed_by_name_without_its_text_reads_its_own(cli, tiny_corpus, tmp_path):
    """`train --run-name m2 --resume` with no text read the bundled speech as the default
    text and refused it as not the run's (naming a file the user never gave)."""
    args = ["train", *TINY_GENERATOR, "--base", "none", "--checkpoint-dir", str(tmp_path),
            "--run-name", "m2"]
    assert cli(*args[:1], str(tiny_corpus), *args[1:], "--epochs", "1").exit_code == 0
    resumed = cli(*args, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    meta = json.loads((tmp_path / "m2" / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 2 and meta["corpus"] == str(tiny_corpus)


def test_resume_reads_the_data_as_the_run_did(cli, tiny_corpus, tmp_path):
    """A run trained with --encoding latin-1 (a generator) or --text-column/--label-column (a
    classifier) resumes without them: --resume read the text as UTF-8 and stopped at its
    first accented byte. Given again, they still win."""
    latin = tmp_path / "latin.txt"
    latin.write_bytes(tiny_corpus.read_text().replace("e", "\xe9").encode("latin-1"))
    args = ["train", str(latin), *TINY_GENERATOR, "--base", "none", "--checkpoint-dir",
            str(tmp_path / "ck")]
    assert cli(*args, "--encoding", "latin-1", "--epochs", "1").exit_code == 0
    resumed = cli(*args, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((tmp_path / "ck" / "latin" / "run.json").read_text())["training"][
        "epochs_done"] == 2
    strict = cli(*args, "--epochs", "3", "--resume", "--encoding", "utf-8")
    assert strict.exit_code == 2 and "not valid UTF-8" in strict.stderr
    from textgen import evaluate_text  # the Python API reads it as the run did, too

    scores = evaluate_text(latin, "latin", checkpoint_dir=tmp_path / "ck")
    assert scores["unknown_chars"] == 0 and scores["chars"] == len(latin.read_bytes())
    # ... and takes the keywords its errors name, as train_generator does
    with pytest.raises(TextgenError, match="use decode_errors='replace' to read it anyway, or "
                                           "encoding with its real encoding"):
        evaluate_text(latin, "latin", checkpoint_dir=tmp_path / "ck", encoding="utf-8")
    replaced = evaluate_text(latin, "latin", checkpoint_dir=tmp_path / "ck", encoding="utf-8",
                             decode_errors="replace")
    assert replaced["unknown_chars"] > 0  # U+FFFD, which the run never saw

    table = tmp_path / "moods.csv"
    words = {"pos": ["loved", "superb"], "neg": ["awful", "dull"]}
    table.write_text("body,mood\n" + "".join(f"a {words[m][i % 2]} film {i},{m}\n"
                                             for i in range(40) for m in ("pos", "neg")))
    args = ["classify", "train", str(table), "--checkpoint-dir", str(tmp_path / "ck")]
    assert cli(*args, "--text-column", "body", "--label-column", "mood", "--epochs",
               "1").exit_code == 0
    resumed = cli(*args, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((tmp_path / "ck" / "moods" / "run.json").read_text())["training"][
        "epochs_done"] == 2
    from textgen import evaluate_data

    renamed = tmp_path / "renamed.csv"
    renamed.write_text(table.read_text().replace("body,mood", "review,stars"))
    with pytest.raises(TextgenError, match="name the columns with text_column and label_column"):
        evaluate_data(renamed, "moods", checkpoint_dir=tmp_path / "ck")
    metrics = evaluate_data(renamed, "moods", checkpoint_dir=tmp_path / "ck",
                            text_column="review", label_column="stars")
    assert metrics.to_dict()["examples"] == 80


def test_a_backup_without_its_model_is_not_a_saved_model(tmp_path):
    """A backup's .json is written before its .keras: disk full in between leaves no model,
    so the new run's folder is removed and the same command can be run again."""
    from textgen.runs import RunDir
    from textgen.training.lifecycle import has_models

    run = RunDir(tmp_path / "r")
    run.backup.mkdir(parents=True)
    (run.backup / "epoch-000000-step-000000005.json").write_text("{}")
    assert not has_models(run)
    (run.backup / "epoch-000000-step-000000005.keras").write_bytes(b"x")
    assert has_models(run)


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
    # Its own options, without --arch: the LSTM run uses them (the note said ngrams ignored
    # them, from the default architecture, not the run's).
    without_arch = [a for a in args if a not in ("--arch", "lstm")]
    resumed = cli(*without_arch, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "does not use" not in resumed.stderr
    meta = json.loads((tmp_path / reviews.name / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 2
    # other data under the run's name (here a folder of the same classes) is refused
    other = write_reviews(tmp_path / "other", {"pos": 12, "neg": 12}, seed=9)
    refused = cli("classify", "train", str(other), *TINY_CLASSIFIER, "--checkpoint-dir",
                  str(tmp_path), "--run-name", reviews.name, "--epochs", "2", "--resume")
    assert refused.exit_code == 2
    assert f"not the data run {reviews.name} was trained on ({reviews.resolve()}, as its " \
        "columns and --classes read it)" in refused.stderr
    assert json.loads((tmp_path / reviews.name / "run.json").read_text()) == meta
    finished = cli("classify", "train", str(other), *TINY_CLASSIFIER, "--checkpoint-dir",
                   str(tmp_path), "--run-name", reviews.name, "--epochs", "1", "--resume")
    assert finished.exit_code == 2 and "not the data run" in finished.stderr  # not "finished"


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
    assert notes == ["resuming with the run's dropout=0.1 (not 0.3)"]  # as Python writes it
    with pytest.raises(TextgenError) as info:
        reconcile_config(saved, {"layers": 3}, notes)
    assert info.value.for_cli().startswith("--layers 3 differs from the run's --layers 2; ")
    assert info.value.for_cli().endswith("a new run with --overwrite or another --run-name")
    assert str(info.value).startswith("layers=3 differs from the run's layers=2; ")
    assert str(info.value).endswith("a new run with overwrite=True or another run_name")
    options = TrainOptions(batch_size=8, rng_seed=1)
    meta = {"training": {"batch_size": 4, "rng_seed": 7, "val_split": 0.1,
                         "steps_per_epoch": 12}}
    reconcile_options(options, {"batch_size"}, meta, notes)
    assert (options.batch_size, options.rng_seed, options.steps_per_epoch) == (4, 7, 12)
    assert notes[-1] == "resuming with the run's batch_size=4 (not 8)"  # only what was given


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


def test_missing_runs_give_the_same_advice_everywhere(cli, tmp_path, monkeypatch):
    for args in (["sample", "--model", "nope"], ["evaluate", "x.txt", "--model", "nope"],
                 ["classify", "predict", "hi", "--model", "nope"], ["info", "nope"],
                 ["export", "nope", "-o", str(tmp_path / "out")]):
        result = cli(*args, "--checkpoint-dir", str(tmp_path))
        assert result.exit_code == 2, result.stderr
        assert "no run named 'nope'" in result.stderr
        assert "list runs with textgen runs" in result.stderr, args
    # a folder given that is not there is said so (it read as an empty one); the folder
    # above the runs is named as such (it said run.json was missing)
    for args in (["sample"], ["serve"]):
        result = cli(*args, "--checkpoint-dir", str(tmp_path / "typo"))
        assert result.exit_code == 2
        assert f"in {tmp_path / 'typo'}/ (no such folder: check --checkpoint-dir); train one" \
            in result.stderr, args
    result = cli("sample", "--model", "mine", "--checkpoint-dir", str(tmp_path / "typo"))
    assert f"no run named 'mine' in {tmp_path / 'typo'}/ (no such folder: check " \
        "--checkpoint-dir) (and no such run folder)" in result.stderr
    monkeypatch.setenv("TEXTGEN_CHECKPOINT_DIR", str(tmp_path / "typo"))  # not an option
    result = cli("sample")
    assert "(no such folder: check TEXTGEN_CHECKPOINT_DIR)" in result.stderr
    monkeypatch.delenv("TEXTGEN_CHECKPOINT_DIR")
    for name in ("a", "b"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "run.json").write_text("{}")
    result = cli("sample", "--model", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert re.search(rf"error: {re.escape(str(tmp_path / 'runs'))}: a folder of runs \((a, b|b, "
                     rf"a)\), not a run; give one of them, e.g. ", result.stderr)
    # A path is named as a path, not looked up as a name.
    from textgen.generate.sampling import load_sampler

    gone = tmp_path / "no" / "run"
    with pytest.raises(TextgenError, match=f"^{gone}: no such run folder or .keras file"):
        load_sampler(gone)
    result = cli("info", str(gone), "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 2 and f"{gone}: no such run folder" in result.stderr
    # From Python the command that lists runs is named as a shell's
    with pytest.raises(TextgenError, match=r"; `textgen runs` in a shell lists them$"):
        load_sampler("nope", checkpoint_dir=tmp_path)


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
    assert "validation loss stopped improving" in result.stdout
    again = cli(*args, "--resume")
    assert again.exit_code == 0 and "stopped early at epoch" in again.stderr
    done = training["epochs_done"]
    assert (f"resume with a new --epochs above {done}, --max-time or a larger "
            "--patience") in " ".join(again.stderr.split())
    # Asked for more than the run had (an --epochs above those done, though below the 40
    # planned), it trains on; patience counts from there.
    more = cli(*args[:-2], "--epochs", str(done + 1), "--resume")
    assert more.exit_code == 0, more.stderr
    training = json.loads((tmp_path / "hamlet" / "run.json").read_text())["training"]
    assert training["epochs_done"] >= done + 1 and training["patience_from"] == done


@pytest.mark.parametrize(("epochs", "stopped_early"), [(3, False), (4, True)])
def test_a_run_that_reaches_its_planned_epochs_finished_not_stopped_early(
        tmp_path, monkeypatch, epochs, stopped_early):
    """A run whose patience ran out at its last planned epoch was reported as stopped by
    --patience, and a resume said it had "stopped early"."""
    from types import SimpleNamespace

    from textgen.runs import RunDir
    from textgen.training import fit

    monkeypatch.setattr(fit, "save_model_atomic", lambda model, path, **kwargs: None)
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    meta = {"mode": "generate", "config": {}, "training": {}}
    plan = fit.TrainingPlan(epochs=epochs, steps_per_epoch=1, backup_every=10, patience=2)
    callback = fit._checkpoint_callback(run, meta, plan, lambda logs: {})
    callback.set_model(SimpleNamespace(stop_training=False))
    for epoch, val_loss in enumerate([1.0, 2.0, 3.0]):
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
    assert meta["training"]["epochs_done"] == 3 and meta["training"]["best_epoch"] == 1
    assert bool(meta["training"].get("stopped_early")) is stopped_early
    assert callback.model.stop_training is stopped_early


def test_more_epochs_for_a_run_that_finished_its_plan_count_patience_from_there(
        cli, tiny_run, tiny_corpus, tmp_path):
    """A run whose patience ran out at its last planned epoch, resumed with more --epochs,
    counted patience from its old best and stopped after one epoch."""
    import shutil

    ckpt = tmp_path / "ck"
    shutil.copytree(tiny_run.path, ckpt / "done")
    meta = json.loads((ckpt / "done" / "run.json").read_text())
    # finished at epoch 2 of 2, the best at 1 and never beaten (patience 2: none left)
    meta["training"].update(epochs_done=2, epochs_requested=2, patience=2, best_epoch=1,
                            best_value=0.0, stopped_early=False)
    (ckpt / "done" / "run.json").write_text(json.dumps(meta))
    result = cli("train", str(tiny_corpus), "--resume", "--run-name", "done", "--epochs", "9",
                 "--patience", "2", "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 0, result.stderr
    training = json.loads((ckpt / "done" / "run.json").read_text())["training"]
    assert training["patience_from"] == 2 and training["stopped_early"] is True, training
    assert training["epochs_done"] == 4  # two epochs of patience, counted from here


def test_resume_refuses_another_text_and_overwrite_refuses_a_folder_of_other_files(
        cli, tiny_corpus, tmp_path):
    args = [*TINY_GENERATOR, "--epochs", "1", "--base", "none", "--checkpoint-dir",
            str(tmp_path)]
    assert cli("train", str(tiny_corpus), *args).exit_code == 0
    other = tmp_path / "other.txt"
    other.write_text(tiny_corpus.read_text()[::-1])  # the same characters, another text
    resumed = cli("train", str(other), *args, "--run-name", "hamlet", "--resume",
                  "--epochs", "2")
    assert resumed.exit_code == 2
    assert "other.txt: not the text run hamlet was trained on" in resumed.stderr
    assert "--base " in resumed.stderr  # the way to fine-tune the run on the new text
    notes = tmp_path / "mine" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("keep")
    for extra in ([], ["--overwrite"]):
        refused = cli("train", str(tiny_corpus), *args, "--run-name", "mine", *extra)
        assert refused.exit_code == 2 and "holds files but no run" in refused.stderr
    assert notes.read_text() == "keep" and len(list(notes.parent.iterdir())) == 1


def test_a_diverging_run_stops_with_one_line_and_leaves_no_model(cli, tiny_corpus, tmp_path):
    result = cli("train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "2", "--base", "none",
                 "--learning-rate", "1e30", "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "in epoch 1: the model diverged" in result.stderr
    assert not (tmp_path / "hamlet").exists()
    # no folder left: --overwrite is not advised (it was, and then refused as needless)
    assert result.stderr.strip().endswith("start again with a lower --learning-rate")


def test_resume_notes_a_spent_schedule_and_a_run_that_is_not_there(cli, tiny_corpus, tmp_path):
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--base", "none", "--checkpoint-dir",
            str(tmp_path)]
    missing = cli(*args, "--epochs", "1", "--resume", "--run-name", "hamlett")
    assert missing.exit_code == 0, missing.stderr
    assert f"no run hamlett in {tmp_path} yet: starting it (a misspelt name?" in missing.stderr
    more = cli(*args, "--epochs", "2", "--resume", "--run-name", "hamlett")
    assert more.exit_code == 0, more.stderr
    assert ("the run's learning rate decays over its first 1 epoch: the epochs after train at "
            "its floor, 10% of the peak") in more.stderr


def test_training_from_python_leaves_the_programs_random_numbers_alone(tiny_corpus, tmp_path,
                                                                     capsys):
    import random

    import numpy as np

    from textgen.generate.train import train_generator

    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    train_generator(tiny_corpus, checkpoint_dir=tmp_path, epochs=1, steps_per_epoch=1,
                    batch_size=4, seq_length=8, units=8, embed_dim=4, layers=1, base="none")
    assert (np.random.rand(), random.random()) == expected
    # Its notes are one line each, as the CLI's (not cut at a pipe's 80 columns).
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes and max(map(len, notes)) > 80


@pytest.mark.parametrize("call,field", [
    (lambda d: __import__("textgen").train_generator([], checkpoint_dir=d), "corpus"),
    (lambda d: __import__("textgen").train_generator(
        ["a.txt", "b.txt"], doc_separator=5, checkpoint_dir=d), "doc_separator"),
    (lambda d: __import__("textgen").train_generator("a.txt", encoding=5, checkpoint_dir=d),
     "encoding"),
    (lambda d: __import__("textgen").train_generator(".", glob=5, checkpoint_dir=d), "glob"),
    (lambda d: __import__("textgen").train_classifier("r.csv", label_column=5, checkpoint_dir=d),
     "label_column"),
    (lambda d: __import__("textgen").train_classifier("r.csv", text_column=5,
                                                      checkpoint_dir=d), "text_column"),
    (lambda d: __import__("textgen").train_classifier("r", classes=[1, 2], checkpoint_dir=d),
     "classes"),
    (lambda d: __import__("textgen").load_sampler("run", checkpoint_dir=5), "checkpoint_dir"),
    # an AttributeError from inside ('int' object has no attribute 'overridden')
    (lambda d: __import__("textgen").evaluate_data("r", "x", decoding=5), "decoding"),
    (lambda d: __import__("textgen").evaluate_data("r", "x", columns=5), "columns"),
    (lambda d: __import__("textgen").evaluate_text("a.txt", "x", decoding=5), "decoding"),
])
def test_the_python_api_names_the_argument_of_a_wrong_type(tmp_path, call, field):
    """Each was a raw IndexError, TypeError or AttributeError from deep inside."""
    with pytest.raises(FieldError) as error:
        call(tmp_path)
    assert error.value.field == field and str(error.value).startswith(field)



def test_a_loop_of_evaluations_prints_no_retracing_warnings(tiny_corpus, tiny_run, caplog):
    """From the 5th evaluate_text in a process, TensorFlow warned on stderr that textgen's own
    functions (built afresh per call) were retraced."""
    import logging

    from textgen import evaluate_text
    logger = logging.getLogger("tensorflow")
    level, filters = logger.level, list(logger.filters)
    logger.setLevel(logging.WARNING)  # as in a program that never ran the quiet CLI
    try:
        for _ in range(6):
            evaluate_text(tiny_corpus, tiny_run)
        assert [r for r in caplog.records if "retracing" in r.getMessage()] == []
        assert logger.filters == filters  # the caller's own functions: warned as before
        # and meanwhile in its other threads: a record from another thread passes
        from textgen.tf_setup import OwnRetracingUnsaid

        unsaid, record = OwnRetracingUnsaid(), logging.LogRecord(
            "tensorflow", logging.WARNING, "", 0, "5 out of the last 5 calls to <function f> "
            "triggered tf.function retracing", None, None)
        assert not unsaid.filter(record)
        record.thread = -1
        assert unsaid.filter(record)
    finally:
        logger.setLevel(level)


def test_the_api_keeps_the_random_state_takes_a_checkpoint_and_trains_one_at_a_time(
        tiny_run, tiny_classifier_run, tiny_corpus, tmp_path):
    """evaluate_text changed Python's random numbers (Keras' initializers draw as a model
    loads); the functions that take a model had no `checkpoint` as the CLI's --checkpoint;
    a second training in a process ended in TensorFlow's own errors or in changed figures."""
    import random

    from textgen import evaluate_data, evaluate_text, find_model, predict_texts, train_generator
    from textgen.training import lifecycle

    random.seed(3)
    state = random.getstate()
    scores = evaluate_text(tiny_corpus, tiny_run, checkpoint="last")
    assert random.getstate() == state
    assert scores["chars"] == len(tiny_corpus.read_text(encoding="utf-8"))
    (last,) = predict_texts(["a fine film"], tiny_classifier_run, checkpoint="last")
    assert set(last["probabilities"]) == {"neg", "pos"}
    metrics = evaluate_data(tiny_classifier_run.path.parent.parent / "data",
                            tiny_classifier_run, checkpoint="last")
    assert int(metrics.confusion.sum()) == 60
    with pytest.raises(FieldError, match="^checkpoint must be one of best, last"):
        predict_texts(["a"], tiny_classifier_run, checkpoint="newest")
    # the model left out is the latest run, as for load_sampler (it was a TypeError)
    for evaluate in (lambda: evaluate_text(tiny_corpus, checkpoint_dir=tmp_path),
                     lambda: evaluate_data(tmp_path, checkpoint_dir=tmp_path),
                     lambda: predict_texts(["a"], checkpoint_dir=tmp_path)):
        with pytest.raises(TextgenError, match="^no trained (generate|classify) model found in "
                                               ".*; train one first"):
            evaluate()
    with pytest.raises(FieldError, match="^checkpoint must be one of best, last"):
        predict_texts(["a"], find_model(tiny_classifier_run), checkpoint="newest")
    # advice in the caller's terms (it named the CLI's commands)
    with pytest.raises(TextgenError, match="is a generate run, not a classify run; use it "
                                           "with textgen.load_sampler or evaluate_text$"):
        predict_texts(["a"], tiny_run)
    assert lifecycle._training_here.acquire(blocking=False)  # a training under way
    try:
        with pytest.raises(TextgenError, match="^another training is running in this process"):
            train_generator(tiny_corpus, checkpoint_dir=tmp_path, epochs=1, base="none")
    finally:
        lifecycle._training_here.release()
    assert list(tmp_path.iterdir()) == []


def test_the_python_api_says_what_the_cli_says_about_the_file_system(
        tiny_run, tiny_corpus, tmp_path):
    """A name too long, or a checkpoint folder that is a file, raised the OS's OSError from
    the API where the CLI says one line; a run name passed where `console` was the second
    parameter ended in AttributeError."""
    import inspect

    import textgen

    with pytest.raises(TextgenError, match=r"x{300}/run\.json: name too long$") as too_long:
        textgen.load_sampler("x" * 300, checkpoint_dir=tmp_path)
    assert isinstance(too_long.value.__cause__, OSError)  # the cause kept, for a program
    with pytest.raises(TextgenError, match="name too long"):
        textgen.predict_texts(["a"], "y" * 300, checkpoint_dir=tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(TextgenError, match=f"^checkpoint_dir is {a_file}, not a folder; give "
                                           "the folder that holds the runs"):
        textgen.train_generator(tiny_corpus, checkpoint_dir=a_file, run_name="tiny",
                                base="none", units=8, layers=1, epochs=1, steps_per_epoch=1)
    assert a_file.read_text() == "mine"
    with pytest.raises(TypeError, match="positional argument"):
        textgen.train_generator(tiny_corpus, "my-run")
    assert textgen.load_sampler(tiny_run).generate("To", length=5, rng_seed=1).startswith("To")
    assert textgen.load_sampler.__name__ == "load_sampler"
    assert "checkpoint_dir" in inspect.signature(textgen.load_sampler).parameters
    # a process pool pickles the function by its name (it found another object there)
    assert pickle.loads(pickle.dumps(textgen.find_model)) is textgen.find_model


def test_overlapping_calls_give_the_program_its_own_floatx_back():
    """floatx is the process's: of two calls in threads, the second to start ending last, it
    put back the float32 it had saved from the first: the program's float64 was lost."""
    import threading

    import keras

    from textgen.tf_setup import keras_defaults

    keras.config.set_floatx("float64")
    try:
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
        seen = []

        def first() -> None:
            with keras_defaults():
                first_in.set()
                second_in.wait(10)
            first_out.set()

        def second() -> None:
            first_in.wait(10)
            with keras_defaults():
                second_in.set()
                first_out.wait(10)
                seen.append(keras.config.floatx())  # still held: a call is running

        threads = [threading.Thread(target=f) for f in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert seen == ["float32"]
        assert keras.config.floatx() == "float64"
    finally:
        keras.config.set_floatx("float32")


def test_a_program_that_imports_tensorflow_through_textgen_keeps_its_state(tmp_path):
    """In a fresh process (TensorFlow not yet imported): its import drew from Python's random
    numbers, silenced the process's stderr for seconds, set the tensorflow logger to ERROR
    and added a warnings filter. The CLI asks for that quiet; a program keeps its own."""
    import subprocess
    import sys

    script = """
import logging, random, sys, warnings
random.seed(5); expected = random.random(); random.seed(5)
from textgen import evaluate_text, load_sampler, train_generator  # rich's import draws too
assert random.random() == expected, "random state after importing the API"
random.seed(5)
logging.getLogger("tensorflow").setLevel(logging.INFO)
from textgen.tf_setup import import_tensorflow
import_tensorflow()
assert random.random() == expected, "random state"
assert logging.getLogger("tensorflow").level == logging.INFO, "logger"
assert not [f for f in warnings.filters if "keras|tensorflow" in str(getattr(f[3], "pattern",
                                                                             f[3]))], "warnings"
print("kept")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "kept", done.stderr[-2000:]


def test_a_taken_run_name_is_refused_in_each_shells_words(cli, tiny_run):
    from textgen.generate.train import train_generator

    corpus, ckpt = tiny_run.read_meta()["corpus"], tiny_run.path.parent
    result = cli("train", corpus, "--run-name", tiny_run.name, "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 2
    assert (f"--run-name '{tiny_run.name}' is taken: {tiny_run.path} already holds a run; pass "
            "--resume to continue it, --overwrite to start it again, or --run-name NAME for a "
            "new one") in result.stderr
    with pytest.raises(FieldError, match="pass resume=True to continue it, overwrite=True to "
                                         "start it again, or run_name='NAME' for a new one"):
        train_generator(corpus, run_name=tiny_run.name, checkpoint_dir=ckpt)


def test_the_python_api_is_told_its_keywords_not_the_cli_flags(tiny_corpus, tmp_path):
    """These errors named --resume, --overwrite and --batch-size to a program that passed
    resume=, overwrite= and batch_size=."""
    from textgen.generate.train import train_generator

    with pytest.raises(FieldError, match=r"^resume continues a run and overwrite=True starts "
                                         r"it again; give one$"):
        train_generator(tiny_corpus, resume=True, overwrite=True, checkpoint_dir=tmp_path)
    with pytest.raises(FieldError, match=r"^batch_size 1000000000 needs about .* use "
                                         r"batch_size=\d+ or less$"):
        train_generator(tiny_corpus, batch_size=10**9, base="none", checkpoint_dir=tmp_path)
    # a run folder without a model yet (it named `textgen train --resume`)
    from textgen.generate.sampling import load_sampler

    run = train_generator(tiny_corpus, epochs=1, steps_per_epoch=1, units=8, embed_dim=4,
                          seq_length=8, batch_size=2, base="none", checkpoint_dir=tmp_path).run
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(run.meta, empty / "run.json")
    with pytest.raises(TextgenError, match=r"train it first \(or resume its training: "
                                           r"resume=True\)$") as missing:
        load_sampler(empty)
    assert missing.value.for_cli().endswith("(or resume its training: --resume)")


def test_the_notes_training_prints_name_keywords_in_python_and_flags_on_the_cli(
        cli, tiny_corpus, tmp_path):
    """The same training's notes: `learning_rate=0.005` to a program, `--learning-rate 0.005`
    on the command line (they named CLI flags to both)."""
    from textgen.generate.train import train_generator

    tiny = {"units": 16, "embed_dim": 8, "seq_length": 16, "batch_size": 4,
            "steps_per_epoch": 2, "epochs": 1, "base": "none", "checkpoint_dir": tmp_path}
    result = train_generator(tiny_corpus, run_name="py", **tiny)
    notes = " ".join(result.notes)
    assert "chose layers=2, learning_rate=0.005, dropout=0.2: " in notes
    assert "(precision='float32' or precision='mixed_bfloat16' to choose)" in notes
    assert "--" not in notes
    flags = cli("train", str(tiny_corpus), "--run-name", "cli", "--checkpoint-dir",
                str(tmp_path), "--units", "16", "--embed-dim", "8", "--seq-length", "16",
                "--batch-size", "4", "--steps-per-epoch", "2", "--epochs", "1", "--base", "none")
    assert flags.exit_code == 0, flags.stderr
    said = " ".join(flags.stderr.split())
    assert "note: chose --layers 2, --learning-rate 0.005, --dropout 0.2: " in said
    assert "(--precision float32 or --precision mixed_bfloat16 to choose)" in said


def test_patience_without_a_validation_split_says_it_watches_the_training_loss(cli, tiny_corpus,
                                                                              tmp_path):
    """--patience 1 --val-split 0 switched to the training loss without a word."""
    result = cli("train", str(tiny_corpus), *TINY_GENERATOR, "--base", "none", "--epochs", "1",
                 "--patience", "1", "--val-split", "0", "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert ("note: --patience 1 watches the training loss: nothing is held out for validation"
            in " ".join(result.stderr.split()))


def test_a_text_too_short_for_its_windows_writes_its_numbers_alike(tmp_path):
    """'windows of 5000 (training needs 5001 plus 5,001 for validation)' mixed the forms."""
    text = tmp_path / "short.txt"
    text.write_text("Her father loved me, oft invited me. " * 80)  # 2,960 characters
    code, _, stderr = run_without_tensorflow("train", str(text), "--seq-length", "5000",
                                             "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2
    assert ("too short for windows of 5,000 (training needs 5,001 plus 5,001 for validation)"
            in " ".join(stderr.split()))
