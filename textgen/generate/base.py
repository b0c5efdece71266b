"""Pretrained bases a generator fine-tunes from: the English base shipped inside textgen, or
any earlier generator run. No TensorFlow: a base is NumPy arrays, a vocabulary and a config.

A shipped base is a folder `textgen/bases/<name>/` holding `weights.npz` (the arrays in
`model.get_weights()` order, stored as float16 and restored as float32, which halves the
package's size and changes held-out bits/char by under 0.001) and `base.json` (its config,
its vocabulary and how it was trained). `export_base` writes one from a run.

Fine-tuning on a text with characters the base never saw extends the vocabulary: the sorted
union of both, the base's rows moved to their new ids, and a new character's rows fitted to the
text to be trained on (`new_rows`): it reads like the known character that best predicts what
follows it and is expected where it comes.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from textgen.errors import FieldError, TextgenError
from textgen.generate.config import GeneratorConfig
from textgen.generate.data import Vocabulary, describe_chars
from textgen.generate.stepper import check_run_weights, load_generator_weights
from textgen.runs import Checkpoint, ModelChoice, find_model

AUTO_BASE = "auto"  # the shipped base that predicts the text best (`choose_base`)
NO_BASE = "none"  # train from random weights
# `auto` scores each shipped base on this many windows of this many characters spread evenly
# over the training text, each from a zero state as in training: a few thousand characters
# tell bases apart by tenths of a bit, in well under a second per base.
SCORE_WINDOWS = 32
SCORE_WINDOW = 100
WEIGHTS_FILE = "weights.npz"
DESCRIPTION_FILE = "base.json"
# A text whose characters the base knows less than this share of (by occurrence) trains from
# scratch: the base's knowledge is of English spelling, and for a text mostly in another
# script (Chinese, Greek, Cyrillic) its rows for the new characters would all start alike.
MIN_COVERAGE = Fraction(9, 10)  # exact, as Base.coverage is
# `auto` trains from scratch where even the best base predicts the text this many bits/char
# worse than guessing evenly among the text's characters: its habits are wrong for the text
# (a script its books hold a few letters of, a log) and undoing them costs the run more than
# the base gives (docs/base.md, "Texts the bases predict worse than chance").
WORSE_THAN_EVEN_BITS = 1.0
# The configuration fields that shape a base's weights: a fine-tuned model keeps the base's.
ARCHITECTURE = ("layers", "units", "cell", "layer_norm", "embed_dim")


@dataclass(frozen=True)
class Base:
    """A model to fine-tune from: its architecture, vocabulary and float32 weights."""

    name: str  # the shipped base's name, or the run folder it came from
    config: GeneratorConfig
    vocab: Vocabulary
    weights: list[np.ndarray]
    sha256: str  # of the weights file, so run.json says exactly which base was used
    about: dict[str, Any]  # how it was trained (shipped bases), shown by `textgen info`

    def architecture(self) -> dict[str, Any]:
        values = self.config.to_dict()
        return {key: values[key] for key in ARCHITECTURE}

    def shape(self) -> str:
        """Its stack as notes say it: 2x512 lstm."""
        return f"{self.config.layers}x{self.config.units} {self.config.cell}"

    def coverage(self, text: str) -> Fraction:
        """The share of the text's characters (by occurrence) the base knows, exact (so a
        percentage of it rounds down as it should)."""
        if not text:
            return Fraction(1)
        known = set(self.vocab.chars)
        unknown = sum(text.count(char) for char in set(text) if char not in known)
        return Fraction(len(text) - unknown, len(text))

    def record(self) -> dict[str, Any]:
        """What run.json says of the base."""
        return {"name": self.name, "sha256": self.sha256}


def shipped_bases() -> list[str]:
    """Names of the bases inside the package."""
    root = resources.files("textgen").joinpath("bases")
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.joinpath(DESCRIPTION_FILE).is_file())


def _shipped_folder(name: str) -> Path | None:
    folder = resources.files("textgen").joinpath("bases", name)
    return Path(str(folder)) if folder.joinpath(DESCRIPTION_FILE).is_file() else None


def locate_base(name: str, checkpoint_dir: Path | None = None) -> Path | ModelChoice:
    """Where the base `name` is: a shipped base's folder, else the generator run `name` (a run
    name under checkpoint_dir, a run folder, or a `.keras` file in one; its best model).
    Reads no weights, so a wrong --base is refused before TensorFlow loads."""
    folder = _shipped_folder(name)
    if folder is not None:
        return folder
    try:
        return find_model(name, checkpoint_dir, "generate", Checkpoint.best)
    except TextgenError as exc:
        shipped = ", ".join(shipped_bases()) or "none shipped"
        close = difflib.get_close_matches(name.strip().lower(), shipped_bases(), n=1)
        if close:  # --base English, --base englsh
            shipped += f": did you mean {close[0]}?"
        said, settings = exc.quoted("run_")  # its advice as the shell writes it (--resume)
        what = repr(name) if name.strip() else "an empty name"
        raise FieldError("base", f"{what} is not a shipped base ({shipped}) nor a generator "
                         f"run: {said}; {{fix}} trains from scratch", ("base", NO_BASE),
                         fixes=settings) from None


def load_base(name: str, checkpoint_dir: Path | None = None) -> Base:
    """The base `name` (see locate_base), loaded."""
    chosen = locate_base(name, checkpoint_dir)
    if isinstance(chosen, Path):
        return _load_shipped(name, chosen)
    from textgen.generate.sampling import read_vocabulary

    config = GeneratorConfig.from_dict(chosen.meta["config"], str(chosen.run.meta))
    vocab = read_vocabulary(chosen.run, config)
    weights = [np.asarray(w, np.float32) for w in load_generator_weights(chosen.file)]
    check_run_weights(config, weights, chosen.file, chosen.run)  # another run's file copied in
    return Base(str(chosen.run.path.resolve()), config, vocab, weights, _file_sha256(chosen.file),
                {"run": str(chosen.run.path), "file": chosen.file.name})


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_shipped(name: str, folder: Path) -> Base:
    about = json.loads((folder / DESCRIPTION_FILE).read_text(encoding="utf-8"))
    weights_path = folder / WEIGHTS_FILE
    with np.load(weights_path) as arrays:
        weights = [arrays[f"w{i}"].astype(np.float32) for i in range(len(arrays.files))]
    config = GeneratorConfig.from_dict(about["config"], str(folder / DESCRIPTION_FILE))
    vocab = Vocabulary(tuple(about["vocab"]))
    return Base(name, config, vocab, weights, _file_sha256(weights_path), about)


def export_base(run_path: Path, out: Path, about: dict[str, Any]) -> Path:
    """Write a run's best model as a shipped base into folder `out` (float16 weights)."""
    from textgen.generate.sampling import read_vocabulary
    from textgen.runs import RunDir

    run = RunDir(run_path)
    meta = run.read_meta()
    config = GeneratorConfig.from_dict(meta["config"], str(run.meta))
    weights = load_generator_weights(run.model_file(Checkpoint.best))
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"w{i}": np.asarray(w, np.float16)
                                   for i, w in enumerate(weights)})
    (out / WEIGHTS_FILE).write_bytes(buffer.getvalue())
    description = {"config": {**config.to_dict(), "dropout": 0.0},
                   "vocab": list(read_vocabulary(run, config).chars), **about}
    (out / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2, ensure_ascii=False)
                                        + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class Start:
    """The model fine-tuning a base on a text starts from."""

    vocab: Vocabulary  # the base's and the text's characters
    new: list[str]  # the text's characters the base lacks
    weights: list[np.ndarray]  # `fine_tuning_weights`, new rows fitted to the training text


