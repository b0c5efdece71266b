"""Distributed training with tf.distribute, shown on one machine: the CPU split into two
logical devices (mirrored), and two worker processes on 127.0.0.1 (multi-worker)."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import TINY_GENERATOR
from textgen.errors import TextgenError
from textgen.training import distribute
from textgen.training.distribute import PATCHED_KERAS, parse_devices, read_tf_config

TINY = [*TINY_GENERATOR, "--steps-per-epoch", "6",
        "--dropout", "0", "--epochs", "1", "--rng-seed", "7"]


def train(corpus, ckpt, run_name, *extra, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "textgen", "train", str(corpus), "--checkpoint-dir", str(ckpt),
         "--run-name", run_name, *TINY, *extra],
        capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def first_epoch_loss(ckpt, run_name, column: str = "loss") -> float:
    rows = list(csv.DictReader((ckpt / run_name / "history.csv").open()))
    return float(rows[0][column])


def test_device_and_tf_config_parsing(monkeypatch):
    assert parse_devices("2") == (2, None)
    assert parse_devices("GPU:0, GPU:1") == (None, ["GPU:0", "GPU:1"])
    with pytest.raises(TextgenError):
        parse_devices("0")
    for bad in ("-1", "abc", "GPU0", "99"):  # TensorFlow's own error, or a slow crawl
        with pytest.raises(TextgenError, match="^devices "):
            parse_devices(bad)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TextgenError, match="TF_CONFIG"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TextgenError, match="not valid"):
        read_tf_config()


def test_mirrored_on_two_cpu_devices_matches_one_device(tiny_corpus, tmp_path):
    """Same seed, same global batch (2 x 4 = 8): the same loss within 1e-4 relative. The
    validation is 7 windows, one batch split 4 and 3 between the devices: Keras' first
    evaluate() averaged that batch across them and failed (AddN [4,16] != [3,16])."""
    ckpt = tmp_path / "ck"
    odd_validation = ["--val-split", "0.08"]  # 103 characters: 6 windows of 16 and the end's
    mirrored = train(tiny_corpus, ckpt, "mirrored", "--strategy", "mirrored", "--devices", "2",
                     "--batch-size", "4", *odd_validation)
    assert mirrored.returncode == 0, mirrored.stderr
    single = train(tiny_corpus, ckpt, "single", "--strategy", "default", "--batch-size", "8",
                   *odd_validation)
    assert single.returncode == 0, single.stderr
    meta = json.loads((ckpt / "mirrored" / "run.json").read_text())
    assert meta["training"]["replicas"] == 2 and meta["training"]["strategy"] == "mirrored"
    a, b = first_epoch_loss(ckpt, "mirrored"), first_epoch_loss(ckpt, "single")
    assert abs(a - b) / abs(b) < 1e-4, (a, b)
    a, b = (first_epoch_loss(ckpt, run, "val_loss") for run in ("mirrored", "single"))
    assert abs(a - b) / abs(b) < 1e-4, (a, b)


def test_a_resumed_mirrored_run_keeps_its_devices_unless_told(tiny_corpus, tmp_path):
    """--batch-size is per device: resumed without --strategy, a run on two devices went on
    on one without a word, each step's batch halved and run.json still saying two."""
    ckpt = tmp_path / "ck"
    first = train(tiny_corpus, ckpt, "m", "--strategy", "mirrored", "--devices", "2",
                  "--batch-size", "4")
    assert first.returncode == 0, first.stderr
    meta_file = ckpt / "m" / "run.json"
    assert json.loads(meta_file.read_text())["training"]["devices"] == "2"
    again = train(tiny_corpus, ckpt, "m", "--resume", "--epochs", "2")
    assert again.returncode == 0, again.stderr
    assert "device" not in again.stderr
    training = json.loads(meta_file.read_text())["training"]
    assert (training["epochs_done"], training["strategy"], training["replicas"]) == (
        2, "mirrored", 2)
    moved = train(tiny_corpus, ckpt, "m", "--resume", "--epochs", "3", "--strategy", "default")
    assert moved.returncode == 0, moved.stderr
    assert ("note: training on 1 device (default) where the run trained on 2: a step's batch "
            "is 4 windows, not 8 (give --strategy mirrored --devices 2 to train as before)"
            ) in " ".join(moved.stderr.split())
    training = json.loads(meta_file.read_text())["training"]
    assert (training["epochs_done"], training["strategy"], training["replicas"],
            training["devices"]) == (3, "default", 1, None)
    # devices the run names that this machine lacks (another machine's): said as the run's
    meta = json.loads(meta_file.read_text())
    meta["training"].update(strategy="mirrored", replicas=2, devices="CPU:0,CPU:7")
    meta_file.write_text(json.dumps(meta))
    elsewhere = train(tiny_corpus, ckpt, "m", "--resume", "--epochs", "4")
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.strip().splitlines()[-1] == (
        "error: the run was trained on CPU:0, CPU:7; this machine has no CPU:7 (it has "
        "CPU:0); resume it with --strategy default (one device) or --strategy mirrored "
        "--devices N")
    # a CPU split wider than this machine's cores (a bigger machine's run)
    cores = max(2, len(os.sched_getaffinity(0)))  # a split in two is always allowed
    meta["training"].update(devices=str(cores + 1))
    meta_file.write_text(json.dumps(meta))
    smaller = train(tiny_corpus, ckpt, "m", "--resume", "--epochs", "4")
    assert smaller.returncode == 2
    assert smaller.stderr.strip().splitlines()[-1] == (
        f"error: the run was trained on {cores + 1} CPU devices; this machine splits its CPU "
        f"into at most {cores}; resume it with --strategy default (one device) or --strategy "
        "mirrored --devices N")


