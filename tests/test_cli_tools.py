"""Living with runs: runs/info tables and JSON, plots, TensorBoard, interactive sampling,
SavedModel export, environment defaults and quiet TensorFlow."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys

import pytest

from tests.conftest import run_subprocess, run_without_tensorflow, write_reviews
from textgen.runs import RunDir

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ckpt_with_runs(tmp_path_factory, tiny_corpus):
    """A checkpoint folder with a tiny generator run (with TensorBoard logs) and a classifier."""
    from textgen.classify.train import train_classifier
    from textgen.generate.train import train_generator

    ckpt = tmp_path_factory.mktemp("ck")
    train_generator(tiny_corpus, checkpoint_dir=ckpt, epochs=2, steps_per_epoch=3, batch_size=4,
                    seq_length=16, units=16, embed_dim=8, tensorboard=True)
    data = write_reviews(tmp_path_factory.mktemp("reviews"), {"neg": 20, "pos": 20})
    train_classifier(data, epochs=2, batch_size=8, val_split=0.2, checkpoint_dir=ckpt,
                     run_name="reviews", arch="lstm", max_tokens=60, seq_length=10, embed_dim=8,
                     units=8)
    return ckpt


def test_runs_lists_both_modes(cli, ckpt_with_runs):
    result = cli("runs", "--checkpoint-dir", str(ckpt_with_runs))
    assert result.exit_code == 0, result.stderr
    for text in ("hamlet", "reviews", "generate", "classify", "bits/char", "accuracy"):
        assert text in result.stdout
    data = json.loads(cli("runs", "--json", "--checkpoint-dir", str(ckpt_with_runs)).stdout)
    assert {r["name"] for r in data} == {"hamlet", "reviews"}
    keys = {"name", "mode", "data", "epochs_done", "epochs_requested", "unfinished",
            "best_metric", "best_value", "size_bytes", "modified", "path"}
    assert all(set(r) == keys for r in data)
    generator = next(r for r in data if r["mode"] == "generate")
    assert generator["epochs_done"] == 2 and generator["best_metric"] == "val_bits_per_char"
    assert (generator["epochs_requested"], generator["unfinished"]) == (2, False)
    assert 0 < generator["best_value"] < 10 and generator["size_bytes"] > 10_000



def test_runs_names_a_split_folder_with_its_data_set():
    from textgen.cli.runs import _data_name

    assert [_data_name(d) for d in ("/d/aclImdb/train", "/d/reviews.csv", "/d/x/test", None)] \
        == ["aclImdb/train", "reviews.csv", "x/test", "-"]

def test_plot_refuses_a_name_that_is_not_png_and_runs_are_never_named_hidden(tmp_path):
    from textgen.errors import default_run_name

    code, imported, stderr = run_without_tensorflow("plot", "hamlet", "-o",
                                                    str(tmp_path / "x.pdf"))
    assert code == 2 and not imported and "plot writes a PNG; give a .png file name" in stderr
    assert [default_run_name(n) for n in (".hidden", "..notes", "song", ".", "-draft")] == [
        "hidden", "notes", "song", "run", "draft"]  # '-draft' no command could take


def test_evaluate_notes_a_text_mostly_outside_the_vocabulary(cli, ckpt_with_runs, tmp_path):
    text = tmp_path / "snow.txt"
    text.write_text("To be, or not to be\n" + "\u2603" * 100)
    result = cli("evaluate", str(text), "--model", "hamlet", "--checkpoint-dir",
                 str(ckpt_with_runs))
    assert result.exit_code == 0, result.stderr
    assert "note: 100 of the 120 characters are outside the model's vocabulary" in \
        " ".join(result.stderr.split())


def test_runs_with_a_file_as_the_checkpoint_dir_is_an_error(cli, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    result = cli("runs", "--checkpoint-dir", str(a_file))
    assert result.exit_code == 2
    assert f"--checkpoint-dir {a_file}: not a directory" in result.stderr
    # a folder that is not there is named, not listed as empty (it was "no runs", exit 0)
    missing = cli("runs", "--json", "--checkpoint-dir", str(tmp_path / "chekpoints"))
    assert missing.exit_code == 2 and missing.stdout == ""
    assert f"--checkpoint-dir {tmp_path / 'chekpoints'}: no such folder" in missing.stderr


def test_runs_reads_the_environment_default(cli, ckpt_with_runs, monkeypatch):
    monkeypatch.setenv("TEXTGEN_CHECKPOINT_DIR", str(ckpt_with_runs))
    data = json.loads(cli("runs", "--json").stdout)
    assert len(data) == 2
    # a folder set in the environment is made by the first run: none yet is no error
    monkeypatch.setenv("TEXTGEN_CHECKPOINT_DIR", str(ckpt_with_runs / "not-yet"))
    none_yet = cli("runs")
    assert none_yet.exit_code == 0 and "no runs in" in none_yet.stderr


def test_a_time_budgeted_run_shows_no_planned_epochs(cli, ckpt_with_runs, tmp_path):
    """`info` and `runs --json` showed the formality 100000 as a --max-time run's epochs."""
    import shutil

    ckpt = tmp_path / "ck"
    shutil.copytree(ckpt_with_runs / "hamlet", ckpt / "timed")
    meta = json.loads((ckpt / "timed" / "run.json").read_text())
    meta["training"].update(epochs_requested=100_000, budget={"minutes": 2, "spent_s": 120})
    (ckpt / "timed" / "run.json").write_text(json.dumps(meta))
    [row] = json.loads(cli("runs", "--json", "--checkpoint-dir", str(ckpt)).stdout)
    assert (row["epochs_requested"], row["unfinished"]) == (None, False)
    data = json.loads(cli("info", "timed", "--json", "--checkpoint-dir", str(ckpt)).stdout)
    assert data["epochs_requested"] is None and data["training"]["epochs_requested"] is None
    shown = cli("info", "timed", "--checkpoint-dir", str(ckpt)).stdout
    assert "100000" not in shown and "2 minutes (2 spent)" in shown
    from textgen.inspection import planned_epochs

    assert planned_epochs({"epochs_requested": 150_000}) == 150_000  # asked for, without budget
    # interrupted with minutes left: unfinished, as a run short of its epochs is (it read as
    # finished); its budget, not an epoch count, is what is left
    meta["training"]["budget"] = {"minutes": 2, "spent_s": 30}
    (ckpt / "timed" / "run.json").write_text(json.dumps(meta))
    [row] = json.loads(cli("runs", "--json", "--checkpoint-dir", str(ckpt)).stdout)
    assert (row["epochs_requested"], row["unfinished"]) == (None, True)
    listed = cli("runs", "--checkpoint-dir", str(ckpt)).stdout
    assert f"{meta['training']['epochs_done']} (budget left)" in listed
    told = " ".join(cli("info", "timed", "--checkpoint-dir", str(ckpt)).stdout.split())
    assert "(budget left) (unfinished: --resume trains on)" in told
    # its epochs done, with minutes left (a classifier's capped epochs): finished
    meta["training"].update(epochs_requested=meta["training"]["epochs_done"])
    (ckpt / "timed" / "run.json").write_text(json.dumps(meta))
    [row] = json.loads(cli("runs", "--json", "--checkpoint-dir", str(ckpt)).stdout)
    assert row["unfinished"] is False


