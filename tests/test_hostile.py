"""A hostile but realistic world: odd run names, file-system errors, endless inputs, damaged
run folders, pipes that close. Each ends in one line and a non-zero exit (never a traceback),
and nothing is written where the user did not ask.

The failure modes gone through, per thing textgen reads or writes:
- the corpus: missing, a folder, a device or pipe (/dev/zero), too big for memory, empty,
  not UTF-8 (tests/test_corpus.py);
- --run-name: a path instead of a name (`..`, `/abs`, `a/b`, empty, `.hidden`), an existing file;
- --checkpoint-dir: a file, read-only, full;
- run.json: not JSON, a value of the wrong type, a missing key;
- review folders: a broken symlink, a class of empty files, not UTF-8 (tests/test_classify.py);
- stdout: a reader that goes away (`| head`);
- the process: SIGINT and SIGTERM (tests/test_reliability.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_GENERATOR, run_subprocess, run_without_tensorflow, write_reviews
from textgen.errors import TextgenError

TINY = [*TINY_GENERATOR, "--epochs", "1", "--layers", "1"]


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


# --- run names are one folder name inside --checkpoint-dir -----------------------------------


@pytest.mark.parametrize("name", ["../escape", "/tmp/textgen-abs-run", "a/b", "", ".hidden",
                                  "..", "back\\slash", "-x", "trail ", "a\nb", "\x1b[31mred"])
def test_a_run_name_cannot_leave_the_checkpoint_folder(tmp_path, tiny_corpus, name):
    ckpt = tmp_path / "ck"
    code, imported, stderr = run_without_tensorflow(
        "train", str(tiny_corpus), "--checkpoint-dir", str(ckpt), f"--run-name={name}")
    assert code == 2 and not imported
    assert "is not a run name" in one_line_error(stderr)  # '-x': `textgen info -x` failed
    assert files_under(tmp_path) == set()
    assert not Path("/tmp/textgen-abs-run").exists()
    assert "\x1b" not in stderr  # an escape code is shown, never sent to the terminal


def test_an_error_naming_a_run_cannot_drive_the_terminal(tiny_run, tmp_path):
    """A run folder named with an escape code (by hand, or by an older textgen) was printed
    raw in front of an error, colouring the terminal."""
    shutil.copytree(tiny_run.path, tmp_path / "\x1b[31mred")
    code, _, stderr = run_without_tensorflow("sample", "--model", "\x1b[31mred", "--seed",
                                             "\U0001f355", "--checkpoint-dir", str(tmp_path))
    assert code == 2 and "\x1b" not in stderr
    assert one_line_error(stderr).startswith("error: run \\x1b[31mred: ")


@pytest.mark.parametrize("args", [("train", ""), ("classify", "train", ""), ("evaluate", ""),
                                  ("train", "speech.txt", "--checkpoint-dir", ""),
                                  ("sample", "-o", "")])
def test_an_empty_path_is_refused_not_read_as_this_folder(tmp_path, args):
    """`textgen train "$CORPUS"` with the variable unset trained on the current folder's
    files, recursively (pathlib reads '' as '.')."""
    (tmp_path / "speech.txt").write_text("Her father loved me, oft invited me. " * 40)
    code, imported, stderr = run_without_tensorflow(*args, cwd=tmp_path)
    assert code == 2 and not imported
    assert "is empty; give a file or folder name" in one_line_error(stderr)
    assert files_under(tmp_path) == {tmp_path / "speech.txt"}


# --- file-system errors -----------------------------------------------------------------------


def test_a_run_name_that_is_a_file_and_a_checkpoint_dir_that_is_a_file(cli, tmp_path,
                                                                        tiny_corpus):
    ckpt = tmp_path / "ck"
    ckpt.mkdir()
    (ckpt / "taken").write_text("not a run")
    result = cli("train", str(tiny_corpus), *TINY, "--checkpoint-dir", str(ckpt),
                 "--run-name", "taken")
    assert result.exit_code == 2
    assert "taken" in one_line_error(result.stderr)
    assert (ckpt / "taken").read_text() == "not a run"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = cli("train", str(tiny_corpus), *TINY, "--checkpoint-dir", str(a_file))
    assert result.exit_code == 2
    assert one_line_error(result.stderr) == (f"error: --checkpoint-dir is {a_file}, not a "
                                             "folder; give the folder that holds the runs "
                                             "(made if it is not there)")
    assert a_file.read_text() == "x"


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True)
    return proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 600 kB file system: room for a run folder's small files, not for its models."""
    where = tmp_path / "small"
    if not _mount_tmpfs(where, "size=600k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_one_line_and_leaves_no_lock_or_temporary_file(cli, tiny_corpus,
                                                                      small_disk):
    result = cli("train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "1", "--units", "96",
                 "--checkpoint-dir", str(small_disk))
    assert result.exit_code == 2, result.stderr
    assert "disk full" in one_line_error(result.stderr)
    run = small_disk / tiny_corpus.stem
    assert not (run / ".lock").exists()
    assert not [p for p in files_under(run) if p.name.startswith(".")]


def test_a_read_only_checkpoint_folder_is_one_line(cli, tiny_corpus, tmp_path):
    where = tmp_path / "ro"
    if not _mount_tmpfs(where, "ro,size=100k"):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        result = cli("train", str(tiny_corpus), *TINY, "--checkpoint-dir", str(where))
        assert result.exit_code == 2
        assert "read-only" in one_line_error(result.stderr)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# --- unbounded inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_not_a_corpus(device, tmp_path):
    if not Path(device).exists():
        pytest.skip(f"{device} is absent")
    code, imported, stderr = run_without_tensorflow("train", device, "--checkpoint-dir",
                                                    str(tmp_path))
    assert code == 2 and not imported
    assert "not a regular file" in one_line_error(stderr)


def test_a_named_pipe_is_not_a_corpus(tmp_path):
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    code, _, stderr = run_without_tensorflow("train", str(fifo), "--checkpoint-dir",
                                             str(tmp_path / "ck"))
    assert code == 2 and "not a regular file" in one_line_error(stderr)


def test_a_corpus_bigger_than_memory_is_refused_up_front(tmp_path, monkeypatch):
    from textgen import reading
    from textgen.errors import TextgenError

    corpus = tmp_path / "big.txt"
    corpus.write_text("abc " * 1000)
    monkeypatch.setattr(reading, "available_memory", lambda: 10_000)
    with pytest.raises(TextgenError, match=r"big.txt: 0 MB of text needs about 0 MB .* has 0 MB"):
        reading.read_text(corpus)


def test_piped_samples_stream_and_a_closed_pipe_ends_quietly(tiny_run):
    """`textgen sample --length 10**9 | head -c 100` prints at once and exits cleanly."""
    cmd = [sys.executable, "-m", "textgen", "sample", "--model", str(tiny_run.path),
           "--length", "1000000000", "--rng-seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(100)
    proc.stdout.close()  # the reader goes away, as `head` does
    _, stderr = proc.communicate(timeout=120)
    assert len(first) == 100
    assert proc.returncode == 0, stderr
    assert b"Traceback" not in stderr and b"Broken pipe" not in stderr


# --- damaged run folders ----------------------------------------------------------------------


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)
    return copy