def test_a_mirrored_run_resumed_where_tensorflow_runs_goes_on_with_a_note(tiny_corpus,
                                                                         tmp_path):
    """From Python, once TensorFlow has started, the CPU cannot be split: the resume failed
    on `strategy='mirrored' devices='2' must be chosen before TensorFlow starts`, options
    never given; it goes on on the process's device, said in a note."""
    from rich.console import Console

    from textgen import train_generator
    from textgen.tf_setup import import_tensorflow

    ckpt = tmp_path / "ck"
    first = train(tiny_corpus, ckpt, "m", "--strategy", "mirrored", "--devices", "2",
                  "--batch-size", "4")
    assert first.returncode == 0, first.stderr
    import_tensorflow()
    console = Console(record=True, width=300)
    result = train_generator(tiny_corpus, checkpoint_dir=ckpt, run_name="m", resume=True,
                             epochs=2, console=console)
    assert result.summary["epochs_done"] == 2
    assert ("note: training on 1 device (default) where the run trained on 2: a step's batch "
            "is 4 windows, not 8 (give strategy='mirrored' devices='2' in a new process "
            "to train as before)") in " ".join(console.export_text().split())


def test_the_replicas_note_says_how_to_train_as_before():
    """A mirrored run with no devices named (it trained on all GPUs) was told to give the
    --strategy mirrored it was already training under, then --devices 2 (a CPU split)."""
    from rich.console import Console

    from textgen.training.lifecycle import Notes, note_changed_replicas

    console = Console(record=True, width=300)
    training = {"strategy": "mirrored", "replicas": 2, "devices": None}
    note_changed_replicas(training, distribute.Distribution("mirrored", None, replicas=1), 4,
                          Notes(console))
    assert console.export_text().strip().endswith(
        "a step's batch is 4 windows, not 8 (it trained on every GPU of its machine: resume "
        "it there to train as before)")
    assert (training["strategy"], training["replicas"]) == ("mirrored", 1)
    # a multi-worker run is not told to give --devices (refused without --strategy mirrored)
    console = Console(record=True, width=300)
    note_changed_replicas({"strategy": "multi-worker", "replicas": 4},
                          distribute.Distribution("default", None), 4, Notes(console))
    assert console.export_text().strip().endswith(
        "(it trained as a multi-worker job: resume it on its cluster to train as before)")