def test_info_shows_hyperparameters_vocabulary_and_versions(cli, ckpt_with_runs):
    result = cli("info", "hamlet", "--json", "--checkpoint-dir", str(ckpt_with_runs))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["hyperparameters"]["units"] == 16
    assert data["vocabulary_size"] == len(set(data["vocabulary"].encode().decode(
        "unicode_escape")))
    assert "\\n" in data["vocabulary"]  # escaped, readable
    assert data["text_characters"] == data["vocabulary_size"]  # from scratch: the same
    assert (data["longest_line"], data["longest_word"]) == (44, 10)  # the tiny text's
    assert data["parameters"] > 1000 and data["history"]["epochs"] == 2
    assert {"best.keras", "last.keras", "history.png", "run.json"} <= set(data["files"])
    assert data["tensorflow_version"].startswith("2.") and data["textgen_version"]
    assert data["history"]["last"]["epoch"] == 2  # figures as numbers, not text
    from textgen.generate.mode import _shown

    assert "".join(map(_shown, "é中\n\t\\")) == "é中\\n\\t\\\\"  # JSON keeps é, escapes \n
    # a combining accent alone would merge with the character listed before it
    assert "".join(map(_shown, "o\u0301")) == "o\\u0301"
    assert isinstance(data["history"]["last"]["loss"], float)
    lines = cli("info", "hamlet", "--checkpoint-dir", str(ckpt_with_runs)).stdout
    assert "│ longest line" in lines and "│ longest word" in lines  # the table, as --json
    table = cli("info", "reviews", "--checkpoint-dir", str(ckpt_with_runs))
    assert "classes" in table.stdout and "max_tokens" in table.stdout
    # How it trains, as --resume keeps it: the batch, the epochs, the split and the seed.
    rows = {" ".join(line.strip("│ ").split("│")[0].split()): line.split("│")[2].strip()
            for line in table.stdout.splitlines() if line.count("│") == 3}
    training = data_of_run(ckpt_with_runs / "reviews")["training"]
    for key in ("batch_size", "steps_per_epoch", "rng_seed", "val_split"):
        value = training[key]
        assert rows[key] == (f"{value:.4g}" if isinstance(value, float) else str(value)), key
    missing = cli("info", "nope", "--checkpoint-dir", str(ckpt_with_runs))
    assert missing.exit_code == 2 and "no run named 'nope'" in missing.stderr
    # A run's .keras file names its run here too, as in every command.
    by_file = cli("info", str(ckpt_with_runs / "hamlet" / "best.keras"), "--json")
    assert by_file.exit_code == 0 and json.loads(by_file.stdout)["name"] == "hamlet"
    not_a_model = cli("sample", "--model", str(ckpt_with_runs / "hamlet" / "history.csv"))
    assert not_a_model.exit_code == 2
    assert "history.csv: neither a run folder nor a .keras file" in not_a_model.stderr