def test_a_model_file_damaged_inside_its_archive_says_what_to_do(cli, run_copy):
    """A .keras file whose archive opens but whose weights fail their CRC named the error and
    gave no advice, where a truncated file is told to use another checkpoint."""
    model = run_copy / "last.keras"
    data = bytearray(model.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 2000):
        data[i] ^= 0xFF
    model.write_bytes(bytes(data))
    result = cli("sample", "--model", str(run_copy), "--length", "10")
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert "cannot be loaded as a Keras model" in line
    assert line.endswith("; use another checkpoint (best.keras / last.keras) or retrain")


@pytest.mark.parametrize(("damage", "named"), [
    (lambda m: m["config"].update(units="sixteen"),
     "config.units must be a whole number, got 'sixteen'"),
    (lambda m: m.pop("config"), "'config' is missing"),
    (lambda m: m["config"].pop("vocab_size"), "config.vocab_size is missing"),
    (lambda m: m["config"].update(cell="rnn"), "config.cell must be one of lstm, gru"),
    (lambda m: m["training"].update(epochs_done="2"), "training.epochs_done must be"),
    (lambda m: m.pop("training"), "'training' is missing"),
])
def test_a_tampered_run_json_names_the_file_and_the_key(cli, run_copy, damage, named):
    meta = json.loads((run_copy / "run.json").read_text())
    damage(meta)
    (run_copy / "run.json").write_text(json.dumps(meta))
    for args in (["sample", "--length", "5"], ["evaluate", str(run_copy / "vocab.json")]):
        result = cli(*args, "--model", str(run_copy))
        assert result.exit_code == 2
        line = one_line_error(result.stderr)
        assert str(run_copy / "run.json") in line and named in line, line


def test_a_model_file_of_another_shape_than_run_json_says_is_named_everywhere(
        cli, run_copy, tiny_corpus, tmp_path):
    """Another run's .keras copied in (here: run.json's units edited): sample said so, while
    evaluate, export and --resume passed TensorFlow's shape errors on as a bug."""
    meta = json.loads((run_copy / "run.json").read_text())
    meta["config"]["units"] = 24  # the model files hold 32
    (run_copy / "run.json").write_text(json.dumps(meta))
    expected = (".keras: does not match run.json (weight 1 has the shape (16, 128), the run's "
                "hyper-parameters give (16, 96)); use the run's own model file, or retrain the "
                "run")
    for args in (["sample", "--length", "5", "--model", str(run_copy)],
                 ["evaluate", str(tiny_corpus), "--model", str(run_copy)],
                 ["export", str(run_copy), "-o", str(tmp_path / "exported")],
                 ["train", str(tiny_corpus), "--resume", "--epochs", "3", "--run-name", "copy",
                  "--checkpoint-dir", str(run_copy.parent)]):
        result = cli(*args)
        line = one_line_error(result.stderr)
        assert result.exit_code == 2 and line.endswith(expected) and str(run_copy) in line, args
    assert not (tmp_path / "exported").exists()


# --- review folders are checked file by file before TensorFlow reads them ---------------------


def _reviews(tmp_path: Path) -> Path:

    return write_reviews(tmp_path / "reviews", {"neg": 4, "pos": 4})


def test_a_broken_symlink_among_the_reviews_is_named(tmp_path):
    root = _reviews(tmp_path)
    (root / "pos" / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    code, imported, stderr = run_without_tensorflow(
        "classify", "train", str(root), "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    assert "gone.txt: broken symbolic link" in one_line_error(stderr)


def test_a_class_of_empty_files_is_refused(tmp_path):
    root = _reviews(tmp_path)
    for path in (root / "neg").iterdir():
        path.write_text("  \n")
    code, imported, stderr = run_without_tensorflow(
        "classify", "train", str(root), "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    assert "all 4 files of class 'neg' are empty" in one_line_error(stderr)


# --- interactive mode names the setting and its range -----------------------------------------


@pytest.mark.parametrize(("line", "message"), [
    (":temperature abc", ":temperature needs a finite number >= 0 (0 = greedy), got 'abc'"),
    (":rng-seed x", ":rng-seed needs a whole number, or off, got 'x'"),
    (":top-p 2", ":top-p must be in (0, 1], got 2.0"),
    (":length -1", ":length must be >= 1, got -1"),
    (":top-k", ":top-k needs"),
    (":skip-unknown maybe", ":skip-unknown needs on or off, got 'maybe'"),
    (":text-limits 2", ":text-limits needs on or off, got '2'"),
])
def test_interactive_settings_name_themselves_and_their_range(line, message):
    from textgen.generate.interactive import apply_command
    from textgen.generate.sampling import DEFAULT_SAMPLING

    settings, said = apply_command(DEFAULT_SAMPLING, line)
    assert settings == DEFAULT_SAMPLING and said.startswith("error: ") and message in said


def test_interactive_switches_the_text_limits():
    from textgen.generate.interactive import apply_command
    from textgen.generate.sampling import DEFAULT_SAMPLING

    settings, said = apply_command(DEFAULT_SAMPLING, ":text-limits off")
    assert settings.text_limits is False and "text-limits off" in said
    # the settings read as the commands take them: off and on, never Python's None
    _, said = apply_command(DEFAULT_SAMPLING, ":settings")
    assert "top-k off, top-p off" in said and "text-limits on" in said and "None" not in said


# --- what textgen writes follows the umask ----------------------------------------------------


def test_written_files_follow_the_umask(cli, tiny_corpus, tmp_path):
    """A shared checkpoint folder works for a team: no owner-only model files."""
    previous = os.umask(0o027)
    try:
        result = cli("train", str(tiny_corpus), *TINY, "--checkpoint-dir", str(tmp_path))
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    run = tmp_path / tiny_corpus.stem
    for name in ("run.json", "vocab.json", "last.keras", "best.keras", "history.csv"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o640, name


def test_subprocess_errors_are_one_line(tmp_path):
    result = run_subprocess("sample", "--model", str(tmp_path / "nothing"))
    assert result.returncode != 0
    one_line_error(result.stderr)


# --- random options and files: one line or success, never a traceback, nothing outside -------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NUMBERS = st.one_of(st.integers(-3, 3), st.sampled_from(["0.5", "-0.1", "1e9", "nan", "inf",
                                                         "x", ""]))
TRAIN_OPTIONS = {
    "--epochs": st.integers(-1, 2), "--units": st.integers(-1, 6),
    "--seq-length": st.integers(-2, 40), "--batch-size": st.integers(-1, 6),
    "--val-split": st.sampled_from(["-0.5", "0", "0.3", "0.99", "1", "nan"]),
    "--dropout": st.sampled_from(["-0.1", "0", "0.5", "1", "inf"]),
    "--learning-rate": st.sampled_from(["-1", "0", "0.01", "1e9", "nan"]),
    "--steps-per-epoch": st.integers(-1, 3), "--layers": st.integers(0, 2),
    "--run-name": st.sampled_from(["ok", "../up", "/abs", "a/b", "", ".x", "x" * 300]),
    "--max-time": st.sampled_from(["-1", "0", "0.05", "nan"]),
    "--cell": st.sampled_from(["lstm", "gru", "rnn"]),
    "--precision": st.sampled_from(["auto", "float32", "float16"]),
}
SMALL_FILES = st.one_of(st.text(max_size=300), st.binary(max_size=300))


def _drive(cli, tmp: Path, args: list[str]) -> None:
    before = files_under(tmp)
    result = cli(*args)
    if result.exit_code != 0:
        one_line_error(result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    outside = {p for p in files_under(tmp) - before if not p.is_relative_to(tmp / "ck")}
    assert not outside, outside


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=SMALL_FILES, chosen=st.dictionaries(st.sampled_from(sorted(TRAIN_OPTIONS)),
                                                   st.none(), max_size=5), data=st.data())
def test_random_training_options_and_files(cli, tmp_path_factory, content, chosen, data):
    tmp = tmp_path_factory.mktemp("random")
    corpus = tmp / "corpus.txt"
    corpus.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str)
                       else content)
    args = ["train", str(corpus), "--checkpoint-dir", str(tmp / "ck"), "--embed-dim", "4",
            "--units", "4", "--layers", "1", "--steps-per-epoch", "2", "--epochs", "1",
            "--seq-length", "8", "--batch-size", "2"]
    for option in chosen:
        args += [option, str(data.draw(TRAIN_OPTIONS[option], label=option))]
    _drive(cli, tmp, args)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.text(max_size=20), temperature=NUMBERS, length=NUMBERS, top_k=NUMBERS,
       top_p=NUMBERS, samples=st.integers(-1, 2))
