"""A text corpus's character Vocabulary, and windowing it into training batches.

Memory stays proportional to the corpus: the text is held once as a compact id array and the
windows and one-hot targets are built per batch inside a tf.data pipeline.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textgen.errors import FieldError, TextgenError, named_fields

if TYPE_CHECKING:
    import tensorflow as tf

BUNDLED_CORPUS = "othello.txt"
# Short texts still get this many batches per epoch, so a 2 KB speech trains in a few epochs.
MIN_STEPS_PER_EPOCH = 10
_ENCODE_CHUNK = 1 << 22  # characters converted to ids at a time (bounds temporary memory)
# the Unicode forms a seed may be read in where its own has characters the model never saw
UNICODE_FORMS = ("NFC", "NFD")


def bundled_corpus_path(name: str = BUNDLED_CORPUS) -> Path:
    """Path of a corpus shipped with textgen (works in editable installs and wheels)."""
    return Path(str(resources.files("textgen.corpora").joinpath(name)))


@dataclass(frozen=True)
class Vocabulary:
    """The sorted set of characters a model knows; id i stands for `chars[i]`."""

    chars: tuple[str, ...]

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Each character's id."""
        return {char: i for i, char in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """The smallest id type: one byte per character for texts of up to 256 characters."""
        for dtype in (np.uint8, np.uint16):
            if len(self.chars) <= np.iinfo(dtype).max + 1:
                return dtype
        return np.uint32

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, sorted, each once."""
        known = set(self.chars)
        return sorted(set(text) - known)

    def known_form(self, text: str) -> str:
        """`text`, or its composed (NFC) or decomposed (NFD) Unicode form where that holds
        only characters the model knows: an accent typed as a letter and a combining mark
        (as macOS and PDFs give them) is the accented letter the training text had. Only a
        whole match: a partial one would turn 'Ã' into an 'A' and a mark to drop."""
        if not self.unknown(text):
            return text
        for form in UNICODE_FORMS:
            candidate = unicodedata.normalize(form, text)
            if not self.unknown(candidate):
                return candidate
        return text

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`; raises TextgenError if one is unknown."""
        codes = np.fromiter((ord(c) for c in self.chars), dtype=np.uint32, count=len(self.chars))
        out = np.empty(len(text), dtype=self.dtype)
        for start in range(0, len(text), _ENCODE_CHUNK):
            chunk = text[start : start + _ENCODE_CHUNK]
            points = np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            ids = np.searchsorted(codes, points)
            ids = np.minimum(ids, len(codes) - 1)
            bad = codes[ids] != points
            if bad.any():
                missing = self.unknown(chunk)
                raise TextgenError(f"characters not in the vocabulary: {describe_chars(missing)}")
            out[start : start + len(chunk)] = ids
        return out

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        return json.dumps(list(self.chars), ensure_ascii=True)

    @classmethod
    def from_json(cls, data: str) -> Vocabulary:
        chars = json.loads(data)
        if not isinstance(chars, list) or not all(
            isinstance(c, str) and len(c) == 1 for c in chars
        ):
            raise ValueError("a vocabulary is a JSON list of single characters")
        if chars != sorted(set(chars)):
            raise ValueError("vocabulary characters must be sorted and unique")
        return cls(tuple(chars))


DIGEST_PIECE = 1 << 20  # characters encoded at a time: no second copy of a 100 MB text


def text_digest(text: str) -> str:
    """The SHA-256 of the text's UTF-8, so a run knows the text it was trained on."""
    digest = hashlib.sha256()
    for start in range(0, len(text), DIGEST_PIECE):
        digest.update(text[start:start + DIGEST_PIECE].encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# Texts are scanned for runs in pieces of this many characters (a run is never split).
RUN_PIECE = 10_000_000


def longest_runs(text: str, chars: Iterable[str] | None = None) -> dict[str, int]:
    """Each character of the text (`chars`, when known), with the most times it occurs in a
    row."""
    longest = dict.fromkeys(set(text) if chars is None else chars, 1)
    start = 0
    while start < len(text):
        end = min(len(text), start + RUN_PIECE)
        while end < len(text) and text[end] == text[end - 1]:
            end += 1  # a piece ends between two different characters
        codes = np.frombuffer(text[start:end].encode("utf-32-le", "surrogatepass"), np.uint32)
        repeated = np.flatnonzero(codes[1:] == codes[:-1])  # i: character i+1 repeats i
        if len(repeated):  # each stretch of consecutive i's is one run, one longer than it
            breaks = np.flatnonzero(np.diff(repeated) != 1) + 1
            firsts = np.concatenate(([0], breaks))
            lengths = np.diff(np.concatenate((firsts, [len(repeated)]))) + 1
            for code, length in zip(codes[repeated[firsts]], lengths, strict=True):
                char = chr(code)
                longest[char] = max(longest[char], int(length))
        start = end
    return dict(sorted(longest.items()))


def line_starts(text: str) -> str | None:
    """The characters the text's lines start with (the first line's included), sorted; None
    for a text without line breaks. Read in pieces, as longest_runs reads."""
    if "\n" not in text:
        return None
    found = {text[0]}
    for start in range(0, len(text), RUN_PIECE):
        piece = text[max(0, start - 1):start + RUN_PIECE]  # a break ending the last piece
        codes = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), np.uint32)
        found.update(map(chr, np.unique(codes[1:][codes[:-1] == ord("\n")])))
    return "".join(sorted(found))