def test_names_are_shown_as_they_are_and_unfinished_runs_say_so(cli, tiny_run, tmp_path):
    """A folder named `[red]alert` showed as `alert` (Rich markup), one with an escape code
    drove the terminal, one not in UTF-8 failed to plot (and its history.png was not drawn);
    an interrupted run looked finished; a NaN figure made `runs --json` write NaN."""
    import shutil

    ck = tmp_path / "ck"
    names = ["[red]alert", "esc\x1b[31m"]
    for name in names:
        shutil.copytree(tiny_run.path, ck / name)
    meta = json.loads((ck / names[0] / "run.json").read_text())
    meta["training"].update(epochs_requested=50, best_logs={"val_bits_per_char": float("nan")})
    (ck / names[0] / "run.json").write_text(json.dumps(meta))
    listed = cli("runs", "--checkpoint-dir", str(ck))
    assert listed.exit_code == 0, listed.stderr
    assert "[red]alert" in listed.stdout and "esc\\x1b[31m" in listed.stdout
    assert "\x1b" not in listed.stdout
    assert " 2 of 50 " in listed.stdout
    rows = json.loads(cli("runs", "--json", "--checkpoint-dir", str(ck)).stdout)
    alert = next(row for row in rows if row["name"] == names[0])
    assert alert["best_value"] is None and alert["unfinished"] is True  # NaN: null in JSON
    info = cli("info", names[0], "--checkpoint-dir", str(ck))
    assert "run [red]alert (generate)" in info.stdout
    assert "2 of 50 (unfinished: --resume trains on)" in " ".join(info.stdout.split())
    # Bytes that are not UTF-8 (Python's lone surrogates), in a folder of their own: the
    # terminal gets them as bytes, as `ls` writes them, which pytest's capture cannot read.
    odd = tmp_path / "odd" / "speech-\udce9"
    shutil.copytree(tiny_run.path, odd)
    (odd / "history.png").unlink()
    from textgen.plots import plot_history

    plot_history(RunDir(odd))
    assert (odd / "history.png").read_bytes().startswith(PNG_SIGNATURE)
    # Several runs with long names: a default file name that fits (it was "name too long").
    long = "x" * 200
    shutil.copytree(tiny_run.path, ck / long)
    both = cli("plot", long, names[0], "--checkpoint-dir", str(ck))
    assert both.exit_code == 0 and (ck / "2-runs.png").exists(), both.stderr
    # A file that is not a run is named as such (it read "no run named ... no such folder").
    not_a_run = cli("info", str(ck / names[0] / "history.csv"))
    assert not_a_run.exit_code == 2
    assert "history.csv: neither a run folder nor a .keras file" in not_a_run.stderr