def test_random_sampling_options(cli, tiny_run, tmp_path_factory, seed, temperature, length,
                                 top_k, top_p, samples):
    tmp = tmp_path_factory.mktemp("sample")
    args = ["sample", "--model", str(tiny_run.path), "--seed", seed, "--temperature",
            str(temperature), "--length", str(length), "--top-k", str(top_k), "--top-p",
            str(top_p), "--num-samples", str(samples), "--rng-seed", "0"]
    _drive(cli, tmp, args)


# --- failures after the up-front checks, outputs that are not plain files (issue 32) ---------

TR = ["--epochs", "1", "--steps-per-epoch", "3", "--units", "16", "--layers", "1",
      "--seq-length", "20", "--batch-size", "8"]


def test_a_batch_too_big_for_memory_is_refused_before_tensorflow(tmp_path, tiny_corpus):
    """1. --batch-size 10000000 once allocated [10000000, 20, 28] after minutes."""
    code, imported, stderr = run_without_tensorflow(
        "train", str(tiny_corpus), *TR, "--batch-size", "10000000",
        "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    line = one_line_error(stderr)
    assert "--batch-size 10000000 needs about" in line and "use --batch-size" in line, line
    fits = int(line.split("use --batch-size ")[1].split()[0])
    assert 1000 < fits < 10_000_000
    assert files_under(tmp_path) == set()


def test_a_generator_too_big_for_memory_is_refused_before_tensorflow(tmp_path, tiny_corpus):
    """--units sizes the weights: refused, naming the options to shrink, and no run folder."""
    code, imported, stderr = run_without_tensorflow(
        "train", str(tiny_corpus), *TR, "--units", "200000", "--base", "none",
        "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    line = one_line_error(stderr)
    assert "the model needs about" in line and "use a smaller --units or --layers" in line, line
    assert files_under(tmp_path) == set()


def test_an_ngram_classifier_batch_too_big_is_refused(tmp_path):
    data = _reviews(tmp_path)
    code, imported, stderr = run_without_tensorflow(
        "classify", "train", str(data), "--arch", "ngrams", "--batch-size", "100000000",
        "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    assert "--batch-size 100000000 needs about" in one_line_error(stderr)


@pytest.mark.parametrize("arch", ["lstm", "ngrams"])
def test_a_classifier_vocabulary_too_big_for_memory_is_refused(tmp_path, arch):
    """--max-tokens sizes the weights (an Embedding of max_tokens x embed_dim)."""
    data = _reviews(tmp_path)
    code, imported, stderr = run_without_tensorflow(
        "classify", "train", str(data), "--arch", arch, "--max-tokens", "10000000000",
        "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    line = one_line_error(stderr)
    assert "the model needs about" in line and "use a smaller --max-tokens" in line, line


def test_out_of_memory_late_is_one_line_and_leaves_no_run_folder(cli, tmp_path, tiny_corpus,
                                                                  monkeypatch):
    """A MemoryError after TensorFlow loaded (here from the data step) is one line, exit 2,
    and the new run's folder goes with it: no "already holds a run" next time."""
    from textgen.generate.train import GeneratorRecipe

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(GeneratorRecipe, "prepare_data", exhausted)
    result = cli("train", str(tiny_corpus), *TR, "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 2
    assert "out of memory" in one_line_error(result.stderr)
    assert not (tmp_path / "ck" / tiny_corpus.stem).exists()


def test_known_late_failures_become_one_line(tmp_path):
    """The families the boundary maps, by the types the libraries raise."""
    import errno

    import numpy as np

    from textgen.errors import known_failure

    class ResourceExhaustedError(Exception):  # TensorFlow's, matched by name: no TF import
        pass

    oom = known_failure(ResourceExhaustedError("OOM when allocating tensor with "
                                               "shape[10000000,20,28] and type float"))
    assert "out of memory for a tensor of shape [10000000,20,28]" in str(oom)
    disk = known_failure(OSError(errno.ENOSPC, "No space left on device", "/x/y"))
    assert str(disk).startswith("/x/y: disk full")
    try:
        np.random.default_rng(-1)
    except ValueError as exc:
        assert "NumPy refused a value" in str(known_failure(exc))
    assert "cannot write 'é' in the ascii encoding" in str(known_failure(_encode_error()))
    assert known_failure(TypeError("a bug")) is None
    assert known_failure(ValueError("ours")) is None  # raised in textgen: a bug


def _encode_error() -> UnicodeEncodeError:
    try:
        "é".encode("ascii")
    except UnicodeEncodeError as exc:
        return exc
    raise AssertionError


def test_a_bug_prints_its_traceback_and_asks_for_a_report(cli, tiny_run, monkeypatch):
    import textgen.generate.sampling as sampling

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(sampling, "load_sampler", broken)
    result = cli("sample", "--model", str(tiny_run.path), "--length", "5")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "this is a bug in textgen" in result.stderr.strip().splitlines()[-1]


def test_any_whole_rng_seed_samples_and_trains(cli, tiny_run):
    """2. One rule for the CLI, the Python API and the server: any whole number (sampling's
    draws take it modulo 2**64, training's generators modulo 2**32)."""
    from textgen.training.options import TrainOptions

    assert TrainOptions(rng_seed=-1).rng_seed == 2**32 - 1
    assert TrainOptions(rng_seed=2**40 + 5).rng_seed == 5
    texts = []
    for seed in ("-1", str(2**64 - 1)):
        result = cli("sample", "--model", str(tiny_run.path), "--length", "30",
                     "--rng-seed", seed)
        assert result.exit_code == 0, result.stderr
        texts.append(result.stdout)
    assert texts[0] == texts[1] and len(texts[0]) > 30


def test_the_server_takes_a_negative_rng_seed_as_the_cli_does(tiny_run):
    from starlette.testclient import TestClient

    from textgen.serve.app import create_app
    from textgen.serve.models import load_models

    models = load_models([str(tiny_run.path)], tiny_run.path.parent)
    try:
        client = TestClient(create_app(models, log=lambda line: None),
                            raise_server_exceptions=False)
        answers = [client.post("/v1/generate", json={"length": 30, "rng_seed": seed}).json()
                   for seed in (-1, 2**64 - 1)]
    finally:
        for model in models.values():
            model.engine.stop()
    assert answers[0]["finish_reasons"] == ["length"], answers[0]
    assert answers[0]["samples"] == answers[1]["samples"] and answers[0]["samples"][0]


def test_a_closed_stdin_is_one_line(tiny_classifier_run):
    """3. `classify predict - <&-` was a TypeError traceback."""
    proc = subprocess.run(["bash", "-c", f'"{sys.executable}" -m textgen classify predict '
                           f'--model "{tiny_classifier_run.path}" - <&-'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "stdin is closed" in one_line_error(proc.stderr)


def test_stdin_is_decoded_as_files_are(cli, tiny_classifier_run, monkeypatch):
    """4. Random bytes on stdin were a TensorFlow ValueError; now --encoding and
    --decode-errors apply as they do to files."""
    import io
    import random

    rng = random.Random(3)
    noise = bytes(rng.randrange(256) for _ in range(3000))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(noise)))
    result = cli("classify", "predict", "--model", str(tiny_classifier_run.path), "-")
    assert result.exit_code == 2
    assert "stdin: a binary file (a NUL byte in its first 8,192 bytes, and byte 0xbd at " \
           "offset 2 is not valid UTF-8), not text" in one_line_error(result.stderr)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(noise)))
    result = cli("classify", "predict", "--model", str(tiny_classifier_run.path), "-",
                 "--decode-errors", "replace")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") >= 5
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("très bon\n".encode("latin-1"))))
    result = cli("classify", "predict", "--model", str(tiny_classifier_run.path), "-",
                 "--encoding", "latin-1")
    assert result.exit_code == 0 and result.stdout.endswith("\ttrès bon\n"), result


def test_an_export_that_fails_late_leaves_no_temporary_folder(cli, tiny_run, tmp_path,
                                                             monkeypatch):
    """5. A full disk during tf.saved_model.save: one line, no `.exp.tmp/` left, and an
    existing export replaced with --overwrite is kept."""
    import errno

    import tensorflow as tf

    def full_disk(module, path, signatures=None):
        Path(path).mkdir(exist_ok=True)
        (Path(path) / "variables").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(path) / "variables"))

    monkeypatch.setattr(tf.saved_model, "save", full_disk)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "saved_model.pb").write_text("the old export")
    result = cli("export", str(tiny_run.path), "-o", str(tmp_path / "exp"), "--overwrite")
    assert result.exit_code == 2
    assert "disk full" in one_line_error(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    assert (tmp_path / "exp" / "saved_model.pb").read_text() == "the old export"


def test_an_overwrite_stopped_between_its_renames_keeps_the_old_export(tiny_run, tmp_path,
                                                                        monkeypatch):
    """`--overwrite` deleted the old export before renaming the new one in: stopped there,
    both were lost. The old one is now set aside by a rename, and put back."""
    import socket

    from textgen.export import export_savedmodel
    from textgen.runs import find_model

    model = find_model(tiny_run.path)
    output = tmp_path / "exp"
    export_savedmodel(model, output)
    old = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}
    real_rename = Path.rename

    def stopped_at_the_second(self: Path, target: Path) -> Path:
        if Path(target) == output and self.suffix == ".tmp":  # the new export's: Ctrl-C there
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", stopped_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        export_savedmodel(model, output, overwrite=True)
    monkeypatch.undo()
    assert {p.relative_to(output): p.read_bytes()
            for p in output.rglob("*") if p.is_file()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    # killed (-9) between the renames: the old export set aside stays until a swap finishes
    host = re.sub(r"[^\w-]", "_", socket.gethostname())
    aside = tmp_path / f".exp.{host}.999999999-0badc0de.old"
    output.rename(aside)
    export_savedmodel(model, tmp_path / "exp", overwrite=True)
    assert aside.is_dir()
    export_savedmodel(model, tmp_path / "exp", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_an_export_keeps_the_users_folders_and_exports_what_the_run_serves(cli, tiny_run,
                                                                           tmp_path):
    """A folder named `.exp.tmp` beside `-o exp` was the export's scratch space, deleted; a
    run folder named `model.keras` exported its best.keras as if that file had been named;
    without last.keras the error sent the user to train the run again."""
    (tmp_path / ".exp.tmp").mkdir()
    (tmp_path / ".exp.tmp" / "notes.txt").write_text("precious")
    # an export killed mid-save left its scratch folder (each kill another): the next export
    # to the name removes it; one whose process runs (this one) stays
    import socket

    host = re.sub(r"[^\w-]", "_", socket.gethostname())
    (tmp_path / f".exp.{host}.999999999-0badc0de.tmp" / "variables").mkdir(parents=True)
    (tmp_path / f".exp.{host}.{os.getpid()}-0badc0de.tmp").mkdir()  # its process runs
    (tmp_path / ".exp.other-host.999999999-0badc0de.tmp").mkdir()  # another machine's
    (tmp_path / ".exp.2024.tmp").mkdir()  # the user's
    shutil.copytree(tiny_run.path, tmp_path / "ck" / "model.keras")
    result = cli("export", "model.keras", "--checkpoint-dir", str(tmp_path / "ck"),
                 "-o", str(tmp_path / "exp"))
    assert result.exit_code == 0, result.stderr
    assert f"from {tmp_path / 'ck' / 'model.keras' / 'last.keras'} " in result.stdout
    assert (tmp_path / ".exp.tmp" / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f".exp.{host}.{os.getpid()}-0badc0de.tmp", ".exp.other-host.999999999-0badc0de.tmp",
        ".exp.2024.tmp", ".exp.tmp", "ck", "exp"])
    (tmp_path / "ck" / "model.keras" / "last.keras").unlink()
    result = cli("export", "model.keras", "--checkpoint-dir", str(tmp_path / "ck"),
                 "-o", str(tmp_path / "exp2"))
    assert result.exit_code == 2
    assert one_line_error(result.stderr).endswith(
        "model.keras: no last.keras; use its best model (--checkpoint best)")


def test_export_overwrite_replaces_only_an_earlier_export(cli, tiny_run, tmp_path,
                                                           monkeypatch):
    """`-o .. --overwrite` once deleted the parent folder, `-o RUN --overwrite` the run."""
    parent, here = tmp_path / "work", tmp_path / "work" / "here"
    here.mkdir(parents=True)
    (parent / "precious.txt").write_text("keep me")
    (here / "notes.txt").write_text("keep me too")
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_copy)
    monkeypatch.chdir(here)
    (run_copy / "backup").mkdir(exist_ok=True)
    (tmp_path / "into-backup").symlink_to(run_copy / "backup")  # a link was not followed
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cases = {"..": "is not an earlier export (no saved_model.pb)",
             ".": "is not an earlier export", "": "is empty; give a file or folder name",
             str(run_copy): "is not an earlier export",
             "notes.txt": "is not an earlier export",
             # the run's own folders: its next training removed an export written there
             str(run_copy / "backup"): "inside the run folder's backup/, which its training",
             str(run_copy / "tensorboard" / "x"): "inside the run folder's tensorboard/",
             str(tmp_path / "into-backup" / "x"): "inside the run folder's backup/"}
    for target, message in cases.items():
        result = cli("export", str(run_copy), "-o", target, "--overwrite")
        assert result.exit_code == 2, (target, result.stderr)
        assert message in one_line_error(result.stderr)
        # without --overwrite, the same: --overwrite is not offered where it would not do
        result = cli("export", str(run_copy), "-o", target)
        assert result.exit_code == 2 and message in one_line_error(result.stderr)
        assert "pass --overwrite" not in result.stderr
    # An earlier export that holds the current folder or the run is not deleted either.
    (parent / "saved_model.pb").write_text("an old export")
    for overwrite in (["--overwrite"], []):  # --overwrite is not offered where it is refused
        result = cli("export", str(run_copy), "-o", "..", *overwrite)
        assert result.exit_code == 2
        assert "holds the current folder" in one_line_error(result.stderr)
    (run_copy / "saved_model.pb").write_text("odd, but the run is inside")
    result = cli("export", str(run_copy), "-o", str(run_copy), "--overwrite")
    assert result.exit_code == 2 and "holds the run exported" in one_line_error(result.stderr)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == sorted([*before, Path("work/saved_model.pb"), Path("run/saved_model.pb")])
    assert (parent / "precious.txt").read_text() == "keep me"