def fine_tuning_start(base: Base, text: str, train_text: str | None = None) -> Start:
    """The start for `text`, its new rows fitted to `train_text` (default: all of `text`;
    a run passes its training part, so that its validation stays unseen)."""
    vocab, new = extended_vocabulary(base, text)
    fit_on = text if train_text is None else train_text
    return Start(vocab, new, fine_tuning_weights(base, vocab, fit_on))


def bits_per_char(base: Base, text: str, windows: int = SCORE_WINDOWS,
                  window: int = SCORE_WINDOW, start: Start | None = None) -> tuple[float, int]:
    """The mean bits/char that the model fine-tuning would start from (`start`, by default
    `fine_tuning_start(base, text)`) scores over up to `windows` windows of `window`
    characters spread evenly over `text`, each from a zero state (NumPy), and the characters
    scored; (nan, 0) for a text under 2 characters.

    A character the base lacks costs what its new rows, fitted to the text, predict for it:
    the start fine-tuning really has."""
    from textgen.generate.stepper import NumpyStepper

    length = min(window, len(text))
    if length < 2:
        return math.nan, 0
    start = start or fine_tuning_start(base, text)
    stepper = NumpyStepper(replace(base.config, vocab_size=len(start.vocab)), start.weights)
    offsets = np.unique(np.linspace(0, len(text) - length, windows).astype(int))
    ids = np.array([start.vocab.encode(text[i:i + length]) for i in offsets])  # (windows, length)
    state, nats = stepper.zero_state(len(offsets)), 0.0
    rows = np.arange(len(offsets))
    for t in range(length - 1):
        probs = stepper.advance(state, ids[:, t])
        nats -= float(np.log(np.maximum(probs[rows, ids[:, t + 1]], 1e-12)).sum())
    scored = len(offsets) * (length - 1)
    return nats / scored / math.log(2), scored