def longest_between(text: str, separators: Sequence[Iterable[str]]) -> list[int]:
    """For each set of `separators`, the most characters in a row of the text without one of
    them (its longest line, with "\n"; its longest word, with the whitespace). Read in
    pieces, as longest_runs reads, each piece encoded once for all the sets."""
    marks = [np.array(sorted({ord(c) for c in chars}), np.uint32) for chars in separators]
    longest, running = [0] * len(marks), [0] * len(marks)  # running: a stretch still open
    for start in range(0, len(text), RUN_PIECE):
        codes = np.frombuffer(text[start:start + RUN_PIECE].encode("utf-32-le", "surrogatepass"),
                              np.uint32)
        for i, these in enumerate(marks):
            at = np.flatnonzero(codes == these[0] if len(these) == 1 else np.isin(codes, these))
            if not len(at):
                running[i] += len(codes)
                continue
            inner = int(np.diff(at).max()) - 1 if len(at) > 1 else 0
            longest[i] = max(longest[i], running[i] + int(at[0]), inner)
            running[i] = len(codes) - int(at[-1]) - 1
    return [max(pair) for pair in zip(longest, running, strict=True)]


def line_lengths(text: str, chars: Iterable[str] | None = None) -> dict[str, int] | None:
    """The text's longest line and longest word (whitespace apart), for the sampler's line
    rule (generate/limits.py); `chars`: the text's characters, when known. None for a text
    without line breaks."""
    if "\n" not in text:
        return None
    spaces = [c for c in (set(text) if chars is None else chars) if c.isspace()]
    line, word = longest_between(text, ["\n", spaces])
    return {"longest_line": line, "longest_word": word}


def describe_chars(chars: list[str], limit: int = 10) -> str:
    """`'é' (U+00E9), '\\t' (U+0009)`: readable even for control and invisible characters."""
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return shown + more


@dataclass(frozen=True)
class Split:
    """A corpus encoded as ids and split by position into training and validation parts."""

    train: np.ndarray
    validation: np.ndarray


def validation_length(n_chars: int, seq_length: int, val_split: float) -> int:
    """Characters held out for validation; a one-line error when the text cannot hold one
    training window (L+1 characters) besides them."""
    if not 0.0 <= val_split < 1.0:
        raise FieldError("val_split", f"must be in [0, 1), got {val_split}")
    need = seq_length + 1
    n_val = math.floor(n_chars * val_split)
    if val_split > 0 and n_val < need:
        n_val = need  # a short text still gets one validation window
    if n_chars - n_val < need:
        # a smaller share where one (a window at least) leaves a training window, else none
        fewer = ("a smaller {val_split}" if n_val > need and n_chars >= 2 * need else
                 "{no_validation} (no validation figure)" if n_val and n_chars >= need else "")
        raise TextgenError(
            f"the corpus has {n_chars:,} characters, too short for windows of {seq_length:,} "
            f"(training needs {need:,}{f' plus {n_val:,} for validation' if n_val else ''}); "
            f"use a smaller {{seq_length}}{f', {fewer}' if fewer else ''} or a longer text",
            {**named_fields("seq_length", "val_split"), "no_validation": ("val_split", 0)})
    return n_val