def test_an_export_on_a_full_disk(cli, tiny_run, tmp_path):
    where = tmp_path / "tiny-disk"
    if not _mount_tmpfs(where, "size=40k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        result = cli("export", str(tiny_run.path), "-o", str(where / "exp"))
        assert result.exit_code == 2, result.stderr
        assert "disk full" in one_line_error(result.stderr)
        assert list(where.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_overwrite_deletes_nothing_until_the_new_run_passes_its_checks(cli, tiny_run,
                                                                       tmp_path):
    """6. A text refused as too short once left the old run already deleted."""
    ckpt = tmp_path / "ck"
    shutil.copytree(tiny_run.path, ckpt / "old")
    before = {p.name: p.read_bytes() for p in (ckpt / "old").iterdir() if p.is_file()}
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    result = cli("train", str(short), "--run-name", "old", "--overwrite",
                 "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 2
    assert "too short" in one_line_error(result.stderr)
    assert {p.name: p.read_bytes() for p in (ckpt / "old").iterdir() if p.is_file()} == before


def test_overwrite_and_resume_never_delete_through_a_link_the_user_put_in_the_run(
        cli, tiny_run, tiny_corpus, tmp_path):
    """--overwrite called rmtree on a linked folder (an error, after which the old run was
    gone and no new one made); every train removed `.*.tmp*` files inside linked folders."""
    ckpt = tmp_path / "ck"
    shutil.copytree(tiny_run.path, ckpt / "old")
    outside = tmp_path / "logs"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine")
    (outside / ".draft.tmp.txt").write_text("mine too")
    (ckpt / "old" / "logs").symlink_to(outside, target_is_directory=True)
    (ckpt / "old" / ".last.x1y2z3w4.tmp.keras").write_bytes(b"left by a killed process")
    # a run folder that is itself a link (to a larger disk) is cleaned as any other
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tiny_run.path, elsewhere)
    (elsewhere / ".best.a1b2c3d4.tmp.keras").write_bytes(b"left by a killed process")
    (ckpt / "linked").symlink_to(elsewhere, target_is_directory=True)
    result = cli("train", str(tiny_corpus), "--resume", "--run-name", "linked",
                 "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 0, result.stderr
    assert not (elsewhere / ".best.a1b2c3d4.tmp.keras").exists()
    result = cli("train", str(tiny_corpus), "--resume", "--run-name", "old",
                 "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 0, result.stderr
    assert not (ckpt / "old" / ".last.x1y2z3w4.tmp.keras").exists()
    assert (outside / ".draft.tmp.txt").read_text() == "mine too"
    # --overwrite deletes only a run: the user's link (and anything of theirs) is named
    refused = cli("train", str(tiny_corpus), *TINY, "--run-name", "old", "--overwrite",
                  "--checkpoint-dir", str(ckpt))
    assert refused.exit_code == 2
    assert (f"error: --overwrite would delete what {ckpt / 'old'} holds besides the run: logs/;"
            " move it out of the run folder, or train under another --run-name NAME") in (
        " ".join(refused.stderr.split()))
    assert (ckpt / "old" / "logs").is_symlink()
    (ckpt / "old" / "logs").unlink()
    # hidden, or named like a temporary, still the user's (only textgen's temporaries are not)
    for name in (".git", ".scratch.tmp"):
        (ckpt / "old" / name).mkdir()
    (ckpt / "old" / ".env.tmpl").write_text("KEY=1")
    refused = cli("train", str(tiny_corpus), *TINY, "--run-name", "old", "--overwrite",
                  "--checkpoint-dir", str(ckpt))
    assert refused.exit_code == 2
    assert ".env.tmpl, .git/, .scratch.tmp/;" in " ".join(refused.stderr.split())
    for name in (".git", ".scratch.tmp"):
        (ckpt / "old" / name).rmdir()
    (ckpt / "old" / ".env.tmpl").unlink()
    (ckpt / "old" / ".DS_Store").write_bytes(b"Finder's")  # a file browser's, nobody's work
    result = cli("train", str(tiny_corpus), *TINY, "--run-name", "old", "--overwrite",
                 "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 0, result.stderr
    assert (ckpt / "old" / "run.json").is_file()
    assert sorted(p.name for p in outside.iterdir()) == [".draft.tmp.txt", "notes.txt"]


def test_an_output_never_replaces_a_file_the_run_needs(cli, tiny_run, tmp_path):
    """`sample -o checkpoints/x/last.keras` (or run.json) wrote the text over it: exit 0, and
    the run was gone."""
    run = tmp_path / "ck" / "copy"
    shutil.copytree(tiny_run.path, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for name in ("last.keras", "run.json", "vocab.json", "history.csv", "other.keras"):
        result = cli("sample", "--model", str(run), "--length", "5", "-o", str(run / name))
        assert result.exit_code == 2
        assert one_line_error(result.stderr).endswith(
            f"--output {run / name}: a file of the run in {run}; writing there would "
            "destroy the run, so choose another name")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert cli("sample", "--model", str(run), "--length", "5", "-o",
               str(run / "sample.txt")).exit_code == 0  # a file of its own there is fine
    assert cli("plot", str(run)).exit_code == 0  # as is the plot's own history.png


def test_output_names_the_file_system_takes_are_written_however_long(cli, tiny_run, tmp_path):
    """A 250-byte name was refused as too long: the temporary's additions made it 264."""
    from textgen.errors import default_run_name

    name = "y" * 246
    result = cli("sample", "--model", str(tiny_run.path), "--length", "10",
                 "-o", str(tmp_path / f"{name}.txt"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / f"{name}.txt").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.txt"]
    # a run named after a long file can be named with --run-name too
    assert default_run_name("x" * 250) == "x" * 200
    # control characters, which --run-name refuses, are '_' (a file named "my<TAB>book.txt")
    assert [default_run_name(n) for n in ("my\tbook", "\x1b[31mred", "a\nb")] == [
        "my_book", "_[31mred", "a_b"]
    assert default_run_name("é" * 150).encode() == "é".encode() * 100
    # a name's bytes that are not UTF-8 count as the bytes they are
    assert default_run_name(os.fsdecode(b"\xe9" * 250)) == os.fsdecode(b"\xe9" * 200)
    from textgen.errors import check_run_name
    from textgen.runs import write_output

    for stem, name in ((" .notes", "notes"), (". .x", "x"), ("a\\b", "a_b"),
                       ("x" * 250, "x" * 200)):
        assert default_run_name(stem) == name
        check_run_name(name)  # --run-name takes it
    # a long suffix: the temporary does not keep it whole
    long_suffix = tmp_path / f"samples.{'y' * 240}"
    write_output(long_suffix, "hi")
    assert long_suffix.read_text() == "hi"


def test_a_closed_stderr_pipe_does_not_stop_training(tiny_corpus, tmp_path):
    """`textgen train ... 2>&1 | head -3`: the first note after head quit raised
    BrokenPipeError in a callback; training stopped half-way with exit 1."""
    ckpt = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "textgen", "train", str(tiny_corpus),
                             *TINY_GENERATOR, "--epochs", "3", "--checkpoint-dir", str(ckpt)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stderr.readline()  # the first line, as head would, then the reader goes
    proc.stderr.close()
    assert proc.wait(timeout=300) == 0
    meta = json.loads((ckpt / tiny_corpus.stem / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 3


def test_a_closed_stderr_trains_and_answers(tiny_corpus, tmp_path):
    """`textgen train ... 2>&-`: every command that loads TensorFlow failed with a traceback
    (sys.stderr is None) on stdout, exit 1."""
    ckpt = tmp_path / "ck"
    command = [sys.executable, "-m", "textgen", "train", str(tiny_corpus), *TINY_GENERATOR,
               "--epochs", "2", "--checkpoint-dir", str(ckpt)]
    result = subprocess.run(["bash", "-c", " ".join(f"'{a}'" for a in command) + " 2>&-"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout
    assert "Traceback" not in result.stdout and "best model" in result.stdout
    assert json.loads((ckpt / tiny_corpus.stem / "run.json").read_text())["training"][
        "epochs_done"] == 2


def test_a_full_stdout_is_an_error_and_a_closed_pipe_is_not(tiny_run):
    """7. `textgen sample > /dev/full` said nothing and exited 0."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "textgen", "sample", "--model",
                               str(tiny_run.path), "--length", "50"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2
    assert "standard output: disk full" in one_line_error(proc.stderr)


@pytest.fixture
def full_device(tmp_path):
    """A device node that refuses writes as /dev/full does, inside tmp_path (needs root)."""
    path = tmp_path / "full"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except (PermissionError, OSError):
        pytest.skip("cannot make a device node here (needs root)")
    return path


def test_an_output_that_is_a_device_is_written_to_never_replaced(cli, tiny_run, full_device):
    """8. `sample -o /dev/full` exited 0 and replaced the device node with a regular file."""
    result = cli("sample", "--model", str(tiny_run.path), "--length", "20",
                 "-o", str(full_device))
    assert result.exit_code == 2
    assert f"{full_device}: disk full" in one_line_error(result.stderr)
    assert stat.S_ISCHR(full_device.stat().st_mode)
    result = cli("plot", str(tiny_run.path), "-o", str(full_device))
    assert result.exit_code == 2 and stat.S_ISCHR(full_device.stat().st_mode)


def _read_fifo(path: Path, into: list) -> None:
    import threading

    def read() -> None:
        with open(path, "rb") as f:
            into.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_an_output_that_is_a_named_pipe_gets_the_text(cli, tiny_run, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    result = cli("sample", "--model", str(tiny_run.path), "--length", "20", "--rng-seed", "1",
                 "-o", str(fifo))
    reader.join(30)
    assert result.exit_code == 0, result.stderr
    assert len(got[0].decode()) > 20 and stat.S_ISFIFO(fifo.stat().st_mode)
    reader = _read_fifo(fifo, got)
    result = cli("plot", str(tiny_run.path), "-o", str(fifo))
    reader.join(30)
    assert result.exit_code == 0 and got[1].startswith(b"\x89PNG")
    result = cli("export", str(tiny_run.path), "-o", str(fifo))
    assert result.exit_code == 2 and "is a device or pipe" in one_line_error(result.stderr)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_evaluate_counts_the_examples_of_classes_the_model_never_saw(cli, tiny_classifier_run,
                                                                     tmp_path):
    """9. A class folder the model does not know was dropped without a word."""
    from tests.test_classify import write_reviews

    write_reviews(tmp_path / "data", {"neg": 5, "pos": 5}, seed=1)
    (tmp_path / "data" / "neutral").mkdir()
    for i in range(3):
        (tmp_path / "data" / "neutral" / f"{i}.txt").write_text("an ordinary film")
    args = ("classify", "evaluate", str(tmp_path / "data"), "--model",
            str(tiny_classifier_run.path))
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "3 examples of classes the model does not know were left out: neutral (3)" \
        in result.stderr
    assert "over the model's classes (neg, pos) only" in result.stderr
    figures = json.loads(cli(*args, "--json").stdout)
    assert figures["left_out"] == {"neutral": 3} and figures["examples"] == 10
    # A folder may hold only some of the model's classes, as a table may; an empty unknown
    # folder and files in sub-folders (never read) are not counted.
    shutil.rmtree(tmp_path / "data" / "neg")
    (tmp_path / "data" / "other").mkdir()
    for name in ("1.txt", "2.txt"):
        (tmp_path / "data" / "neutral" / name).unlink()
    (tmp_path / "data" / "neutral" / "deeper").mkdir()
    (tmp_path / "data" / "neutral" / "deeper" / "x.txt").write_text("not read")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "note: 1 example of classes the model does not know was left out: " \
           "neutral (1);" in result.stderr
    figures = json.loads(cli(*args, "--json").stdout)
    assert figures["examples"] == 5 and figures["classes"]["neg"]["support"] == 0
    assert figures["left_out"] == {"neutral": 1}
    none = cli("classify", "evaluate", str(tmp_path / "data" / "other"), "--model",
               str(tiny_classifier_run.path))
    assert none.exit_code == 2
    assert "none of the model's class folders (neg, pos) holds files" in none.stderr


@pytest.mark.parametrize("encoding,cut", [("utf-16", 1), ("utf-32", 0), ("utf-32", 3)])
def test_utf8_text_read_as_utf32_or_with_an_odd_length_as_utf16_gets_the_same_advice(
        tmp_path, tiny_corpus, encoding, cut):
    """The strict decode failed on a stray byte before the misread check ran, and the advice
    was --decode-errors replace (which then met that check)."""
    from textgen.reading import Decoding

    data = tiny_corpus.read_bytes()
    data = data[: len(data) - len(data) % 4 - cut]  # an odd length; any for UTF-32
    with pytest.raises(TextgenError) as info:
        Decoding(encoding).decode(data, "speech.txt")
    assert re.search(f"looks like UTF-8 text read as {encoding} .*; read it as UTF-8 "
                     r"\(--encoding utf-8\)", info.value.for_cli())
    assert "read it as UTF-8 (encoding='utf-8')" in str(info.value)  # the Python API's words


def test_utf8_text_a_single_byte_encoding_refuses_is_told_to_be_read_as_utf8():
    """cp1252 refused UTF-8 text (a byte it leaves undefined) with the advice to try latin-1,
    which then trained on mojibake."""
    from textgen.reading import Decoding

    with pytest.raises(TextgenError) as info:
        Decoding("cp1252").decode("\u00cdNDICE of the play\n".encode(), "speech.txt")
    assert info.value.for_cli() == ("speech.txt: not valid cp1252 text (byte 0x8d at offset 1); "
                                    "it is valid UTF-8 text: read it as UTF-8 (--encoding "
                                    "utf-8)")
    # a genuine single-byte text stays itself, and a byte-order mark stays out of the text
    assert Decoding("cp1252").decode("JOS\u00c9\u2019S TACOS\n".encode("cp1252"), "a") == \
        "JOS\u00c9\u2019S TACOS\n"
    assert Decoding("utf-16-le").decode("\ufeffhi\n".encode("utf-16-le"), "a.txt") == "hi\n"


def test_a_binary_file_is_named_as_binary_not_told_to_try_latin1(tmp_path):
    """A program's bytes are not valid UTF-8: the advice was --encoding latin-1, which then
    trained on them."""
    from textgen.reading import Decoding

    program = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    with pytest.raises(TextgenError, match=r"prog: a binary file \(a NUL byte in its first "
                                           r"8,192 bytes, and byte 0x80 at offset 136 is not "
                                           r"valid UTF-8\), not text; give a text file"):
        Decoding().decode(program, "prog")


def test_utf8_text_read_as_utf16_is_refused(tmp_path, tiny_corpus):
    """10. --encoding utf-16 on UTF-8 text trained on garbled characters without a word."""
    code, imported, stderr = run_without_tensorflow(
        "train", str(tiny_corpus), "--encoding", "utf-16", "--checkpoint-dir",
        str(tmp_path / "ck"))
    assert code == 2 and not imported
    assert "looks like UTF-8 text read as utf-16" in one_line_error(stderr)
    real = tmp_path / "real-utf16.txt"
    real.write_bytes(tiny_corpus.read_text().encode("utf-16"))
    from textgen.reading import Decoding, read_text

    assert read_text(real, Decoding("utf-16")) == tiny_corpus.read_text()
    assert read_text(tiny_corpus, Decoding("latin-1")) == tiny_corpus.read_text()


def test_an_empty_text_to_classify_is_refused(cli, tiny_classifier_run):
    result = cli("classify", "predict", "--model", str(tiny_classifier_run.path), "good", " ")
    assert result.exit_code == 2
    assert "text 2 is empty" in one_line_error(result.stderr)


def test_a_missing_best_model_is_said(cli, tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.path, copy)
    (copy / "best.keras").unlink()
    result = cli("evaluate", str(copy / "vocab.json"), "--model", str(copy), "--json")
    assert result.exit_code == 0, result.stderr
    assert f"note: {copy / 'best.keras'} is missing; using last.keras" in result.stderr


def test_a_text_too_short_after_tensorflow_leaves_no_empty_run_folder(cli, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    result = cli("train", str(short), "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 2
    assert "too short" in one_line_error(result.stderr)
    assert not (tmp_path / "ck" / "short").exists()


def test_too_many_samples_for_memory_are_refused(cli, tiny_run):
    result = cli("sample", "--model", str(tiny_run.path), "--num-samples", "10000000000")
    assert result.exit_code == 2
    assert "use --num-samples" in one_line_error(result.stderr)
    # One sample too long: the advice is a length (it once said "--num-samples 1 or less").
    result = cli("sample", "--model", str(tiny_run.path), "--length", str(10**20))
    assert result.exit_code == 2
    message = one_line_error(result.stderr)
    assert f"--length {10**20:,} needs about" in message and "use --length " in message
    assert "--num-samples" not in message
    # The Python API has no num_samples: many seeds at once are told a length that fits.
    from textgen.generate.sampling import SamplingSettings, load_sampler

    sampler = load_sampler(tiny_run)
    with pytest.raises(TextgenError, match=r"^length .* needs about .* for 100,000 samples, .*"
                                           r"use length=\d+ or less$"):
        sampler.sample_many(["To"] * 100_000, [SamplingSettings(length=10**12)] * 100_000)


def test_a_failed_atomic_write_names_the_file_not_its_temporary(tmp_path, monkeypatch):
    """`plot -o` on a read-only folder named `.x.rlq6xjb2.tmp.png`, a file the user never saw."""
    import errno
    import tempfile

    from textgen.errors import os_error_message
    from textgen.runs import write_output

    target = tmp_path / "plot.png"

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".plot.x.tmp.png"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as info:
        write_output(target, b"png")
    assert os_error_message(info.value) == f"{target}: read-only file system; choose a " \
                                           "folder you can write to"
    monkeypatch.undo()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as info:
        write_output(target, b"png")
    assert os_error_message(info.value).startswith(f"{target}: disk full")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too
    monkeypatch.undo()

    def nameless(self, data):  # as h5py and Keras raise them
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", nameless)
    with pytest.raises(OSError) as info:
        write_output(target, b"png")
    assert os_error_message(info.value).startswith(f"{target}: disk full")


def test_a_label_with_escape_codes_cannot_drive_the_terminal(cli, tiny_classifier_run,
                                                             monkeypatch):
    """A table's label could be anything: printed escaped, as the texts are."""
    from textgen.classify import prediction

    monkeypatch.setattr(prediction, "predict_texts", lambda texts, model: [
        {"label": "pos\x1b[2J", "probability": 0.9, "text": text} for text in texts])
    result = cli("classify", "predict", "good\x1b]0;x\x07", "--model",
                 str(tiny_classifier_run.path))
    assert result.stdout == "pos\\x1b[2J\t0.9000\tgood\\x1b]0;x\\x07\n"


@pytest.mark.skipif(sys.platform != "linux", reason="a file name that is not UTF-8 needs Linux")
def test_a_file_name_that_is_not_utf8_trains_and_is_recorded_as_named(tmp_path, tiny_corpus):
    """run.json records the text's path and the summary prints it: its bytes that are not
    UTF-8 were a 'cannot write' error after training, and no run. Now the JSON escapes them
    (they read back as the same path) and the terminal gets the bytes, as `ls` prints them;
    stdout here is strict UTF-8, as in a user's UTF-8 locale."""
    corpus = tmp_path / os.fsdecode(b"speech-\xe9.txt")
    shutil.copy(tiny_corpus, corpus)
    ck = tmp_path / "ck"
    done = subprocess.run([sys.executable, "-m", "textgen", "train", str(corpus), *TR, "--base",
                           "none", "--checkpoint-dir", str(ck)], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"}, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    run = ck / os.fsdecode(b"speech-\xe9")
    assert b"run speech-\xe9\n" in done.stdout and (run / "last.keras").is_file()
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["corpus"] == str(corpus)
    info = subprocess.run([sys.executable, "-m", "textgen", "info", str(run), "--json"],
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})
    assert info.returncode == 0 and json.loads(info.stdout)["data"] == str(corpus)


def test_a_symbolic_link_loop_given_as_the_text_is_one_line(tmp_path):
    """Naming the run resolved the path first: a loop was a RuntimeError's traceback."""
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    code, imported, stderr = run_without_tensorflow("train", str(tmp_path / "a.txt"),
                                                    "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported
    assert "a.txt: a symbolic link to nothing (broken, or a loop)" in one_line_error(stderr)
    code, imported, stderr = run_without_tensorflow("classify", "train", str(tmp_path / "a.txt"),
                                                    "--checkpoint-dir", str(tmp_path / "ck"))
    assert code == 2 and not imported


def test_a_run_on_the_folder_holding_its_checkpoints_resumes(cli, tiny_corpus, tmp_path,
                                                               monkeypatch):
    """`textgen train .` in a project folder: the default checkpoints/ is inside the text's
    folder. Its run.json and history were read as text, so the text changed as the run
    trained and --resume was refused ("not the text run ... was trained on")."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(tiny_corpus, project / "speech.txt")
    monkeypatch.chdir(project)
    first = cli("train", ".", "--base", "none", "--epochs", "1", *TINY_GENERATOR)
    assert first.exit_code == 0, first.stderr
    resumed = cli("train", ".", "--base", "none", "--epochs", "2", "--resume", *TINY_GENERATOR)
    assert resumed.exit_code == 0, resumed.stderr
    assert "skipped 1 textgen run or export folder(s)" in " ".join(resumed.stderr.split())
    meta = json.loads((project / "checkpoints" / "project" / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 2


def test_a_folder_run_resumes_with_its_own_glob_and_separator(cli, tiny_corpus, tmp_path):
    """--resume read the folder with every file and a blank line between them, where the run
    had read only its --glob's files joined by its --doc-separator: refused as another text
    ("give it"), though the same folder was given."""
    songs = tmp_path / "songs"
    songs.mkdir()
    text = tiny_corpus.read_text()
    (songs / "a.md").write_text(text[: len(text) // 2])
    (songs / "b.md").write_text(text[len(text) // 2 :])
    (songs / "notes.txt").write_text("not a song at all\n")
    ck = ["--checkpoint-dir", str(tmp_path / "ck"), "--base", "none", *TINY_GENERATOR]
    first = cli("train", str(songs), "--glob", "*.md", "--doc-separator", "\\n---\\n",
                "--epochs", "1", *ck)
    assert first.exit_code == 0, first.stderr
    resumed = cli("train", str(songs), "--epochs", "2", "--resume", *ck)
    assert resumed.exit_code == 0, resumed.stderr
    assert "read 2 files" in resumed.stderr
    other = cli("train", str(songs), "--glob", "*", "--epochs", "3", "--resume", *ck)
    assert other.exit_code == 2
    assert ("error: --glob '*' differs from the run's (--glob '*.md'); a resumed run reads "
            "its files as it did: leave it out") in " ".join(other.stderr.split())
    # one of its files alone is another text, whatever the options (not "--glob None")
    alone = cli("train", str(songs / "a.md"), "--run-name", "songs", "--epochs", "3", "--resume",
                *ck)
    assert alone.exit_code == 2 and "not the text run songs was trained on" in alone.stderr
    apart = cli("train", str(songs), "--doc-separator", "\\n", "--epochs", "3", "--resume", *ck)
    assert apart.exit_code == 2 and apart.stderr.count("\n") == 2, apart.stderr  # one line
    assert ("error: --doc-separator '\\n' differs from the run's (--doc-separator '\\n---\\n');"
            in apart.stderr)


def test_a_start_killed_while_writing_its_first_run_json_can_be_started_again(cli, tiny_corpus,
                                                                                tmp_path):
    """It leaves the lock and a temporary run.json: every retry was refused as a folder that
    "holds files but no run", --overwrite and --resume alike."""
    run = tmp_path / "ck" / "killed"
    run.mkdir(parents=True)
    (run / ".lock").write_text("")
    (run / ".run.abcd1234.tmp.json").write_text('{"format_ver')
    result = cli("train", str(tiny_corpus), "--base", "none", "--epochs", "1", *TINY_GENERATOR,
                 "--run-name", "killed", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    assert (run / "run.json").is_file() and not (run / ".run.abcd1234.tmp.json").exists()


def test_a_pipe_in_place_of_a_runs_file_is_refused_not_read_for_ever(tiny_run, tmp_path):
    """A FIFO named run.json, history.csv or vocab.json made `runs`, `info`, `plot` and
    `sample` wait for ever (a link to /dev/zero read until memory ran out)."""
    ckpt = tmp_path / "ck"
    for name in ("meta", "history", "vocab", "fine"):
        shutil.copytree(tiny_run.path, ckpt / name)
    for name, file in (("meta", "run.json"), ("history", "history.csv"),
                       ("vocab", "vocab.json")):
        (ckpt / name / file).unlink()
        os.mkfifo(ckpt / name / file)
    listed = run_subprocess("runs", "--checkpoint-dir", str(ckpt), timeout=60)
    assert listed.returncode == 0
    assert f"warning: {ckpt / 'meta' / 'run.json'}: not a regular file; a run's files are " \
           "textgen's own: put the file back, or train the run again" in listed.stderr
    assert all(name in listed.stdout for name in ("history", "vocab", "fine"))
    for args, file in ((["info", "history"], "history/history.csv"),
                       (["plot", "history"], "history/history.csv"),
                       (["sample", "--model", "vocab", "--length", "5"], "vocab/vocab.json")):
        refused = run_subprocess(*args, "--checkpoint-dir", str(ckpt), timeout=60)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"{ckpt / file}: not a regular file" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_length_far_past_memory_is_said_in_whole_gigabytes(cli, tiny_run):
    """It said "about 800,000,000,000,000.1 GB": a float's last digits."""
    result = cli("sample", "--model", str(tiny_run.path), "--length", "9" * 23)
    assert result.exit_code == 2
    assert "needs about 800,000,000,000,000 GB for 1 sample, more than half the " in \
        one_line_error(result.stderr)