def test_unknown_strategy_is_a_clear_error(tiny_corpus, tmp_path):
    # devices this machine does not have: MirroredStrategy waited for them for ever, deaf
    # to Ctrl-C and SIGTERM
    result = train(tiny_corpus, tmp_path, "x", "--strategy", "mirrored", "--devices",
                   "CPU:0,CPU:7")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: --devices names CPU:7, which this machine does not have (it has CPU:0")
    assert not (tmp_path / "x").exists()
    result = train(tiny_corpus, tmp_path, "x", "--strategy", "sideways")
    assert result.returncode == 2 and "--strategy" in result.stderr
    assert "'sideways' is not one of 'auto', 'default'" in result.stderr
    result = train(tiny_corpus, tmp_path, "x", "--strategy", "multi-worker",
                   env={"TF_CONFIG": ""})
    assert result.returncode == 2 and "TF_CONFIG" in result.stderr


@pytest.mark.parametrize("function", sorted(PATCHED_KERAS))
def test_the_patched_private_keras_function_keeps_its_parameters(function):
    """Multi-worker training replaces or calls these private Keras functions: a Keras that
    changes one fails here, by the function's name (pyproject caps Keras where it passed)."""
    assert distribute.keras_parameters(function) == PATCHED_KERAS[function]


def test_a_changed_keras_function_stops_multi_worker_training_by_name(monkeypatch):
    name = "keras.Model._maybe_symbolic_build"
    monkeypatch.setitem(PATCHED_KERAS, name, ("self", "iterator"))
    two_workers = distribute.Distribution("multi-worker", None, replicas=2, workers=2)
    with pytest.raises(TextgenError, match=rf"changed \({re.escape(name)}\); install the "
                                           r"versions it is tested with \(tensorflow 2\.21"):
        distribute.prepare_model(object(), two_workers)
    # Mirrored on several devices uses the same patch (an unevenly split validation batch).
    two_devices = distribute.Distribution("mirrored", None, replicas=2)
    with pytest.raises(TextgenError, match=r"^training on 2 replicas \(mirrored\) patches"):
        distribute.prepare_model(object(), two_devices)


def test_the_python_api_takes_the_strategy_per_run(tiny_corpus, tmp_path):
    from textgen.generate.train import train_generator

    tiny = {"units": 16, "embed_dim": 8, "seq_length": 16, "batch_size": 4,
            "steps_per_epoch": 2, "epochs": 1, "checkpoint_dir": tmp_path}
    train_generator(tiny_corpus, strategy="mirrored", run_name="mirrored", **tiny)
    train_generator(tiny_corpus, run_name="plain", **tiny)  # the default again, not the last
    strategies = [json.loads((tmp_path / name / "run.json").read_text())["training"]["strategy"]
                  for name in ("mirrored", "plain")]
    assert strategies == ["mirrored", "default"]
    cores = max(2, len(os.sched_getaffinity(0)))
    with pytest.raises(TextgenError, match=rf"^devices must be from 1 to {cores} logical CPU "
                                           r"devices \(one per core, two at least\), got 0$"):
        train_generator(tiny_corpus, strategy="mirrored", devices="0", **tiny)
    with pytest.raises(TextgenError, match="^devices '²' is not a device name"):  # a bug
        train_generator(tiny_corpus, strategy="mirrored", devices="²", **tiny)
    # 64 replicas on 2 cores were accepted: a tiny model took 11 minutes and 13 GB
    with pytest.raises(TextgenError, match=rf"^devices must be from 1 to {cores} .* got "
                                           rf"{cores + 1}$"):
        train_generator(tiny_corpus, strategy="mirrored", devices=str(cores + 1), **tiny)
    # --devices without --strategy mirrored was ignored without a word.
    with pytest.raises(TextgenError, match="^devices 2 applies to strategy='mirrored'; add it"):
        train_generator(tiny_corpus, devices="2", **tiny)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_localhost_write_one_run(tiny_corpus, tmp_path):
    from textgen.generate.sampling import load_sampler

    ckpt = tmp_path / "ck"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "textgen", "train", str(tiny_corpus), "--checkpoint-dir",
             str(ckpt), "--run-name", "mw", "--strategy", "multi-worker", "--batch-size", "4",
             *TINY],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CONFIG": tf_config}))
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    assert [p.name for p in ckpt.iterdir()] == ["mw"]  # only the chief wrote
    meta = json.loads((ckpt / "mw" / "run.json").read_text())
    assert meta["training"]["replicas"] == 2 and meta["training"]["epochs_done"] == 1
    text = load_sampler(ckpt / "mw", "last").generate("To", 10, rng_seed=0)
    assert text.startswith("To") and len(text) == 12
    steps = [re.search(r"steps this session\s*│\s*(\d+)", out) for out, _ in outputs]
    assert all(steps) and steps[0][1] == steps[1][1] == "6"
    for index, (_, err) in enumerate(outputs):  # each says what it waits for, first
        assert (f"note: worker {index} of the 2 in TF_CONFIG's cluster: waiting until the "
                f"others ({workers[1 - index]}) have started") in err


def test_a_worker_waiting_for_one_never_started_stops_at_ctrl_c(tiny_corpus, tmp_path):
    """It waited for ever, silently, deaf to Ctrl-C and SIGTERM (TensorFlow waits in C++)."""
    import signal
    import threading
    import time

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": 0}})
    proc = subprocess.Popen(  # -v and TensorFlow's INFO lines: they say when the wait begins
        [sys.executable, "-m", "textgen", "-v", "train", str(tiny_corpus), "--checkpoint-dir",
         str(tmp_path / "ck"), "--strategy", "multi-worker", *TINY],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CONFIG": tf_config, "TF_CPP_MIN_LOG_LEVEL": "0"})
    deadline = threading.Timer(120, proc.kill)  # a wait that Ctrl-C cannot end ends here
    deadline.start()
    try:
        said = []
        for line in proc.stderr:
            said.append(line)
            if "tasks to connect" in line:
                break
        assert any(line.startswith("note: worker 0 of the 2 in TF_CONFIG's cluster: waiting "
                                   f"until the others ({workers[1]}) have started; start them, "
                                   "or Ctrl-C to stop") for line in said), "".join(said)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == -signal.SIGINT
    finally:
        deadline.cancel()
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "ck").exists()