def split_by_position(ids: np.ndarray, seq_length: int, val_split: float) -> Split:
    """The last `val_split` fraction is validation; both parts must hold one window (L+1 chars)."""
    n_val = validation_length(len(ids), seq_length, val_split)
    return Split(train=ids[: len(ids) - n_val], validation=ids[len(ids) - n_val :])


def steps_per_epoch(n_train: int, seq_length: int, batch_size: int) -> int:
    """Batches in one pass over the training text, at least MIN_STEPS_PER_EPOCH."""
    return max(MIN_STEPS_PER_EPOCH, math.ceil(n_train / (seq_length * batch_size)))


def _windows_to_batch(ids: tf.Tensor, starts: tf.Tensor, seq_length: int, vocab_size: int):
    """Inputs ids[s:s+L] and one-hot targets ids[s+1:s+L+1] for every start s."""
    import keras
    import tensorflow as tf

    index = starts[:, None] + tf.range(seq_length + 1, dtype=starts.dtype)[None, :]
    window = tf.cast(tf.gather(ids, index), tf.int32)
    inputs = window[:, :-1]
    targets = keras.utils.to_categorical(window[:, 1:], vocab_size)
    # to_categorical squeezes a trailing axis of 1; keep (batch, L, vocab) even for L == 1.
    targets = tf.reshape(targets, [-1, seq_length, vocab_size])
    return inputs, targets


def training_dataset(
    ids: np.ndarray,
    seq_length: int,
    batch_size: int,
    vocab_size: int,
    seed: int,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """An endless stream of batches of windows at random offsets (seeded, char-rnn style).

    Random offsets mean every epoch sees differently aligned windows, which matters on short
    texts. `skip_batches` fast-forwards the stream so a resumed run continues it.
    """
    import tensorflow as tf

    ids_tensor = tf.constant(ids.astype(np.int32) if ids.dtype == np.uint32 else ids)
    n_starts = len(ids) - seq_length
    starts = (
        tf.data.Dataset.random(seed=seed)
        .map(lambda r: tf.math.floormod(r, n_starts))
        .batch(batch_size, drop_remainder=True)
    )
    if skip_batches:
        starts = starts.skip(skip_batches)
    # A sequential map and a small prefetch: building a batch is cheap next to a training step,
    # and TF 2.21 can stall for tens of seconds tearing down an autotuned parallel map on an
    # endless dataset when fit() ends.
    return starts.map(lambda s: _windows_to_batch(ids_tensor, s, seq_length, vocab_size)
                      ).prefetch(2)


def evaluation_dataset(
    ids: np.ndarray,
    seq_length: int,
    batch_size: int,
    vocab_size: int,
    max_windows: int | None = None,
) -> tf.data.Dataset:
    """Windows that score every prediction of the text once, in order (deterministic), as
    (inputs, one-hot targets, per-character weights) for Keras' `evaluate` and `fit`.

    Consecutive windows, and where the text does not end on a window's edge one more window
    ending with the text, its characters already scored weighted 0: a short text's tail
    counts as much as the rest. The weights are scaled so that Keras' mean over windows is the
    mean over the characters scored. With `max_windows`, an evenly spaced subset of at most
    that many of the consecutive windows (a sample of a long text: no tail window).
    """
    import tensorflow as tf

    length = min(seq_length, len(ids) - 1)
    predictions = len(ids) - 1  # targets ids[1:] from inputs ids[:-1]
    starts = np.arange(0, predictions - length + 1, length, dtype=np.int64)
    remainder = predictions % length  # the predictions after the last whole window
    if max_windows is not None and len(starts) + bool(remainder) > max_windows:
        starts = starts[np.linspace(0, len(starts) - 1, max_windows).astype(np.int64)]
        remainder = 0  # a sample of a long text: no end window
    elif remainder:
        starts = np.append(starts, predictions - length)
    weights = np.ones((len(starts), length), np.float32)
    if remainder:
        weights[-1, : length - remainder] = 0.0  # scored by the window before
        weights *= len(starts) * length / predictions
    ids_tensor = tf.constant(ids.astype(np.int32) if ids.dtype == np.uint32 else ids)
    return (
        tf.data.Dataset.from_tensor_slices((starts, weights))
        .batch(batch_size)
        .map(lambda s, w: (*_windows_to_batch(ids_tensor, s, length, vocab_size), w))
        .prefetch(2)
    )