def data_of_run(folder):
    return json.loads((folder / "run.json").read_text())


def test_info_without_a_run_shows_the_run_updated_last(cli, ckpt_with_runs, tmp_path):
    newest = max(("hamlet", "reviews"),
                 key=lambda name: (ckpt_with_runs / name / "run.json").stat().st_mtime)
    result = cli("info", "--json", "--checkpoint-dir", str(ckpt_with_runs))
    assert result.exit_code == 0 and json.loads(result.stdout)["name"] == newest
    empty = cli("info", "--checkpoint-dir", str(tmp_path))
    assert empty.exit_code == 2 and f"no runs in {tmp_path}/; train one first" in empty.stderr
    assert "(e.g. textgen train)" in " ".join(empty.stderr.split())

def test_every_run_writes_a_history_png(ckpt_with_runs):
    for name in ("hamlet", "reviews"):
        png = (ckpt_with_runs / name / "history.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000


def test_plot_compares_runs_in_one_figure(cli, ckpt_with_runs, tmp_path):
    out = tmp_path / "both.png"
    result = cli("plot", "hamlet", "reviews", "-o", str(out), "--checkpoint-dir",
                 str(ckpt_with_runs))
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (800, 480)
    # one run named twice (by name and by folder) drew its curves twice, each in the legend
    twice = cli("plot", "hamlet", str(ckpt_with_runs / "hamlet"), "-o", str(tmp_path / "2.png"),
                "--checkpoint-dir", str(ckpt_with_runs))
    assert twice.exit_code == 2 and not (tmp_path / "2.png").exists()
    assert twice.stderr.strip() == (f"error: {ckpt_with_runs / 'hamlet'} is named twice; name "
                                    "each run once")


def test_a_run_named_in_a_script_the_font_lacks_plots_without_warnings(ckpt_with_runs,
                                                                       tmp_path):
    import shutil
    import warnings

    import matplotlib

    from textgen.plots import render_png

    named = tmp_path / "莎士比亚"
    shutil.copytree(ckpt_with_runs / "hamlet", named)
    # matplotlib's own font, which has no Chinese, whatever fonts this machine has
    with warnings.catch_warnings(record=True) as caught, \
            matplotlib.rc_context({"font.family": "DejaVu Sans"}):
        warnings.simplefilter("always")
        assert render_png([RunDir(named)]).startswith(PNG_SIGNATURE)
    assert not [w for w in caught if "Glyph" in str(w.message)]


def test_plot_reads_bits_per_char_off_the_loss_and_ticks_whole_epochs(ckpt_with_runs):
    import matplotlib.pyplot as plt

    from textgen.plots import draw

    generator, classifier = RunDir(ckpt_with_runs / "hamlet"), RunDir(ckpt_with_runs / "reviews")
    fig = draw([generator])  # two epochs
    axis = fig.axes[0]
    assert list(axis.get_xticks()) == [1, 2]
    # bits/char is the loss in other units: a scale on the right, not a second pair of lines
    assert [line.get_label() for line in axis.get_lines()] == ["loss", "val loss",
                                                                "best epoch 2"]
    (scale,) = axis.child_axes
    assert scale.get_ylabel() == "bits/char"
    fig.canvas.draw()
    low, high = axis.get_ylim()
    assert scale.get_ylim() == pytest.approx((low / math.log(2), high / math.log(2)))
    plt.close(fig)
    fig = draw([generator, classifier])  # accuracy is not a loss: its own lines and axis
    assert "reviews: val accuracy" in [line.get_label() for line in fig.axes[1].get_lines()]
    plt.close(fig)



def test_plot_of_one_epoch_without_validation_is_readable(ckpt_with_runs, tmp_path):
    """One point: the axis zoomed in on rounding error (labelled 1e-6+3.79733), and the star,
    rebuilt from the rounded bits/char, sat off the loss it marks."""
    import shutil

    import matplotlib.pyplot as plt

    from textgen.plots import draw

    run = RunDir(shutil.copytree(ckpt_with_runs / "hamlet", tmp_path / "one"))
    rows = run.read_history()[:1]
    for row in rows:
        for key in [k for k in row if k.startswith("val_")]:
            del row[key]
    run.history.unlink()
    run.write_history(rows)
    meta = run.read_meta()
    meta["training"].update(best_epoch=1, epochs_done=1)
    run.write_meta(meta)
    fig = draw([run])
    axis = fig.axes[0]
    low, high = axis.get_ylim()
    assert high - low == pytest.approx(0.1)
    loss, star = (line.get_ydata()[0] for line in axis.get_lines())
    assert star == loss == float(rows[0]["loss"])
    plt.close(fig)


def test_tensorboard_logs_are_in_the_run_folder(ckpt_with_runs):
    events = list((ckpt_with_runs / "hamlet" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events


def test_sample_json_and_quiet_stdout(cli, ckpt_with_runs):
    result = cli("sample", "--model", "hamlet", "--seed", "To", "--length", "15",
                 "--num-samples", "2", "--rng-seed", "1", "--json",
                 "--checkpoint-dir", str(ckpt_with_runs))
    data = json.loads(result.stdout)
    assert len(data["samples"]) == 2 and all(s.startswith("To") for s in data["samples"])


def test_interactive_session_through_stdin(cli, ckpt_with_runs, monkeypatch):
    # a :length no memory holds is refused when typed, not at the next seed
    script = "To be\n:temperature 0\n:length 99999999999\n:length 5\nTo\n:top-p 7\n:bogus\nQ\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    result = cli("sample", "--interactive", "--model", "hamlet", "--length", "12",
                 "--checkpoint-dir", str(ckpt_with_runs))
    assert result.exit_code == 0, result.stderr
    from textgen.generate.sampling import load_sampler

    greedy = load_sampler(ckpt_with_runs / "hamlet", "last").generate("To", 5, temperature=0)
    assert result.stdout.startswith("To be")
    assert result.stdout.endswith(greedy + "\n")  # the settings changed mid-session
    assert len(result.stdout) >= len("To be") + 12 + 1 + len(greedy) + 1
    assert "temperature 0.0" in result.stderr and "length 5" in result.stderr
    assert re.search(r"error: :length 99,999,999,999 needs about .* available; use :length "
                     r"[\d,]+ or less", result.stderr)
    assert "length 99999999999" not in result.stderr  # never taken
    assert ":top-p must be in (0, 1]" in result.stderr
    assert "unknown command :bogus" in result.stderr
    assert "'Q'" in result.stderr  # unknown seed character, and the session went on


def test_ctrl_c_in_an_interactive_terminal_session_stops_the_sample_not_the_session(
        ckpt_with_runs):
    """In a terminal, Ctrl-C stops the sample being written and the prompt comes back, as in
    Python's prompt; Ctrl-D quits (Ctrl-C ended the whole session)."""
    import os
    import pty
    import select
    import signal
    import time

    main, side = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "textgen", "sample", "-i", "--model", "hamlet",
                             "--length", "1000000", "--checkpoint-dir", str(ckpt_with_runs)],
                            stdin=side, stdout=side, stderr=side)
    os.close(side)
    seen = b""

    def read_until(wanted: bytes, count: int = 1, timeout: float = 120) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while seen.count(wanted) < count:
            assert time.monotonic() < deadline and proc.poll() is None, seen.decode()[-500:]
            if select.select([main], [], [], 0.5)[0]:
                seen += os.read(main, 65536)

    stopped = b"interrupted; type a seed, or Ctrl-D to quit"
    try:
        read_until(b"seed> ")
        os.kill(proc.pid, signal.SIGINT)  # at the prompt: the line is dropped
        read_until(stopped)
        read_until(b"seed> ", count=2)
        os.write(main, b"To\n")
        read_until(b"\r\nTo", timeout=30)  # the sample starts (a million characters)
        time.sleep(1)
        os.kill(proc.pid, signal.SIGINT)
        read_until(stopped, count=2, timeout=30)
        read_until(b"seed> ", count=3, timeout=30)
        assert proc.poll() is None
        os.write(main, b"\x04")  # Ctrl-D
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(main)


