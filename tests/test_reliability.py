"""Crash-safe training, safe loading and hostile input: nothing lost, nothing trusted blindly."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TINY_GENERATOR, run_without_tensorflow
from textgen.errors import TextgenError
from textgen.generate.data import Vocabulary, split_by_position
from textgen.reading import read_text

TINY = [*TINY_GENERATOR, "--steps-per-epoch", "6", "--backup-every", "2",
        "--learning-rate", "0.01"]


def start_training(corpus: Path, ckpt: Path, epochs: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "textgen", "train", str(corpus), "--checkpoint-dir", str(ckpt),
         "--epochs", str(epochs), *TINY, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def lock_held_by_another_process(lock: Path) -> Iterator[subprocess.Popen]:
    """A process holding `lock` as a trainer does (flock, its pid inside) until the end."""
    holder = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); "
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); "
              "print('held', flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", holder, str(lock)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()


def assert_run_files_load(run: Path) -> None:
    """Every file a run folder holds under its final name is complete and loads."""
    import keras

    for path in run.rglob("*"):
        if path.name.startswith(".") or path.is_dir():
            continue  # temporary files of a killed writer are never under a final name
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            rows = list(csv.DictReader(path.open(encoding="utf-8")))
            epochs = [int(r["epoch"]) for r in rows]
            assert epochs == list(range(1, len(epochs) + 1)), epochs
        elif path.suffix == ".keras":
            keras.saving.load_model(path, safe_mode=True, compile=False)


def kill_and_resume_cycles(tmp_path: Path, tiny_corpus: Path, kills: int, epochs: int = 6):
    ckpt = tmp_path / "ck"
    run = ckpt / tiny_corpus.stem
    rng = random.Random(kills)
    for cycle in range(kills):
        extra = ["--resume"] if cycle else []
        proc = start_training(tiny_corpus, ckpt, epochs, *extra)
        time.sleep(rng.uniform(3.0, 9.0))
        proc.kill()
        proc.wait()
        if run.exists():
            assert_run_files_load(run)
    finish = start_training(tiny_corpus, ckpt, epochs, "--resume")
    out, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert_run_files_load(run)
    meta = json.loads((run / "run.json").read_text())
    assert meta["training"]["epochs_done"] == epochs
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert not (run / "backup").exists() and not list(run.glob(".*.tmp*"))
    return rows


def test_killed_training_resumes_and_never_leaves_broken_files(tmp_path, tiny_corpus):
    """Two random kills here; benchmarks/kill_resume.py runs ten and more."""
    kill_and_resume_cycles(tmp_path, tiny_corpus, kills=2)


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_prints_how_to_resume_and_exits(tmp_path, tiny_corpus, stop,
                                                                 code):
    """kill, timeout, Docker and job schedulers send SIGTERM: treated like Ctrl-C."""
    ckpt = tmp_path / "ck"
    proc = start_training(tiny_corpus, ckpt, 200)
    history = ckpt / tiny_corpus.stem / "history.csv"
    deadline = time.monotonic() + 120
    while not history.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "--resume" in err and "Traceback" not in err and stop.name in err
    assert not (ckpt / tiny_corpus.stem / ".lock").exists()
    if stop == signal.SIGTERM:
        return  # resuming is the same after either signal
    meta = json.loads((ckpt / tiny_corpus.stem / "run.json").read_text())
    done = meta["training"]["epochs_done"]
    resumed = start_training(tiny_corpus, ckpt, done + 1, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"epoch {done + 1:>3}/{done + 1}" in err


def test_mid_epoch_backup_resumes_at_the_next_step(cli, tiny_corpus, tmp_path):
    """A backup taken at step 4 of epoch 2 is where --resume starts; the loss goes on."""
    from textgen.runs import RunDir

    ckpt = tmp_path / "ck"
    args = ["train", str(tiny_corpus), "--checkpoint-dir", str(ckpt), *TINY]
    assert cli(*args, "--epochs", "1").exit_code == 0
    run = RunDir(ckpt / tiny_corpus.stem)
    # Simulate a crash in epoch 2 after step 4: its backup is the model of that moment.
    import keras

    model = keras.saving.load_model(run.last, safe_mode=True)
    run.backup.mkdir()
    model.save(run.backup / "epoch-000001-step-000000004.keras")
    resumed = cli(*args, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    # Only the epoch's last 2 of 6 steps were run, and the epoch counted as epoch 2.
    assert re.search(r"steps this session\s*│\s*2\s", resumed.stdout), resumed.stdout
    assert "epoch   2/2" in resumed.stderr and "epoch   1/2" not in resumed.stderr
    rows = run.read_history()
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])  # continues, does not restart
    assert not run.backup.exists()


@pytest.mark.parametrize("carried", ['[]', '{"logs": {"loss": NaN, "acc": "x"}, '
                                     '"spent_s": "x", "minutes": "5"}'])
def test_a_backups_edited_figures_are_left_out_and_the_resume_goes_on(carried, tmp_path):
    """They raised AttributeError/TypeError, and a NaN loss ended every later resume as
    "diverged"."""
    from textgen.runs import RunDir
    from textgen.training.fit import resume_point

    run = RunDir(tmp_path / "r")
    run.backup.mkdir(parents=True)
    (run.backup / "epoch-000001-step-000000004.keras").write_bytes(b"model")
    (run.backup / "epoch-000001-step-000000004.json").write_text(carried)
    start = resume_point(run, {"training": {"epochs_done": 1}})
    assert (start.epoch, start.step, start.spent_s, start.minutes) == (1, 4, None, None)
    assert start.logs in (None, {})
    (run.backup / "epoch-000001-step-000000004.json").write_text(
        '{"logs": {"loss": 2.5, "accuracy": 0.25}, "spent_s": 30.5, "minutes": 5}')
    start = resume_point(run, {"training": {"epochs_done": 1}})
    assert (start.logs, start.spent_s, start.minutes) == (
        {"loss": 2.5, "accuracy": 0.25}, 30.5, 5)


def test_a_damaged_backup_says_to_delete_it_to_go_on_from_last_keras(cli, tiny_corpus,
                                                                    tmp_path):
    ckpt = tmp_path / "ck"
    args = ["train", str(tiny_corpus), "--checkpoint-dir", str(ckpt), *TINY]
    assert cli(*args, "--epochs", "1").exit_code == 0
    backup = ckpt / tiny_corpus.stem / "backup"
    backup.mkdir()
    whole = (ckpt / tiny_corpus.stem / "last.keras").read_bytes()
    (backup / "epoch-000001-step-000000004.keras").write_bytes(whole[:len(whole) // 2])
    resumed = cli(*args, "--epochs", "2", "--resume")
    assert resumed.exit_code == 2
    assert resumed.stderr.strip().splitlines()[-1].endswith(
        f"epoch-000001-step-000000004.keras: a damaged mid-epoch backup; delete {backup} to go "
        "on from last.keras (the end of epoch 1)")
    assert "Traceback" not in resumed.stderr
    for path in backup.iterdir():
        path.unlink()
    backup.rmdir()
    assert cli(*args, "--epochs", "2", "--resume").exit_code == 0


def test_a_second_signal_while_the_backup_saves_still_says_how_to_resume(cli, tiny_corpus,
                                                                          tmp_path, monkeypatch):
    """A second Ctrl-C (or SIGTERM) during the backup's save escaped as a bare
    KeyboardInterrupt: exit 130 whatever the signal, and no word on what was saved."""
    from textgen.training import fit

    ckpt = tmp_path / "ck"
    args = ["train", str(tiny_corpus), "--checkpoint-dir", str(ckpt), *TINY]
    assert cli(*args, "--epochs", "1").exit_code == 0
    whole_save = fit.save_model_atomic

    def signalled_while_saving(model, path):  # the first backup's save, then the one after it
        if "backup" in str(path):
            raise KeyboardInterrupt
        whole_save(model, path)

    monkeypatch.setattr(fit, "save_model_atomic", signalled_while_saving)
    result = cli(*args, "--epochs", "2", "--resume")
    assert result.exit_code == 130 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "before the epoch was saved; the epochs before it are saved in "
        f"{ckpt / tiny_corpus.stem}; run the same command with --resume to continue")
    assert not list((ckpt / tiny_corpus.stem / "backup").glob("*.keras"))
    monkeypatch.undo()
    resumed = cli(*args, "--epochs", "2", "--resume")
    assert resumed.exit_code == 0 and "epoch   2/2" in resumed.stderr


def test_a_second_ctrl_c_that_tensorflow_turns_into_another_error_is_still_a_stop(
        cli, tiny_corpus, tmp_path, monkeypatch):
    """Two Ctrl-C while the first step was traced: TensorFlow turned the second one's
    KeyboardInterrupt into a ValueError, reported as a bug in textgen (exit 1)."""
    import os
    import signal

    from textgen.training import fit

    real_progress = fit._progress_callback

    def two_signals_while_tracing(*args, **kwargs):
        shown = real_progress(*args, **kwargs)

        def on_train_batch_end(batch, logs=None):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)  # the handler raises at the second
            except KeyboardInterrupt:  # as a layer being traced turns it into another error
                raise ValueError("Tried to convert 'x' to a tensor and failed. Error: None "
                                 "values not supported.") from None

        shown.on_train_batch_end = on_train_batch_end
        return shown

    monkeypatch.setattr(fit, "_progress_callback", two_signals_while_tracing)
    result = cli("train", str(tiny_corpus), "--checkpoint-dir", str(tmp_path / "ck"), *TINY,
                 "--epochs", "2")
    assert result.exit_code == 130, result.stderr
    assert "Traceback" not in result.stderr and "bug" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("interrupted (SIGINT) in epoch 1")


def test_a_signal_after_the_last_step_still_stops_and_says_what_is_saved(
        cli, tiny_corpus, tmp_path, monkeypatch):
    """SIGTERM during the last epoch's validation came after the last step's check: it was
    ignored, and the command went on and exited 0 (a classifier's test-set evaluation can
    take minutes)."""
    from textgen.training import fit

    real_progress = fit._progress_callback

    def signalled_in_validation(*args, **kwargs):
        shown = real_progress(*args, **kwargs)

        def on_test_batch_end(batch, logs=None):
            if batch == 0:  # once
                os.kill(os.getpid(), signal.SIGTERM)

        shown.on_test_batch_end = on_test_batch_end
        return shown

    monkeypatch.setattr(fit, "_progress_callback", signalled_in_validation)
    ckpt = tmp_path / "ck"
    result = cli("train", str(tiny_corpus), "--checkpoint-dir", str(ckpt), *TINY,
                 "--epochs", "1")
    assert result.exit_code == 143, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"interrupted (SIGTERM) as training ended; everything is saved in "
        f"{ckpt / tiny_corpus.stem}")
    meta = json.loads((ckpt / tiny_corpus.stem / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 1
    assert (ckpt / tiny_corpus.stem / "last.keras").is_file()


def test_an_overwrite_interrupted_says_to_resume_in_place_of_it(cli, tiny_corpus, tmp_path,
                                                                 monkeypatch):
    """Its advice, "the same command with --resume", was refused: --resume and --overwrite
    are not given together."""
    from textgen.training import fit

    ckpt = tmp_path / "ck"
    args = ["train", str(tiny_corpus), "--checkpoint-dir", str(ckpt), *TINY]
    assert cli(*args, "--epochs", "1").exit_code == 0
    whole_save, saved = fit.save_model_atomic, []

    def signalled_in_the_second_epoch(model, path, **options):  # after epoch 1's models
        if "epoch-" in path.name and any("last" in p.name for p in saved):
            raise KeyboardInterrupt
        saved.append(path)
        whole_save(model, path, **options)

    monkeypatch.setattr(fit, "save_model_atomic", signalled_in_the_second_epoch)
    result = cli(*args, "--epochs", "2", "--overwrite")
    assert result.exit_code == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "run the same command with --resume in place of --overwrite to continue")
    monkeypatch.undo()
    assert cli(*args, "--epochs", "2", "--resume").exit_code == 0


def test_sampling_a_run_in_its_first_epoch_says_to_wait_not_to_resume(cli, tiny_run,
                                                                        tmp_path):
    """It said "train it first (or resume its training: --resume)", which the run's lock
    would refuse."""
    import shutil

    run = tmp_path / "ck" / "busy"
    shutil.copytree(tiny_run.path, run)
    for name in ("best.keras", "last.keras"):
        (run / name).unlink()
    with lock_held_by_another_process(run / ".lock") as trainer:
        result = cli("sample", "--model", str(run), "--length", "10")
        assert result.exit_code == 2
        assert result.stderr.strip().endswith(
            f"yet; it is being trained (pid {trainer.pid}): its first model is saved when its "
            "first epoch ends, so wait for that")
        # info said "unfinished: --resume trains on", which the lock would refuse
        info = cli("info", str(run))
        assert info.exit_code == 0
        assert f"(being trained now, pid {trainer.pid})" in " ".join(info.stdout.split())
    result = cli("sample", "--model", str(run), "--length", "10")  # the lock went with it
    assert result.exit_code == 2 and "train it first" in result.stderr


def test_a_samplers_probe_of_the_lock_never_turns_a_trainer_away(tmp_path):
    """`sample` asks whether a run is being trained with a shared lock held for microseconds;
    a trainer starting just then was refused as if the run were being trained."""
    import fcntl
    import threading

    from textgen.runs import RunDir, run_lock

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.lock.write_text("12345")  # a killed trainer's pid, its lock long released
    probe = os.open(run.lock, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    threading.Timer(0.03, os.close, [probe]).start()  # the probe lets go
    with run_lock(run):
        assert run.trainer() is None or run.trainer() == str(os.getpid())
    assert not run.lock.exists()


def test_a_run_folder_made_read_only_mid_run_names_the_file_that_failed(tmp_path,
                                                                         monkeypatch):
    """The lock's removal then failed too, and its error (naming .lock) hid the real one."""
    from pathlib import Path

    from textgen.runs import RunDir, run_lock

    run = RunDir(tmp_path / "r")
    real_unlink = Path.unlink

    def read_only(path: Path, missing_ok: bool = False) -> None:
        if path == run.lock:
            raise PermissionError(13, "Permission denied", str(path))
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(PermissionError) as failed, run_lock(run):
        raise PermissionError(13, "Permission denied", str(run.history))
    assert failed.value.filename == str(run.history)


