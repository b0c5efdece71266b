"""The generate-mode CLI as a user types it: train, sample, evaluate, and every bad input."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest

from tests.conftest import TINY_GENERATOR, run_subprocess


def test_help_answers_without_tensorflow():
    proc = run_subprocess("--help", env={"PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0
    assert "train" in proc.stdout and "sample" in proc.stdout
    probe = "import sys, textgen.cli; print('tensorflow' in sys.modules)"
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    # a flag shows no value (`--json <bool>` led users to type `--json true`)
    for command in (["classify", "predict"], ["train"], []):
        shown = run_subprocess(*command, "--help", env={"COLUMNS": "100"}).stdout
        assert "--help" in shown and "<bool>" not in shown, command
    predict = run_subprocess("classify", "predict", "--help", env={"COLUMNS": "100"})
    row = next(line for line in predict.stdout.splitlines() if "│ --json" in line)
    assert "Print JSON" in row


def test_train_sample_evaluate_end_to_end(cli, tiny_corpus, tmp_path):
    ckpt = str(tmp_path / "ck")
    result = cli("train", str(tiny_corpus), "--epochs", "2", *TINY_GENERATOR,
                 "--checkpoint-dir", ckpt)
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "ck" / "hamlet"
    for name in ("best.keras", "last.keras", "vocab.json", "run.json", "history.csv"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "val_loss", "val_bits_per_char"} <= set(rows[0])
    assert "best val bits/char" in result.stdout  # the summary is a result

    sample = cli("sample", "--seed", "To be", "--length", "40", "--rng-seed", "3",
                 "--checkpoint-dir", ckpt)
    assert sample.exit_code == 0, sample.stderr
    assert sample.stdout.startswith("To be") and len(sample.stdout.rstrip("\n")) >= 45
    again = cli("sample", "--seed", "To be", "--length", "40", "--rng-seed", "3",
                "--checkpoint-dir", ckpt)
    assert again.stdout == sample.stdout

    scores = cli("evaluate", str(tiny_corpus), "--model", "hamlet", "--json",
                 "--checkpoint-dir", ckpt)
    assert scores.exit_code == 0, scores.stderr
    data = json.loads(scores.stdout)
    assert set(data) == {"bits_per_char", "nats_per_char", "bits_per_char_stateful",
                         "nats_per_char_stateful", "chars", "unknown_chars"}
    assert 0 < data["bits_per_char_stateful"] < 6
    assert data["bits_per_char"] == pytest.approx(data["nats_per_char"] / 0.6931471805599453)
    assert 0 < data["bits_per_char"] < 6 and data["unknown_chars"] == 0

    short = cli("evaluate", str(tiny_corpus), "--model", "hamlet", "--json", "--window", "4",
                "--checkpoint-dir", ckpt)
    assert short.exit_code == 0, short.stderr
    short_data = json.loads(short.stdout)  # less context per character: a higher figure
    assert short_data["bits_per_char"] > data["bits_per_char"]
    assert short_data["bits_per_char_stateful"] == pytest.approx(data["bits_per_char_stateful"])
    bad = cli("evaluate", str(tiny_corpus), "--model", "hamlet", "--window", "0",
              "--checkpoint-dir", ckpt)
    assert bad.exit_code == 2 and "--window must be >= 1, got 0" in bad.stderr


def test_a_layer_normalised_model_trains_samples_and_scores(cli, tiny_corpus, tmp_path):
    ckpt = str(tmp_path / "ck")
    result = cli("train", str(tiny_corpus), "--epochs", "1", *TINY_GENERATOR, "--layer-norm",
                 "--checkpoint-dir", ckpt)
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "ck" / "hamlet" / "run.json").read_text()
                      )["config"]["layer_norm"] is True
    sample = cli("sample", "--seed", "To be", "--length", "30", "--temperature", "0",
                 "--checkpoint-dir", ckpt)
    assert sample.exit_code == 0, sample.stderr
    assert sample.stdout.startswith("To be") and len(sample.stdout.rstrip("\n")) >= 35
    scores = cli("evaluate", str(tiny_corpus), "--json", "--checkpoint-dir", ckpt)
    assert scores.exit_code == 0, scores.stderr
    data = json.loads(scores.stdout)  # the stream model carries the state through the norms
    assert 0 < data["bits_per_char_stateful"] < 6 and 0 < data["bits_per_char"] < 6


def test_resume_continues_the_epoch_count_and_history(cli, tiny_corpus, tmp_path):
    ckpt = str(tmp_path / "ck")
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", ckpt]
    assert cli(*args, "--epochs", "1").exit_code == 0
    again = cli(*args, "--epochs", "1")
    assert again.exit_code != 0 and "--resume" in again.stderr
    resumed = cli(*args, "--epochs", "3", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "epoch   2/3" in resumed.stderr and "epoch   1/3" not in resumed.stderr
    rows = list(csv.DictReader((tmp_path / "ck" / "hamlet" / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    meta = json.loads((tmp_path / "ck" / "hamlet" / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 3
    finished = cli(*args, "--epochs", "3", "--resume")
    assert finished.exit_code == 0 and "already finished 3" in finished.stderr


def test_resume_with_nothing_saved_starts_with_a_note(cli, tiny_corpus, tmp_path):
    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "1", "--resume",
            "--checkpoint-dir", str(tmp_path)]
    result = cli(*args)
    assert result.exit_code == 0 and "no run hamlet in" in result.stderr
    for model in ("best.keras", "last.keras"):  # as a start killed before its first epoch
        (tmp_path / "hamlet" / model).unlink()
    meta_path = tmp_path / "hamlet" / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["training"]["epochs_done"] = 0
    meta_path.write_text(json.dumps(meta))
    again = cli(*args)
    assert again.exit_code == 0 and "nothing saved in" in again.stderr
    assert "starting from the beginning" in again.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"caf\xe9 latin-1", "not valid UTF-8"),
        (b"short text", "too short"),
    ],
)
def test_bad_corpora(cli, tmp_path, content, message):
    path = tmp_path / "c.txt"
    if content is not None:
        path.write_bytes(content)
    result = cli("train", str(path), "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


def test_a_folder_without_text_files_as_corpus(cli, tmp_path):
    (tmp_path / ".hidden.txt").write_text("not read")
    result = cli("train", str(tmp_path))
    assert result.exit_code == 2
    # no --glob given: not told to fix one
    assert " ".join(result.stderr.split()).endswith(
        "no text files found (skipped: 1 hidden); give a folder holding text files")
    globbed = cli("train", str(tmp_path), "--glob", "*.md")
    assert " ".join(globbed.stderr.split()).endswith(
        "give a folder holding text files, fix --glob")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "-1"], "--temperature must be"),
        (["--top-p", "0"], "--top-p must be in (0, 1]"),
        (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["--top-k", "0"], "--top-k must be >= 1"),
        (["--length", "0"], "--length must be >= 1"),
        (["--seed", "Zebra"], "'Z' (U+005A)"),
    ],
)
def test_bad_sampling_options(cli, tiny_run, args, message):
    result = cli("sample", "--model", str(tiny_run.path), *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_temperature_that_is_not_a_number(cli, tiny_run):
    result = cli("sample", "--model", str(tiny_run.path), "--temperature", "hot")
    assert result.exit_code == 2
    assert "--temperature" in result.stderr and "valid number" in result.stderr


def test_skip_unknown_drops_unseen_seed_characters(cli, tiny_run):
    result = cli("sample", "--model", str(tiny_run.path), "--seed", "Zebra", "--skip-unknown",
                 "--length", "5", "--rng-seed", "0")
    assert result.exit_code == 0 and result.stdout.startswith("ebra")


def test_a_seed_or_stop_not_valid_in_utf8_is_named_as_such(cli, tiny_run):
    """Python hands such bytes over as surrogates, once shown as unknown characters."""
    for option, value in (("--seed", "caf\udce9"), ("--stop", "\udcff")):
        result = cli("sample", "--model", str(tiny_run.path), option, value)
        assert result.exit_code == 2 and result.stdout == ""
        assert f"{option} is not valid UTF-8 (byte 0x" in result.stderr


def test_temperature_zero_is_deterministic(cli, tiny_run):
    a = cli("sample", "--model", str(tiny_run.path), "--temperature", "0", "--length", "30")
    b = cli("sample", "--model", str(tiny_run.path), "--temperature", "0", "--length", "30")
    assert a.exit_code == 0 and a.stdout == b.stdout


def test_no_trained_model_says_how_to_train(cli, tmp_path):
    result = cli("sample", "--checkpoint-dir", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert "no trained generate model" in result.stderr and "textgen train" in result.stderr


def test_num_samples_prints_each_sample(cli, tiny_run):
    result = cli("sample", "--model", str(tiny_run.path), "--seed", "To", "--num-samples", "3",
                 "--length", "10", "--rng-seed", "1", "--json")
    assert result.exit_code == 0, result.stderr
    samples = json.loads(result.stdout)["samples"]
    assert len(samples) == 3
    assert all(s.startswith("To") and len(s) == 12 for s in samples)
    assert len(set(samples)) > 1  # sample i uses --rng-seed + i
    plain = cli("sample", "--model", str(tiny_run.path), "--seed", "To", "--num-samples", "3",
                "--length", "10", "--rng-seed", "1")
    assert plain.stdout.split("\n\n") == [s + ("\n" if i == 2 else "")
                                          for i, s in enumerate(samples)]
    # Generated together, printed in order however they end: each as it is alone.
    args = ["--model", str(tiny_run.path), "--seed", "To", "--length", "60", "--stop", "e"]
    together = cli("sample", *args, "--num-samples", "4", "--rng-seed", "5").stdout
    alone = [cli("sample", *args, "--rng-seed", str(5 + i)).stdout for i in range(4)]
    assert together == "\n".join(alone)
    assert len({len(text) for text in alone}) > 1  # they ended at different steps


def test_a_real_process_exits_non_zero_without_traceback(tmp_path):
    proc = run_subprocess("train", str(tmp_path / "missing.txt"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_preset_fills_options_that_were_not_given(cli, tiny_corpus, tmp_path):
    from textgen.tf_setup import cpu_supports_bfloat16

    result = cli("train", str(tiny_corpus), "--preset", "cpu-10min", "--units", "16",
                 "--seq-length", "20", "--batch-size", "8", "--steps-per-epoch", "2",
                 "--max-time", "0.05", "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    config = meta["config"]
    assert config["cell"] == "gru" and config["dropout"] == 0.0  # from the preset
    assert config["units"] == 16 and config["seq_length"] == 20  # given explicitly
    assert config["base"] == "none" and "training from scratch" not in result.stderr
    assert config["precision"] == ("mixed_bfloat16" if cpu_supports_bfloat16() else "float32")
    assert meta["training"]["batch_size"] == 8
    # the budget ends the run, so its epochs show no total (the count is a formality)
    assert "epoch   1  " in result.stderr and "epoch   1/" not in result.stderr
    assert meta["preset"] == "cpu-10min"
    unknown = cli("train", str(tiny_corpus), "--preset", "gpu-1day")
    assert unknown.exit_code == 2
    assert "--preset must be one of cpu-10min; got 'gpu-1day'" in unknown.stderr


def test_a_resume_keeps_its_own_options_whatever_the_preset(cli, tiny_corpus, tmp_path):
    """--preset on a resume acted as typed options: the preset's architecture was blamed as
    `--layers 2 differs from the run's --layers 1`, and its 10-minute budget replaced the
    run's own."""
    args = [str(tiny_corpus), *TINY_GENERATOR, "--checkpoint-dir", str(tmp_path)]
    first = cli("train", *args, "--epochs", "1")
    assert first.exit_code == 0, first.stderr
    meta_file = tmp_path / "hamlet" / "run.json"
    before = meta_file.read_text()
    resumed = cli("train", *args, "--epochs", "2", "--resume", "--preset", "cpu-10min")
    assert resumed.exit_code == 2
    assert resumed.stderr.strip().splitlines()[-1] == (
        f"error: --preset cpu-10min: the run {tmp_path / 'hamlet'} was started without a "
        "preset, and a resumed run keeps the options it started with; leave out --preset, or "
        "start a new run with --overwrite or another --run-name")
    assert meta_file.read_text() == before
    # a run started with the preset resumes with it as with its own options
    preset_args = [*args, "--preset", "cpu-10min", "--run-name", "p", "--units", "16",
                   "--max-time", "0.05"]
    started = cli("train", *preset_args)
    assert started.exit_code == 0, started.stderr
    again = cli("train", *preset_args, "--resume")
    assert again.exit_code == 0, again.stderr
    assert "differs" not in again.stderr
    shown = cli("info", str(tmp_path / "p"), "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["preset"] == "cpu-10min"
    table = cli("info", str(tmp_path / "p"))
    assert table.exit_code == 0 and re.search(r"preset\s+│?\s*cpu-10min", table.stdout)


def test_the_english_loss_guide_is_printed_for_latin_letters_only(cli, tiny_corpus, tmp_path):
    args = [*TINY_GENERATOR, "--epochs", "1", "--base", "none", "--checkpoint-dir",
            str(tmp_path)]
    english = cli("train", str(tiny_corpus), *args)
    assert english.exit_code == 0 and "bits/char guide for English" in english.stderr
    greek = tmp_path / "greek.txt"
    greek.write_text("Τὸ εἶναι ἢ τὸ μὴ εἶναι, τοῦτο τὸ ἐρώτημα.\n" * 30, encoding="utf-8")
    other = cli("train", str(greek), *args)
    assert other.exit_code == 0 and "guide for English" not in other.stderr
    # A fine-tuned run is judged by its text's letters, not by its base's (mostly Latin) ones.
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(tiny_corpus.read_text() + greek.read_text()[:200], encoding="utf-8")
    assert cli("train", str(mixed), *args, "--run-name", "mixed").exit_code == 0
    tuned = [a if a != "none" else str(tmp_path / "mixed") for a in args]
    greek_tuned = cli("train", str(greek), *tuned, "--run-name", "greek-tuned")
    assert greek_tuned.exit_code == 0 and "fine-tuning" in greek_tuned.stderr
    assert "guide for English" not in greek_tuned.stderr
    english_tuned = cli("train", str(tiny_corpus), *tuned, "--run-name", "english-tuned")
    assert "guide for English" in english_tuned.stderr
    # Code that spells out Latin-1's accented letters (as shlex.py does) is Latin still.
    code = tmp_path / "code.py"
    accented = "".join(chr(c) for c in range(0xC0, 0x100) if chr(c).isalpha())
    code.write_text(f"wordchars = 'abcdefghijklmnopqrstuvwxyz{accented}'\n" * 30,
                    encoding="utf-8")
    coded = cli("train", str(code), *args, "--run-name", "code")
    assert coded.exit_code == 0 and "guide for English" in coded.stderr


def test_max_time_stops_cleanly_and_keeps_the_best_model(cli, tiny_corpus, tmp_path):
    # a budget with its unit, as `timeout` takes it ("3s" was not a number)
    result = cli("train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "100000",
                 "--max-time", "3s", "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "time budget (--max-time) reached" in result.stdout
    run = tmp_path / "hamlet"
    meta = json.loads((run / "run.json").read_text())
    assert 1 <= meta["training"]["epochs_done"] < 100000
    assert meta["training"]["budget"]["minutes"] == pytest.approx(0.05)
    assert (run / "best.keras").is_file() and (run / "last.keras").is_file()
    assert cli("train", str(tiny_corpus), "--max-time", "0").exit_code == 2


def test_model_option_takes_a_name_a_folder_or_a_keras_file(cli, tiny_run):
    ckpt = str(tiny_run.path.parent)
    by_name = cli("sample", "--model", tiny_run.name, "--checkpoint-dir", ckpt,
                  "--temperature", "0", "--length", "12", "--seed", "To")
    by_folder = cli("sample", "--model", str(tiny_run.path), "--temperature", "0",
                    "--length", "12", "--seed", "To")
    by_file = cli("sample", "--model", str(tiny_run.path / "last.keras"), "--temperature", "0",
                  "--length", "12", "--seed", "To")
    # A file under the checkpoint folder, named as info and plot take it: RUN/last.keras.
    by_name_and_file = cli("sample", "--model", f"{tiny_run.name}/last.keras", "--checkpoint-dir",
                           ckpt, "--temperature", "0", "--length", "12", "--seed", "To")
    assert by_name.exit_code == by_folder.exit_code == by_file.exit_code == 0
    assert by_name_and_file.exit_code == 0, by_name_and_file.stderr
    assert by_name.stdout == by_folder.stdout == by_file.stdout == by_name_and_file.stdout
    missing = cli("sample", "--model", "nope", "--checkpoint-dir", ckpt)
    assert missing.exit_code == 2 and "no run named 'nope'" in missing.stderr


def test_a_run_name_wins_over_a_folder_of_texts_of_the_same_name(cli, tiny_run, tmp_path,
                                                                 monkeypatch):
    """`textgen train lyrics/` names its run lyrics; `--model lyrics`, typed beside the
    lyrics/ folder, means the run, not the folder of texts. A .keras file copied out of its
    run cannot be used alone, and says why."""
    import shutil

    monkeypatch.chdir(tmp_path)
    (tmp_path / tiny_run.name).mkdir()  # the texts' folder
    (tmp_path / tiny_run.name / "song.txt").write_text("la la\n")
    result = cli("sample", "--model", tiny_run.name, "--checkpoint-dir",
                 str(tiny_run.path.parent), "--length", "5", "--seed", "To")
    assert result.exit_code == 0, result.stderr
    lone = shutil.copy(tiny_run.path / "last.keras", tmp_path / "model.keras")
    alone = cli("sample", "--model", str(lone))
    assert alone.exit_code == 2 and "a .keras file outside its run folder" in alone.stderr


def test_a_short_text_is_told_how_much_of_it_is_held_out(cli, tmp_path):
    """Under 10 windows, --val-split 0.1 holds out one whole window: a share the user did
    not ask for, said in a note (the model never trains on it)."""
    short = tmp_path / "letter.txt"
    short.write_text("Dear Sam, the garden is full of roses and the bees are busy.\n" * 2,
                     encoding="utf-8")
    result = cli("train", str(short), *TINY_GENERATOR, "--epochs", "1", "--base", "none",
                 "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert ("note: held out the text's last 17 characters (14%, one window of 16; --val-split "
            "0.1 asks for 12)") in result.stderr
    longer = tmp_path / "longer.txt"
    longer.write_text(short.read_text() * 3, encoding="utf-8")
    quiet = cli("train", str(longer), *TINY_GENERATOR, "--epochs", "1", "--base", "none",
                "--checkpoint-dir", str(tmp_path))
    assert quiet.exit_code == 0 and "held out" not in quiet.stderr


def test_a_utf8_seed_in_an_ascii_locale_is_read_as_utf8(tiny_run):
    """LC_ALL=C with UTF-8 mode off: Python decodes arguments as ASCII, yet the terminal sent
    UTF-8; the seed is read as such (here: a character the model never saw, named)."""
    result = run_subprocess("sample", "--model", str(tiny_run.path), "--seed", "T\u00e9",
                            env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
                                 "PYTHONCOERCECLOCALE": "0"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "U+00E9" in result.stderr and "not valid" not in result.stderr


def test_json_is_escaped_where_stdout_cannot_write_the_characters(monkeypatch):
    import io

    from textgen.cli.output import json_text

    for encoding, expected in (("ascii", '{"text": "T\\u00e9"}'),
                               ("utf-8", '{"text": "T\u00e9"}')):
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding=encoding))
        assert json_text({"text": "T\u00e9"}) == expected


@pytest.mark.parametrize("command", ["sample --length 20 --model", "info", "runs --checkpoint-dir"])
def test_a_closed_stdout_is_one_line_not_a_bug(tiny_run, command):
    """`info` and `runs` (their tables ask whether stdout is a terminal) reported a bug."""
    where = tiny_run.path.parent if command.startswith("runs") else tiny_run.path
    result = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m textgen {command} "{where}" >&-'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "standard output" in result.stderr
    assert "closed" in result.stderr


def test_ctrl_c_while_the_command_line_loads_exits_130_quietly(monkeypatch, capsys):
    import builtins

    import textgen.__main__ as entry

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "textgen.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as stopped:
        entry.main()
    assert stopped.value.code == 130 and capsys.readouterr().err == ""