def test_interactive_sessions_check_lengths_and_refuse_one_off_options(cli, ckpt_with_runs,
                                                                      monkeypatch, tmp_path):
    huge = 10**20
    # refused when typed: the settings keep their length until :length 3
    monkeypatch.setattr("sys.stdin", io.StringIO(f":length {huge}\n:length 3\nTo\n"))
    result = cli("sample", "-i", "--model", "hamlet", "--checkpoint-dir", str(ckpt_with_runs))
    assert result.exit_code == 0, result.stderr
    assert f"error: :length {huge:,} needs about" in result.stderr
    assert "use :length " in result.stderr and len(result.stdout) == len("To") + 3 + 1
    for options, named in ((["--seed", "To"], "--seed"), (["--num-samples", "2"], "--num-samples"),
                           (["-o", str(tmp_path / "x.txt"), "--json"], "-o, --json")):
        refused = cli("sample", "-i", *options, "--model", "hamlet", "--checkpoint-dir",
                      str(ckpt_with_runs))
        assert refused.exit_code == 2
        assert f"error: {named} cannot be used with -i" in refused.stderr
    assert not (tmp_path / "x.txt").exists()


def test_careless_sample_info_and_export_arguments_are_one_line(cli, ckpt_with_runs, tmp_path,
                                                                 monkeypatch):
    ckpt = ["--checkpoint-dir", str(ckpt_with_runs)]
    # stdin closed: a traceback ('NoneType' object has no attribute 'isatty')
    closed = subprocess.run(["bash", "-c", f"'{sys.executable}' -m textgen sample -i --model "
                             f"hamlet --checkpoint-dir '{ckpt_with_runs}' <&-"],
                            capture_output=True, text=True, timeout=300)
    assert closed.returncode == 2, closed.stderr
    assert closed.stderr.strip() == ("error: -i reads seeds from stdin, but stdin is closed; "
                                     "run it in a terminal, or pipe seeds to it")
    # a seed line that is not UTF-8: said as such (it was an unseen character U+DCE9)
    typed = subprocess.run([sys.executable, "-m", "textgen", "sample", "-i", "--model",
                            "hamlet", "--length", "3", *ckpt], input=b"T\xe9o\nTo\n",
                           capture_output=True, timeout=300)
    assert typed.returncode == 0
    assert ("error: the seed is not valid UTF-8 (byte 0xe9 at offset 1); give UTF-8 text"
            in typed.stderr.decode())
    assert typed.stdout.decode().startswith("To")  # the session went on
    # an empty name (an unset $RUN): info described the latest run, others read "."
    for args in (["info", ""], ["sample", "--model", ""], ["plot", ""]):
        empty = cli(*args, *ckpt)
        assert empty.exit_code == 2, (args, empty.stdout)
        assert "an empty name is not a run; give a run's name or folder" in empty.stderr
    # -o - is stdout, as for plot (it wrote a file named '-')
    monkeypatch.chdir(tmp_path)
    dash = cli("sample", "--model", "hamlet", "--seed", "To", "--length", "5", "-o", "-", *ckpt)
    assert dash.exit_code == 0 and dash.stdout.startswith("To")
    assert not (tmp_path / "-").exists()
    # a run.json that is a folder: left out of runs without a word (info refused it)
    (tmp_path / "odd" / "a" / "run.json").mkdir(parents=True)
    odd = cli("runs", "--checkpoint-dir", str(tmp_path / "odd"))
    assert odd.exit_code == 0 and "warning:" in odd.stderr and "Is a directory" in odd.stderr
    missing = cli("export", "hamlet", "-o", str(tmp_path / "no" / "out"), *ckpt)
    assert missing.exit_code == 2
    assert f"the folder {tmp_path / 'no'} does not exist; create it or write elsewhere" in (
        " ".join(missing.stderr.split()))