def test_second_training_into_the_same_run_is_refused(cli, tiny_corpus, tmp_path):
    run = tmp_path / "ck" / tiny_corpus.stem
    run.mkdir(parents=True)
    with lock_held_by_another_process(run / ".lock") as sleeper:
        result = cli("train", str(tiny_corpus), "--checkpoint-dir", str(tmp_path / "ck"), *TINY,
                     "--epochs", "1")
        assert result.exit_code == 3
        assert f"pid {sleeper.pid}" in result.stderr and "another process" in result.stderr
    # The same lock left by a process that has died does not block anyone, nor does a pid
    # that lives on in another process (the system released the lock with its holder).
    (run / ".lock").write_text(str(os.getpid()))
    result = cli("train", str(tiny_corpus), "--checkpoint-dir", str(tmp_path / "ck"), *TINY,
                 "--epochs", "1")
    assert result.exit_code == 0, result.stderr
    assert not (run / ".lock").exists()


# --- loading models --------------------------------------------------------------------------


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    import shutil

    target = tmp_path / "ck" / "copy"
    shutil.copytree(tiny_run.path, target)
    return target


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_model_files_are_named(cli, run_copy, damage):
    for name in ("best.keras", "last.keras"):
        path = run_copy / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"x" * 1000)
    result = cli("sample", "--model", str(run_copy), "--length", "5")
    assert result.exit_code == 2
    assert "last.keras" in result.stderr and "Traceback" not in result.stderr
    result = cli("evaluate", str(run_copy / "vocab.json"), "--model", str(run_copy))
    assert result.exit_code == 2 and "best.keras" in result.stderr


