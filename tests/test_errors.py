"""Errors carry the field they are about; each shell names it its own way, and nothing
reads a message back (no TensorFlow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from textgen.errors import FieldError, TextgenError
from textgen.generate.interactive import as_prompt_text
from textgen.generate.sampling import SamplingSettings
from textgen.serve.requests import COMPLETION_NAMES, RequestError
from textgen.training.options import TrainOptions

UNKNOWN_SEED = FieldError("seed", "has characters the model never saw: 'ž'; remove them or "
                                  "pass {fix} to drop them", fix=("skip_unknown", True))


def test_each_shell_names_the_field_and_the_fix_its_own_way():
    assert str(UNKNOWN_SEED) == ("seed has characters the model never saw: 'ž'; remove "
                                 "them or pass skip_unknown=True to drop them")
    assert UNKNOWN_SEED.for_cli() == ("--seed has characters the model never saw: 'ž'; remove "
                                      "them or pass --skip-unknown to drop them")
    # at the prompt the seed is the line typed, not a command (there is no `:seed`)
    assert as_prompt_text(UNKNOWN_SEED) == ("the seed has characters the model never saw: 'ž'; "
                                            "remove them or pass :skip-unknown on to drop "
                                            "them")
    refused = RequestError.of_error(UNKNOWN_SEED)
    assert (refused.status, refused.param) == (400, "seed")
    assert refused.message.startswith("'seed' has characters")
    assert refused.message.endswith('pass "skip_unknown": true to drop them')
    # The completions API calls the seed `prompt` (and the random seed `seed`).
    renamed = RequestError.of_error(UNKNOWN_SEED, COMPLETION_NAMES)
    assert renamed.param == "prompt" and renamed.message.startswith("'prompt' has characters")


def test_advice_in_any_error_is_written_as_each_shell_writes_settings(tmp_path):
    """Not only a field's error: any advice naming an option reads as the shell showing it."""
    from textgen.runs import find_model

    with pytest.raises(TextgenError) as info:
        find_model(None, tmp_path)
    assert info.value.for_cli().endswith("or pass --model RUN")
    assert str(info.value).endswith("or pass model='RUN'")  # the Python API's keyword
    refused = RequestError.of_error(info.value)
    assert (refused.status, refused.param) == (400, None)
    assert refused.message.endswith('or pass "model": "RUN"')


@pytest.mark.parametrize(("make", "field", "cli"), [
    (lambda: SamplingSettings(top_k=0), "top_k", "--top-k must be >= 1, got 0"),
    (lambda: SamplingSettings(temperature=float("nan")), "temperature",
     "--temperature must be a finite number >= 0 (0 = greedy), got nan"),
    (lambda: TrainOptions(batch_size=0), "batch_size", "--batch-size must be >= 1, got 0"),
    (lambda: TrainOptions(strategy="several"), "strategy",
     "--strategy must be one of auto, default, mirrored, multi-worker; got 'several'"),
    (lambda: TrainOptions(run_name="../out"), "run_name", "--run-name '../out' is not a run"),
])
def test_checks_raise_the_field_they_are_about(make, field, cli):
    with pytest.raises(FieldError) as error:
        make()
    assert error.value.field == field
    assert error.value.for_cli().startswith(cli)
    # The Python API names the keywords: --run-name ... --checkpoint-dir is run_name ...
    # checkpoint_dir.
    keywords = re.sub(r"--([a-z-]+)", lambda flag: flag[1].replace("-", "_"),
                      error.value.for_cli())
    assert str(error.value) == keywords


def test_a_reworded_check_keeps_its_field_on_the_cli(cli, monkeypatch):
    from textgen.generate import sampling

    check = sampling.check_field
    monkeypatch.setattr(sampling, "check_field",
                        lambda ok, field, problem: check(ok, field, "reads otherwise now"))
    result = cli("sample", "--top-p", "1.5")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --top-p reads otherwise now"


def test_an_interrupted_new_run_with_nothing_saved_says_so(tmp_path, capsys):
    """Ctrl-C before a new run's first step removes its folder: the message does not send the
    user to --resume a run that is not there."""
    import signal

    import typer

    from textgen.cli.app import run_training
    from textgen.runs import RunDir
    from textgen.training.fit import TrainingInterrupted

    # From Python, the exception itself says how to go on
    assert str(TrainingInterrupted(RunDir(tmp_path / "r"), 1, 4)) == (
        f"training interrupted in epoch 2 after step 4; the same call with resume=True goes on "
        f"from {tmp_path / 'r'}")
    assert str(TrainingInterrupted(RunDir(tmp_path / "r"), 2, 0, finished=True)) == (
        f"training interrupted as it ended; everything is saved in {tmp_path / 'r'}")

    def stopped():
        raise TrainingInterrupted(RunDir(tmp_path / "gone"), 0, 0, signal.SIGINT)

    with pytest.raises(typer.Exit) as exit_info:
        run_training(stopped)
    assert exit_info.value.exit_code == 130
    said = capsys.readouterr().err
    assert "nothing was saved yet; run the same command to start again" in said
    assert "--resume" not in said


