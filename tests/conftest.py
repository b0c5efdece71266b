"""Shared helpers: the tiny model every CLI test trains, a tiny corpus and run, an in-process
CLI runner, and a subprocess runner that tells whether TensorFlow was imported."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED = Path(__file__).resolve().parents[2] / "shared"

TINY_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
) * 6


# The one tiny generator the CLI tests train (seconds per run); tests add what they vary.
TINY_GENERATOR = ["--units", "16", "--embed-dim", "8", "--seq-length", "16", "--batch-size", "4",
                  "--steps-per-epoch", "4"]


# The one tiny classifier the CLI tests train on `reviews` (an LSTM: the default is n-grams).
TINY_CLASSIFIER = ["--arch", "lstm", "--max-tokens", "60", "--seq-length", "10", "--embed-dim",
                   "8", "--units", "8", "--batch-size", "8"]

POSITIVE = ["wonderful", "brilliant", "loved", "superb", "delightful", "moving", "masterpiece"]
NEGATIVE = ["awful", "boring", "hated", "dreadful", "tedious", "waste", "mess"]
NEUTRAL = ["the", "film", "plot", "actor", "scene", "story", "director", "music", "it", "was"]


def write_reviews(root: Path, per_class: dict[str, int], seed: int = 0,
                  words: dict[str, list[str]] | None = None) -> Path:
    """An easy synthetic data set: each class has its own telltale words among neutral ones."""
    words = words or {"pos": POSITIVE, "neg": NEGATIVE}
    rng = random.Random(seed)
    for name, count in per_class.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            tokens = rng.choices(NEUTRAL, k=8) + rng.choices(words[name], k=2)
            rng.shuffle(tokens)
            (folder / f"{i}_{name}.txt").write_text(" ".join(tokens) + ".", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    """32 easy synthetic reviews in neg/ and pos/."""
    return write_reviews(tmp_path_factory.mktemp("reviews"), {"neg": 16, "pos": 16})


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `textgen ARGS` in this process (fast: TensorFlow stays imported between tests)."""
    from textgen.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["textgen", *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def run_subprocess(*args: str, cwd: Path | None = None, input: str | None = None,
                   env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m textgen ARGS` in a new process, as a user would."""
    return subprocess.run([sys.executable, "-m", "textgen", *args], cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_without_tensorflow(*args: str, cwd: Path | None = None, blocked: bool = False
                           ) -> tuple[int, bool, str]:
    """Run `textgen ARGS` in a new process: (exit code, whether TensorFlow got imported, stderr).

    For checks that must answer before the slow TensorFlow import. With `blocked`, TensorFlow
    and Keras cannot be imported at all (an import raises ImportError), for commands that must
    succeed without them; stdout then also holds the command's own output.
    """
    block = "sys.modules['tensorflow'] = sys.modules['keras'] = None\n" if blocked else ""
    probe = ("import sys\n" + block + "from textgen.cli import main\n"
             "sys.argv = ['textgen', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\nelse:\n"
             "    code = 0\nprint(code, sys.modules.get('tensorflow') is not None)\n")
    proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:  # the probe itself failed (e.g. a blocked import): a bug
        return proc.returncode, False, proc.stderr
    code, imported = proc.stdout.split()[-2:]
    return int(code), imported == "True", proc.stderr


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_corpus):
    """A 2-epoch, 2x32 LSTM generator run trained on TINY_TEXT (a few seconds)."""
    from textgen.generate.train import train_generator

    ckpt = tmp_path_factory.mktemp("checkpoints")
    result = train_generator(tiny_corpus, checkpoint_dir=ckpt, epochs=2, steps_per_epoch=5,
                             batch_size=8, seq_length=20, units=32, embed_dim=16, layers=2)
    return result.run


@pytest.fixture(scope="session")
def tiny_classifier_run(tmp_path_factory):
    """A 3-epoch n-gram classifier run ("moods") on 60 easy synthetic reviews (seconds)."""
    from textgen.classify.train import train_classifier

    root = tmp_path_factory.mktemp("moods")
    write_reviews(root / "data", {"neg": 30, "pos": 30}, seed=4)
    result = train_classifier(root / "data", epochs=3, arch="ngrams", batch_size=8,
                              learning_rate=0.01, checkpoint_dir=root / "ck", run_name="moods")
    return result.run