@pytest.mark.parametrize(("damage", "said"), [
    (lambda line: line.replace(line.split(",")[1], "abc", 1), "loss is 'abc'"),
    (lambda line: "1", "no value for"),
    (lambda line: line + ",9", "more values than columns"),
    (lambda line: "2.5" + line[1:], "epoch is '2.5', not a whole number >= 1"),
    (lambda line: line[1:], "epoch is '', not a whole number >= 1")])
def test_a_damaged_history_is_one_line_for_plot_and_info(cli, run_copy, tmp_path, damage, said):
    history = run_copy / "history.csv"
    lines = history.read_text().splitlines()
    lines[1] = damage(lines[1])
    history.write_text("\n".join(lines) + "\n")
    for args in (["plot", str(run_copy), "-o", str(tmp_path / "p.png")], ["info", str(run_copy)]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert f"history.csv: line 2 is damaged ({said}" in result.stderr.replace("\n", " ")
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["", "epoch,loss\n"])
def test_an_emptied_history_is_named_not_called_missing(cli, run_copy, tmp_path, content):
    """plot said "has no history.csv yet; train it for an epoch first" of a file that is
    there, emptied."""
    (run_copy / "history.csv").write_text(content)
    result = cli("plot", str(run_copy), "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "history.csv: holds no epochs (emptied or damaged); delete it, or train the run for an "
        "epoch (the models are unaffected)")