@pytest.mark.parametrize(("saved_step", "said"), [
    (0, "after step 10, before the epoch was saved; the epochs before it are saved in"),
    (8, "after step 10, before the epoch was saved; its first 8 steps are saved in"),
    (10, "after step 10; everything up to there is saved in")])
def test_an_interrupt_says_what_is_saved(tmp_path, capsys, saved_step, said):
    """Ctrl-C at an epoch's last step (in its validation, say) finds the epoch not yet
    committed: the message says what --resume goes on from, not "everything"."""
    import signal

    import typer

    from textgen.cli.app import run_training
    from textgen.runs import RunDir
    from textgen.training.fit import TrainingInterrupted

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.meta.write_text("{}")

    def stopped():
        raise TrainingInterrupted(run, 1, 10, signal.SIGINT, saved_step)

    with pytest.raises(typer.Exit):
        run_training(stopped)
    assert said in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("value", ["\n---\n", "\\n", "a\\b", "*.md", "it's", "", "\t"])
def test_an_option_in_a_message_is_written_as_a_shell_takes_it_back(value):
    """Values are quoted for a shell and kept on one line; an option the CLI unescapes reads
    back as the value (a literal backslash-n and a line break were written alike)."""
    import shlex

    from textgen.errors import as_typed
    from textgen.reading import unescape

    flag, typed = shlex.split(as_typed("doc_separator", value))
    assert flag == "--doc-separator" and unescape(typed) == value
    assert "\n" not in as_typed("seed", "a\nb")


def test_a_worker_gone_from_the_cluster_is_the_users_error_not_a_bug():
    """A multi-worker peer killed mid-run: TensorFlow's UnavailableError was called a bug in
    textgen, with its traceback."""
    from textgen.errors import known_failure

    UnavailableError = type("UnavailableError", (Exception,), {})  # as TensorFlow names it
    gone = UnavailableError(
        "Graph execution error:\n\nDetected at node CollectiveReduceV2\nCollective ops is "
        "aborted by: The following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:1")
    known = known_failure(gone)
    assert known is not None and known.for_cli() == (
        "another worker stopped or cannot be reached (Collective ops is aborted by: The "
        "following tasks are unhealthy (stopped sending heartbeats): /job:worker/replica:0/"
        "task:1); start every worker again with --resume")
    assert str(known).endswith("start every worker again with resume=True")


def test_an_empty_checkpoint_dir_variable_is_unset_as_the_cli_reads_it(monkeypatch):
    """The API read TEXTGEN_CHECKPOINT_DIR= as '.', training into the current folder."""
    from textgen.runs import CHECKPOINT_DIR_VARIABLE, default_checkpoint_dir
    from textgen.training.options import TrainOptions

    monkeypatch.setenv(CHECKPOINT_DIR_VARIABLE, "")
    assert default_checkpoint_dir() == Path("checkpoints")
    assert TrainOptions().checkpoint_dir == Path("checkpoints")
    with pytest.raises(FieldError, match="^checkpoint_dir is empty; give a file or folder"):
        TrainOptions(checkpoint_dir="")


def test_a_worker_interrupted_names_the_run_the_chief_saves(tmp_path):
    """A non-chief worker trains in a temporary folder it removes: its interruption named
    that folder ("everything is saved in /tmp/textgen-worker1-...")."""
    import signal

    from textgen.runs import RunDir
    from textgen.training.fit import TrainingInterrupted
    from textgen.training.lifecycle import writable_run

    run = RunDir(tmp_path / "speech")
    with (pytest.raises(TrainingInterrupted) as info,
          writable_run(run, is_chief=False, worker_index=1) as out):
        assert out.path != run.path
        raise TrainingInterrupted(out, 2, 0, signal.SIGTERM, finished=True)
    assert info.value.run.path == run.path and info.value.finished
    assert str(info.value) == ("training interrupted as it ended; everything is saved in "
                               f"{run.path}")