def choose_base(bases: list[Base], text: str, starts: dict[str, Start] | None = None
                ) -> tuple[Base, dict[str, float], int]:
    """The base with the lowest `bits_per_char` on `text` (from `starts[name]` where given),
    every base's figure, and the characters each was scored on; the first base when none can
    be scored."""
    scores, scored = {}, {}
    for base in bases:
        scores[base.name], scored[base.name] = bits_per_char(
            base, text, start=(starts or {}).get(base.name))
    ranked = sorted((b for b in bases if not math.isnan(scores[b.name])),
                    key=lambda b: scores[b.name])
    best = ranked[0] if ranked else bases[0]
    return best, scores, scored[best.name]


def extended_vocabulary(base: Base, text: str) -> tuple[Vocabulary, list[str]]:
    """The fine-tuned model's vocabulary (the base's and the text's characters, sorted) and
    the text's characters the base lacks."""
    new = base.vocab.unknown(text)
    return Vocabulary(tuple(sorted(set(base.vocab.chars) | set(new)))), new


def describe_new_chars(new: list[str]) -> str:
    noun = "character" if len(new) == 1 else "characters"
    return f"{len(new)} {noun} the base never saw: {describe_chars(new)}"


def fine_tuning_weights(base: Base, vocab: Vocabulary, text: str | None = None
                        ) -> list[np.ndarray]:
    """The base's weights for a model over `vocab` (a superset of the base's vocabulary):
    the embedding's rows and the output layer's columns moved to the new ids; a new
    character gets the mean embedding, the mean output column and the lowest output bias,
    then, given the `text` to be trained on, rows fitted to it (`new_rows`)."""
    weights = [w.copy() for w in base.weights]
    embedding, kernel, bias = weights[0], weights[-2], weights[-1]
    old_ids = {char: i for i, char in enumerate(base.vocab.chars)}
    rows = [old_ids.get(char) for char in vocab.chars]
    new_embedding = np.empty((len(vocab), embedding.shape[1]), np.float32)
    new_kernel = np.empty((kernel.shape[0], len(vocab)), np.float32)
    new_bias = np.empty(len(vocab), np.float32)
    mean_row, mean_column, low = embedding.mean(0), kernel.mean(1), bias.min()
    for i, row in enumerate(rows):
        known = row is not None
        new_embedding[i] = embedding[row] if known else mean_row
        new_kernel[:, i] = kernel[:, row] if known else mean_column
        new_bias[i] = bias[row] if known else low
    weights = [new_embedding, *weights[1:-2], new_kernel, new_bias]
    new = [char for char, row in zip(vocab.chars, rows, strict=True) if row is None]
    if text is None or not new:
        return weights
    from textgen.generate.new_rows import fit_new_rows

    return fit_new_rows(replace(base.config, vocab_size=len(vocab)), weights, vocab, new, text)