def test_plot_of_a_folder_that_is_not_a_run_says_so(cli, run_copy, tmp_path):
    """It said "has no history.csv yet; train it for an epoch first" of a folder of other
    files, and of a run whose run.json was emptied."""
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "x.txt").write_text("text")
    result = cli("plot", str(other), "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2
    assert "run.json: missing; this folder is not a textgen run" in result.stderr
    # two runs named by folder, no -o, --checkpoint-dir absent: the default was blamed on -o
    shutil.copytree(run_copy, tmp_path / "second")
    result = cli("plot", str(run_copy), str(tmp_path / "second"), "--checkpoint-dir",
                 str(tmp_path / "absent"))
    assert result.exit_code == 2 and " ".join(result.stderr.split()) == (
        f"error: the plot of several runs goes into --checkpoint-dir {tmp_path / 'absent'}, "
        "which is not a folder; give -o FILE.png")
    (run_copy / "run.json").write_text("")
    result = cli("plot", str(run_copy), "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2 and "cannot be read as JSON" in result.stderr


def test_a_row_without_a_validation_figure_is_drawn_without_that_point(cli, run_copy, tmp_path):
    history = run_copy / "history.csv"
    header, *rows = history.read_text().splitlines()
    names = header.split(",")
    first = rows[0].split(",")
    for column in ("val_loss", "val_bits_per_char"):
        first[names.index(column)] = ""
    history.write_text("\n".join([header, ",".join(first), *rows[1:]]) + "\n")
    result = cli("plot", str(run_copy), "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("field", "value", "said"), [
    ("training.best_logs", "x", 'training.best_logs is "x", not an object'),
    ("training.best_logs", ["x"], 'training.best_logs is ["x"], not an object'),
    ("training.best_logs.val_bits_per_char", "abc",
     'training.best_logs.val_bits_per_char is "abc", not a number'),
    ("corpus", 5, "corpus is 5, not a string"),
    ("base", "verse", 'base is "verse", not an object'),
    ("default_seed", 3, "default_seed is 3, not a string"),
    ("longest_line", True, "longest_line is true, not a whole number"),  # as JSON says
    ("format_version", "1", "format_version must be a whole number >= 1, got '1'"),
    ("training.budget", {"minutes": "ten"}, 'training.budget.minutes is "ten", not'),
    # of the right type, but no run writes them: a crash later, or blamed on an option
    ("training.budget", {"minutes": None, "spent_s": None},
     "training.budget.minutes is null, not a number of minutes > 0"),
    ("training.batch_size", 0, "training.batch_size is 0, not a whole number >= 1"),
    ("training.val_split", 2.0, "training.val_split is 2.0, not in [0, 1)"),
    ("chosen", {"reason": 5}, "chosen.reason is 5, not a string"),
    ("text_runs", {"a": "x"}, 'text_runs["a"] is "x", not a whole number >= 0'),
    ("default_seed", "", "default_seed is empty"),
    ("training.replicas", 0, "training.replicas is 0, not a whole number >= 1"),
    ("training.devices", "abc", 'training.devices is "abc", not a count of devices or their'),
    ("decoding", {"encoding": "no-such-codec"},
     'decoding is {"encoding": "no-such-codec"}, not an encoding and its error handling'),
])
def test_a_run_json_field_of_the_wrong_type_is_named_and_runs_lists_the_others(
        cli, run_copy, field, value, said):
    """These crashed `runs` (listing none), `info`, `sample` or `export` with a traceback."""
    import shutil

    shutil.copytree(run_copy, run_copy.parent / "good")  # an undamaged run beside it
    meta = json.loads((run_copy / "run.json").read_text())
    *parents, key = field.split(".")
    holder = meta
    for parent in parents:
        holder = holder[parent]
    holder[key] = value
    (run_copy / "run.json").write_text(json.dumps(meta))
    for args in (["info", str(run_copy)], ["sample", "--model", str(run_copy), "--length", "3"]):
        result = cli(*args)
        assert result.exit_code == 2 and said in result.stderr, (args, result.stderr)
        assert "the file was edited or damaged" in result.stderr
    listed = cli("runs", "--json", "--checkpoint-dir", str(run_copy.parent))
    assert listed.exit_code == 0 and said in listed.stderr and "warning:" in listed.stderr
    assert [row["name"] for row in json.loads(listed.stdout)] == ["good"]


def test_missing_vocabulary_or_metadata_is_named(cli, run_copy):
    (run_copy / "vocab.json").unlink()
    result = cli("sample", "--model", str(run_copy))
    assert result.exit_code == 2 and "vocab.json: missing" in result.stderr
    (run_copy / "run.json").unlink()
    result = cli("sample", "--model", str(run_copy))
    assert result.exit_code == 2 and "run.json" in result.stderr


def test_a_vocabulary_that_does_not_fit_the_model_is_named_by_every_command(cli, run_copy,
                                                                           tmp_path):
    chars = json.loads((run_copy / "vocab.json").read_text())
    (run_copy / "vocab.json").write_text(json.dumps(chars[:-1]))  # valid, one short
    corpus = tmp_path / "play.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 20)
    expected = f"vocab.json: has {len(chars) - 1} characters but the model expects {len(chars)}"
    for args in (["sample", "--model", str(run_copy), "--length", "5"],
                 ["evaluate", str(corpus), "--model", str(run_copy)],
                 ["info", str(run_copy)],
                 ["train", str(corpus), "--checkpoint-dir", str(run_copy.parent),
                  "--run-name", run_copy.name, "--resume", "--epochs", "99"]):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert expected in result.stderr and "Traceback" not in result.stderr, args


def test_a_run_json_that_is_not_json_says_what_to_do(cli, run_copy):
    (run_copy / "run.json").write_text("{")
    result = cli("sample", "--model", str(run_copy))
    assert result.exit_code == 2
    assert "run.json: cannot be read as JSON" in result.stderr
    assert result.stderr.strip().endswith("train the run again")


def test_newer_format_version_is_refused(cli, run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["format_version"] = 99
    (run_copy / "run.json").write_text(json.dumps(meta))
    result = cli("sample", "--model", str(run_copy))
    assert result.exit_code == 2
    assert "format version 99 is newer" in result.stderr and "run.json" in result.stderr


def test_lambda_layer_is_refused_without_running_it(cli, run_copy, tmp_path):
    import keras

    marker = tmp_path / "pwned"
    payload = f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]"
    model = keras.saving.load_model(run_copy / "last.keras", safe_mode=True)
    hostile = keras.Sequential([keras.Input((None,), dtype="int32"), model,
                                keras.layers.Lambda(eval(payload))])
    hostile.save(run_copy / "last.keras")
    marker.unlink(missing_ok=True)  # saving traced the lambda once; only loading counts
    (run_copy / "best.keras").unlink()
    result = cli("sample", "--model", str(run_copy), "--length", "5")
    assert result.exit_code == 2, result.stderr
    assert "refused" in result.stderr and "last.keras" in result.stderr
    assert not marker.exists()


def test_a_lambda_layer_among_the_models_own_is_refused_by_the_numpy_reader_too(cli, run_copy):
    """The reader of sample never runs a file's code, but it skipped a Lambda added to the
    model's own layers and sampled (exit 0) where evaluate refused it."""
    import keras

    model = keras.saving.load_model(run_copy / "last.keras", safe_mode=True)
    outputs = keras.layers.Lambda(lambda t: t * 1.0)(model.outputs[0])
    keras.Model(model.inputs, outputs).save(run_copy / "last.keras")
    result = cli("sample", "--model", str(run_copy), "--length", "5")
    assert result.exit_code == 2, result.stderr
    assert "refused to load: it contains arbitrary Python code" in result.stderr


# --- hostile and odd input --------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                   max_size=300)


@settings(max_examples=200, deadline=None)
@given(text=ANY_TEXT)
def test_any_unicode_text_round_trips_through_the_vocabulary(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("u") / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    expected = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not expected:  # the text was only a byte-order mark
        with pytest.raises(TextgenError, match="empty"):
            read_text(path)
        return
    normalised = read_text(path)
    assert normalised == expected
    vocab = Vocabulary.from_text(normalised)
    assert vocab.decode(vocab.encode(normalised)) == normalised
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    try:
        split = split_by_position(vocab.encode(normalised), seq_length=10, val_split=0.1)
    except TextgenError as exc:
        assert "too short" in str(exc)
    else:
        assert len(split.train) >= 11


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.text(min_size=0, max_size=40))
def test_any_seed_samples_or_fails_clearly(tiny_run, seed):
    from textgen.generate.sampling import load_sampler
    from textgen.reading import normalise_newlines

    sampler = load_sampler(tiny_run)
    for skip in (False, True):
        try:
            text = sampler.generate(seed, 5, temperature=1.0, rng_seed=0, skip_unknown=skip)
        except TextgenError as exc:
            assert "\n" not in str(exc)
        else:
            read = normalise_newlines(seed)  # line ends as the training text's were read
            kept = "".join(c for c in read if c in set(sampler.vocab.chars)) if skip else read
            assert text.startswith(kept) and len(text) == len(kept) + 5


def test_a_seed_with_windows_line_ends_reads_as_the_training_text_did(tiny_run):
    from textgen.generate.sampling import load_sampler

    sampler = load_sampler(tiny_run)
    assert sampler.generate("To be\r\nor", 5, rng_seed=0) == \
        sampler.generate("To be\nor", 5, rng_seed=0)


HOSTILE_CORPORA = {
    "emoji": "🎭🎭 to be 🐍 or not 🙂\n" * 12,
    "combining": "e\u0301te\u0301 cafe\u0301 nai\u0308ve\n" * 15,
    "right_to_left": "שלום עולם مرحبا بالعالم\n" * 12,
    "nul_and_controls": "a\x00b\x01c\x1bd\te\x7f\n" * 30,
    "one_long_line": ("word " * 200).strip(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CORPORA))
def test_odd_corpora_train_and_sample(cli, tmp_path, name):
    corpus = tmp_path / f"{name}.txt"
    corpus.write_text(HOSTILE_CORPORA[name], encoding="utf-8")
    ckpt = str(tmp_path / "ck")
    result = cli("train", str(corpus), "--epochs", "1", "--units", "8", "--embed-dim", "4",
                 "--seq-length", "12", "--batch-size", "4", "--steps-per-epoch", "2",
                 "--checkpoint-dir", ckpt)
    assert result.exit_code == 0, result.stderr
    seed = HOSTILE_CORPORA[name][:3]
    sample = cli("sample", "--seed", seed, "--length", "20", "--rng-seed", "1",
                 "--checkpoint-dir", ckpt)
    assert sample.exit_code == 0, sample.stderr
    assert sample.stdout.startswith(seed)
    assert len(sample.stdout) >= 23


def test_a_text_of_one_repeated_character_is_refused_before_tensorflow(tmp_path):
    """Nothing to learn (and a softmax over one class): one line, before TensorFlow loads."""
    corpus = tmp_path / "one_repeated_char.txt"
    corpus.write_text("a" * 400, encoding="utf-8")
    code, imported, stderr = run_without_tensorflow("train", str(corpus), "--checkpoint-dir",
                                                    str(tmp_path / "ck"))
    assert code == 2 and not imported
    assert "has only one distinct character ('a')" in stderr and "Traceback" not in stderr


def test_one_character_corpus_is_one_line_that_says_why(cli, tmp_path):
    corpus = tmp_path / "one.txt"
    corpus.write_text("x", encoding="utf-8")
    result = cli("train", str(corpus), "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 2 and "nothing to learn" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_model_zip_without_weights_is_named(cli, run_copy):
    path = run_copy / "last.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    (run_copy / "best.keras").unlink()
    result = cli("sample", "--model", str(run_copy))
    assert result.exit_code == 2 and "last.keras" in result.stderr
    assert os.path.exists(path)


def _interrupt_at(monkeypatch, epoch: int, step: int) -> None:
    """Training stops as Ctrl-C stops it, after `step` steps of the 0-based `epoch`."""
    import keras

    from textgen.training import fit

    class StopThere(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch, self.step, self.signal = -1, 0, signal.SIGINT

        def install(self):
            return None

        def restore(self, previous) -> None:
            pass

        def on_epoch_begin(self, epoch_index: int, logs=None) -> None:
            self.epoch, self.step = epoch_index, 0

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            self.step += 1
            if (self.epoch, self.step) == (epoch, step):
                raise KeyboardInterrupt

    monkeypatch.setattr(fit, "_interrupt_callback", StopThere)


def test_ctrl_c_at_an_epochs_end_shows_the_cursor_and_says_what_is_saved(tmp_path, tiny_corpus,
                                                                         monkeypatch):
    """Interrupted at an epoch's last step (before its commit), on a terminal: the progress
    bar is stopped (the cursor shown again, the bar not redrawn after the message) and the
    interruption says no step of that epoch is saved."""
    import io

    from rich.console import Console

    from textgen.generate.train import train_generator
    from textgen.training.fit import TrainingInterrupted

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    _interrupt_at(monkeypatch, epoch=1, step=6)
    with pytest.raises(TrainingInterrupted) as stopped:
        train_generator(tiny_corpus, checkpoint_dir=tmp_path, epochs=3, steps_per_epoch=6,
                        backup_every=100, batch_size=4, seq_length=16, units=16, embed_dim=8,
                        base="none", precision="float32", console=terminal)
    assert (stopped.value.step, stopped.value.saved_step) == (6, 0)
    shown = screen.getvalue()
    assert shown.rfind("\x1b[?25h") > shown.rfind("\x1b[?25l") >= 0  # hidden, then shown


def test_a_resumed_epoch_reports_its_figures_over_all_its_steps(tmp_path, tiny_corpus,
                                                                 monkeypatch):
    """Interrupted after 4 of epoch 2's 6 steps and resumed, epoch 2's training loss is the
    mean over its 6 steps, as in a run never interrupted (not over the last 2 only)."""
    from textgen.generate.train import train_generator
    from textgen.training.fit import TrainingInterrupted

    tiny = dict(checkpoint_dir=tmp_path, epochs=3, steps_per_epoch=6, backup_every=2,
                batch_size=4, seq_length=16, units=16, embed_dim=8, dropout=0.0, base="none",
                precision="float32")
    whole = train_generator(tiny_corpus, run_name="whole", **tiny).run.read_history()
    _interrupt_at(monkeypatch, epoch=1, step=4)
    with pytest.raises(TrainingInterrupted):
        train_generator(tiny_corpus, run_name="cut", **tiny)
    monkeypatch.undo()
    resumed = train_generator(tiny_corpus, run_name="cut", resume=True, **tiny)
    cut = resumed.run.read_history()
    assert [r["epoch"] for r in cut] == ["1", "2", "3"]
    for row, same in zip(cut, whole, strict=True):
        for key in ("loss", "val_loss"):
            assert float(row[key]) == pytest.approx(float(same[key]), rel=1e-4), (row, same)


def test_an_epoch_commit_cut_short_is_finished_or_dropped(tmp_path, tiny_corpus):
    """A crash between an epoch's models and its run.json: the models wait under backup/ and
    a resume puts them in place only if run.json had counted the epoch."""
    import shutil

    from textgen.generate.train import train_generator
    from textgen.training.fit import settle_commit

    run = train_generator(tiny_corpus, checkpoint_dir=tmp_path, epochs=1, steps_per_epoch=3,
                          batch_size=4, seq_length=16, units=16, embed_dim=8,
                          base="none").run
    meta = run.read_meta()
    run.backup.mkdir()
    # epoch 2's model saved, run.json not yet: dropped, last.keras stays epoch 1's
    shutil.copy(run.best, run.commit_file(2, "last"))
    before = run.last.read_bytes()
    assert run.model_file("last") == run.last  # sample, evaluate, export read epoch 1's
    settle_commit(run, meta)
    assert run.last.read_bytes() == before and not run.backup.exists()
    # run.json says epoch 1 is done but the rename did not happen: readers take the waiting
    # model, and the next training puts it in place
    run.backup.mkdir()
    shutil.copy(run.best, run.commit_file(1, "last"))
    assert run.model_file("last") == run.commit_file(1, "last")
    settle_commit(run, meta)
    assert run.last.read_bytes() == run.best.read_bytes() and not run.backup.exists()


def test_an_interrupted_time_budget_goes_on_where_it_stopped(cli, tiny_corpus, tmp_path):
    """Killed halfway through a --max-time budget, the same command with --resume trains the
    rest of it, its learning rate where it was, not a whole new budget from the peak."""
    from textgen.runs import RunDir, load_keras_model

    args = ["train", str(tiny_corpus), "--checkpoint-dir", str(tmp_path), *TINY_GENERATOR,
            "--base", "none", "--learning-rate", "0.01", "--max-time", "0.5"]
    assert cli(*args[:-2], "--max-time", "0.05").exit_code == 0
    run = RunDir(tmp_path / tiny_corpus.stem)
    meta = run.read_meta()
    # as if killed after 24 of its 30 seconds (0.8 of the budget) at its last epoch's end
    meta["training"]["budget"] = {"minutes": 0.5, "spent_s": 24.0}
    run.write_meta(meta)
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "going on with the run's --max-time budget: 0.4 minutes of its 0.5 minutes were " \
        "spent" in resumed.stderr
    training = run.read_meta()["training"]
    assert 30 <= training["budget"]["spent_s"] < 45  # the 6 s left, not 30 more
    rate = float(load_keras_model(run.last, compile=True).optimizer.learning_rate)
    assert rate < 0.0025  # the cosine's end (0.001), never back at the peak (0.01)
    again = cli(*args, "--resume")  # used up: the same command is a new budget
    assert "going on with" not in again.stderr and "time budget" in again.stdout


def test_two_processes_never_hold_a_run_lock_at_once(tmp_path):
    """Eight processes race for one lock, again and again: at most one holds it each time."""
    racer = """
import sys, time
from textgen.errors import RunLockedError
from textgen.runs import RunDir, run_lock
run, log = RunDir(__import__("pathlib").Path(sys.argv[1])), sys.argv[2]
start = float(sys.argv[3])
while time.time() < start:
    pass
try:
    with run_lock(run):
        with open(log, "a") as f:
            f.write(f"in {time.monotonic()}\\n")
        time.sleep(0.05)
        with open(log, "a") as f:
            f.write(f"out {time.monotonic()}\\n")
except RunLockedError:
    pass
"""
    log = tmp_path / "log.txt"
    for attempt in range(3):
        start = time.time() + 2
        procs = [subprocess.Popen([sys.executable, "-c", racer, str(tmp_path / f"r{attempt}"),
                                   str(log), str(start)]) for _ in range(8)]
        for proc in procs:
            assert proc.wait(timeout=60) == 0
    events = sorted((float(t), kind) for kind, t in
                    (line.split() for line in log.read_text().splitlines()))
    holders = 0
    for _, kind in events:
        holders += 1 if kind == "in" else -1
        assert holders <= 1
    assert any(kind == "in" for _, kind in events)



def test_a_new_run_writes_run_json_first(tmp_path, tiny_corpus, monkeypatch):
    """Killed between its first two files, a new run's folder is still a run (--resume and
    --overwrite take it), never a folder of files textgen then refuses to touch."""
    from textgen.generate import train
    from textgen.runs import write_text_atomic

    seen = []

    def write(path, text):
        seen.append((path.name, (path.parent / "run.json").exists()))
        write_text_atomic(path, text)

    monkeypatch.setattr(train, "write_text_atomic", write)
    train.train_generator(tiny_corpus, checkpoint_dir=tmp_path, epochs=1, steps_per_epoch=2,
                          batch_size=4, seq_length=16, units=16, embed_dim=8, base="none")
    assert seen == [("vocab.json", True)]


def test_an_interruption_before_the_first_epoch_keeps_the_plan(tmp_path, tiny_corpus,
                                                                monkeypatch):
    """Stopped in its first epoch, a run resumes with the epochs it was started with (not
    the default 20) and the budget's spent seconds."""
    from textgen.generate.train import train_generator
    from textgen.training.fit import TrainingInterrupted

    tiny = dict(checkpoint_dir=tmp_path, epochs=2, steps_per_epoch=6, backup_every=2,
                batch_size=4, seq_length=16, units=16, embed_dim=8, base="none", max_time=5.0,
                run_name="first")
    _interrupt_at(monkeypatch, epoch=0, step=4)
    with pytest.raises(TrainingInterrupted):
        train_generator(tiny_corpus, **tiny)
    monkeypatch.undo()
    training = json.loads((tmp_path / "first" / "run.json").read_text())["training"]
    assert training["epochs_requested"] == 2 and training["budget"]["minutes"] == 5.0
    sidecar = json.loads((tmp_path / "first" / "backup" /
                          "epoch-000000-step-000000004.json").read_text())
    assert sidecar["minutes"] == 5.0 and sidecar["spent_s"] > 0 and sidecar["logs"]["loss"] > 0
    resumed = train_generator(tiny_corpus, resume=True, **{k: v for k, v in tiny.items()
                                                           if k != "epochs"})
    assert resumed.summary["epochs_done"] == 2
    assert any("going on with the run's max_time budget: " in n and " of its 5 minutes " in n
               for n in resumed.notes)


def test_the_figures_of_a_backup_saved_again_without_a_new_step_stand():
    from textgen.training.fit import combined

    assert combined({"loss": 2.0}, 4, {}, 0) == {"loss": 2.0}
    assert combined({"loss": 2.0}, 4, {"loss": 1.0}, 4) == {"loss": 1.5}



def test_a_resumed_classifier_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    """Each pass over a classifier's examples has its own order, the same however often the
    data was read before: interrupted mid-epoch and resumed, the history is the one of a run
    never interrupted (a reshuffle on every reading put the resumed run a pass out of step)."""
    from tests.conftest import write_reviews
    from textgen.classify.train import train_classifier
    from textgen.training.fit import TrainingInterrupted

    data = write_reviews(tmp_path / "data", {"pos": 30, "neg": 30}, seed=3)
    tiny = dict(checkpoint_dir=tmp_path, epochs=3, steps_per_epoch=6, backup_every=2,
                batch_size=4, val_split=0.2, arch="ngrams", dropout=0.0)
    whole = train_classifier(data, run_name="whole", **tiny).run.read_history()
    _interrupt_at(monkeypatch, epoch=1, step=4)
    with pytest.raises(TrainingInterrupted):
        train_classifier(data, run_name="cut", **tiny)
    monkeypatch.undo()
    cut = train_classifier(data, run_name="cut", resume=True, **tiny).run.read_history()
    for row, same in zip(cut, whole, strict=True):
        for key in ("loss", "val_loss"):
            assert float(row[key]) == pytest.approx(float(same[key]), rel=1e-4), (row, same)