# (seed, length, temperature, rng_seed, top_k, top_p): greedy, plain, top-k, nucleus, both
EXPORT_CASES = [("To be", 20, 0.0, 0, 0, 0.0), ("To be", 60, 0.8, 7, 0, 0.0),
                ("Whether", 60, 1.3, -3, 5, 0.0), ("T", 60, 1.0, 2**40, 0, 0.7),
                ("Or to", 60, 0.6, 11, 4, 0.9)]


def test_savedmodel_export_runs_without_textgen_and_writes_what_sample_writes(
        cli, ckpt_with_runs, tmp_path):
    gen_dir, clf_dir = tmp_path / "gen", tmp_path / "clf"
    for name, out in (("hamlet", gen_dir), ("reviews", clf_dir)):
        result = cli("export", name, "--format", "savedmodel", "-o", str(out),
                     "--checkpoint-dir", str(ckpt_with_runs))
        assert result.exit_code == 0, result.stderr
        assert (out / "saved_model.pb").is_file()
        # by default the model sample and serve use: a generator's latest, a classifier's best
        which = "last.keras" if name == "hamlet" else "best.keras"
        assert f"from {ckpt_with_runs / name / which} " in result.stdout
    again = cli("export", "hamlet", "-o", str(gen_dir), "--checkpoint-dir", str(ckpt_with_runs))
    assert again.exit_code == 2 and "already exists; pass --overwrite or choose another " \
                                    "--output" in again.stderr
    # from Python, as documented (there was no public function; the inner one spoke CLI)
    from textgen import TextgenError, export_model

    with pytest.raises(TextgenError, match="already exists; pass overwrite=True or choose "
                                           "another output$"):
        export_model("hamlet", gen_dir, checkpoint_dir=ckpt_with_runs)
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    state = (random.getstate(), np.random.get_state()[1].tolist())
    assert export_model("hamlet", str(gen_dir), overwrite=True,
                        checkpoint_dir=ckpt_with_runs) == gen_dir
    assert (gen_dir / "saved_model.pb").is_file()
    assert (random.getstate(), np.random.get_state()[1].tolist()) == state  # kept, as load_*
    with pytest.raises(TextgenError, match="^checkpoint must be one of best, last; got ''"):
        export_model("hamlet", gen_dir, checkpoint="", checkpoint_dir=ckpt_with_runs)
    expected = []
    for seed, length, temperature, rng_seed, top_k, top_p in EXPORT_CASES:
        args = ["sample", "--model", "hamlet", "--seed", seed,
                "--length", str(length), "--temperature", str(temperature), "--rng-seed",
                str(rng_seed), "--json", "--checkpoint-dir", str(ckpt_with_runs)]
        args += ["--top-k", str(top_k)] if top_k else []
        args += ["--top-p", str(top_p)] if top_p else []
        sampled = cli(*args)
        assert sampled.exit_code == 0, sampled.stderr
        expected.append(json.loads(sampled.stdout)["samples"][0])
    assert len(set(expected)) == len(expected)  # the cases differ, so the check has teeth
    probe = f"""
import sys
sys.modules["textgen"] = None  # prove textgen is not needed
import tensorflow as tf
gen = tf.saved_model.load({str(gen_dir)!r})
for (seed, length, temperature, rng_seed, top_k, top_p), want in zip({EXPORT_CASES!r},
                                                                    {expected!r}):
    text = gen.signatures["generate"](
        seed=tf.constant(seed), length=tf.constant(length),
        temperature=tf.constant(temperature, tf.float64), rng_seed=tf.constant(rng_seed, tf.int64),
        top_k=tf.constant(top_k), top_p=tf.constant(top_p, tf.float64))["text"].numpy().decode()
    assert text == want, (text, want)
good = dict(seed="To", length=5, temperature=0.5, rng_seed=1, top_k=0, top_p=0.0)
for name, bad in (("length", -5), ("length", 2**31 - 1), ("temperature", -1.0),
                  ("temperature", float("nan")), ("temperature", float("inf")),
                  ("top_k", -3), ("top_p", 1.5)):
    args = {{**good, name: bad}}
    try:
        gen.signatures["generate"](**{{k: tf.constant(v, tf.float64 if k in ("temperature",
                                     "top_p") else tf.int64 if k == "rng_seed" else None)
                                     for k, v in args.items()}})
    except tf.errors.InvalidArgumentError as exc:
        assert name + " must be" in str(exc), exc
    else:
        raise AssertionError(f"{{name}} {{bad}} was accepted")
clf = tf.saved_model.load({str(clf_dir)!r})
out = clf.signatures["serving_default"](texts=tf.constant(["a wonderful film", "awful mess"]))
assert out["probabilities"].shape == (2, 2), out
none = clf.signatures["serving_default"](texts=tf.constant([], tf.string))  # no texts, no rows
assert none["probabilities"].shape == (0, 2) and none["labels"].shape == (0,), none
try:  # an empty text has only the prior to give: refused, as classify predict refuses it
    clf.signatures["classify"](texts=tf.constant(["a wonderful film", " \u3000\u00a0\u200b\\0"]))
except tf.errors.InvalidArgumentError as exc:
    assert "texts must not be empty" in str(exc) and "[1]" in str(exc), exc
else:
    raise AssertionError("an empty text was classified")
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok")


def test_tensorflow_start_up_noise_is_hidden(ckpt_with_runs, tiny_corpus, tmp_path):
    quiet = run_subprocess("evaluate", str(tiny_corpus), "--model", "hamlet", "--json",
                           "--checkpoint-dir", str(ckpt_with_runs))
    assert quiet.returncode == 0, quiet.stderr
    json.loads(quiet.stdout)
    assert quiet.stderr == ""
    # A run under --max-time: its speed probe came first and imported TensorFlow unquieted
    # (absl's warning, cuInit's "E0000 ... CUDA error" on a machine without a GPU).
    budget = run_subprocess("train", str(tiny_corpus), "--base", "none", "--units", "8",
                            "--embed-dim", "4", "--max-time", "0.05",
                            "--checkpoint-dir", str(tmp_path), "--run-name", "budget")
    assert budget.returncode == 0, budget.stderr
    noise = [line for line in budget.stderr.splitlines()
             if not line.startswith(("note: ", "epoch ", "bits/char guide"))]
    assert noise == [], budget.stderr


def test_a_file_removed_while_a_run_is_sized_is_left_out(tmp_path, monkeypatch):
    """`runs` failed for every run when a training replaced a file between its listing and
    its stat (FileNotFoundError on a run.json temporary or a backup)."""
    from pathlib import Path

    from textgen.inspection import folder_size

    (tmp_path / "kept").write_bytes(b"x" * 10)
    (tmp_path / "gone").write_bytes(b"y" * 5)
    real_stat, calls = Path.stat, []

    def stat(self, *args, **kwargs):
        if self.name == "gone":
            calls.append(self)
            if len(calls) > 1:  # listed and checked, then removed before it is sized
                raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert folder_size(tmp_path) == 10


def test_info_piped_keeps_every_value_whole(cli, ckpt_with_runs, tmp_path):
    """Piped, `info` cut a deep run's path and a base's vocabulary with "…" at 80 columns."""
    import shutil

    deep = tmp_path / ("a" * 60) / ("b" * 60)
    shutil.copytree(ckpt_with_runs / "hamlet", deep / "hamlet")
    shown = cli("info", "hamlet", "--checkpoint-dir", str(deep)).stdout
    assert str(deep / "hamlet") in shown and "…" not in shown
    # wide characters count as the columns they take (53 characters, 103 columns)
    wide = tmp_path / ("長" * 50)
    shutil.copytree(ckpt_with_runs / "hamlet", wide / "hamlet")
    assert str(wide / "hamlet") in cli("info", "hamlet", "--checkpoint-dir", str(wide)).stdout
    # its prose folds at 120 columns, or the paths' width (each row was padded to the longest
    # value, 3,000 wide)
    plain = cli("info", "hamlet", "--checkpoint-dir", str(ckpt_with_runs)).stdout
    assert max(len(line) for line in plain.splitlines()) == max(
        120, len(str(ckpt_with_runs / "hamlet")) + 28)
    # what a base added is prose too: 600 new characters fold (the rows were 3,825 wide)
    grown = tmp_path / "grown"
    shutil.copytree(ckpt_with_runs / "hamlet", grown / "hamlet")
    meta = json.loads((grown / "hamlet" / "run.json").read_text())
    meta["base"] = {"name": "english", "sha256": "ab" * 32,
                    "new_chars": [chr(0x4E00 + i) for i in range(600)]}
    (grown / "hamlet" / "run.json").write_text(json.dumps(meta))
    folded = cli("info", "hamlet", "--checkpoint-dir", str(grown)).stdout
    assert "english (weights sha256 abababababab...)" in folded
    assert max(len(line) for line in folded.splitlines()) == max(
        120, len(str(grown / "hamlet")) + 28)
