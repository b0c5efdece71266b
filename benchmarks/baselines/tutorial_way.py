"""The "Keras tutorial way" of character-level text generation, as a baseline.

Our own reimplementation of the widely copied Keras LSTM text-generation
tutorial recipe. It is deliberately naive and is used ONLY as the slow
baseline our benchmarks compare textgen against:

* every training window of the corpus is materialised at once, as float64
  normalised ids of shape (n_windows, seq_length, 1), with float64 one-hot
  targets for the whole corpus (huge memory, by design);
* a stacked LSTM(256) -> LSTM(256) model predicts only each window's next
  character (one training signal per window);
* sampling calls ``model.predict`` on the whole window for every generated
  character, re-running all ``seq_length`` steps each time.

Run as a script for a quick report::

    python -m benchmarks.baselines.tutorial_way --corpus data.txt --seconds 60
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def build_vocab(text: str) -> list[str]:
    """Return the vocabulary: the sorted set of characters in ``text``."""
    return sorted(set(text))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """Map characters to integer ids, skipping characters not in ``vocab``."""
    char_to_int = {c: i for i, c in enumerate(vocab)}
    return np.array([char_to_int[c] for c in text if c in char_to_int], dtype=np.int64)


def build_dataset(text: str, seq_length: int = 100) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Build ALL training windows of ``text`` at once, the tutorial way.

    Returns ``(X, y, vocab)`` where ``X`` is float64 of shape
    ``(n_windows, seq_length, 1)`` holding ids divided by the vocabulary size,
    and ``y`` is the float64 one-hot encoding of each window's next character,
    of shape ``(n_windows, vocab_size)``.
    """
    vocab = build_vocab(text)
    char_to_int = {c: i for i, c in enumerate(vocab)}
    n_chars = len(text)
    data_x: list[list[int]] = []
    data_y: list[int] = []
    for i in range(0, n_chars - seq_length):
        seq_in = text[i : i + seq_length]
        seq_out = text[i + seq_length]
        data_x.append([char_to_int[c] for c in seq_in])
        data_y.append(char_to_int[seq_out])
    n_windows = len(data_x)
    if n_windows == 0:
        raise ValueError(f"text of {n_chars} chars is too short for seq_length={seq_length}")
    X = np.reshape(np.array(data_x, dtype=np.float64), (n_windows, seq_length, 1))
    X = X / float(len(vocab))
    y = keras.utils.to_categorical(data_y, num_classes=len(vocab)).astype(np.float64)
    return X, y, vocab


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def build_model(seq_length: int, vocab_size: int, units: int = 256) -> keras.Model:
    """Two stacked LSTMs with dropout and a softmax over the next character."""
    model = keras.Sequential(
        [
            keras.Input(shape=(seq_length, 1)),
            keras.layers.LSTM(units, return_sequences=True),
            keras.layers.Dropout(0.2),
            keras.layers.LSTM(units),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(vocab_size, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    return model


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


class _TimeBudget(keras.callbacks.Callback):
    """Stop training once a wall-clock budget is exceeded, counting batches."""

    def __init__(self, seconds: float, n_windows: int, batch_size: int) -> None:
        super().__init__()
        self.seconds = seconds
        self.n_windows = n_windows
        self.batch_size = batch_size
        self.start = 0.0
        self.steps = 0
        self.signals = 0
        self._epoch_steps = 0

    def on_train_begin(self, logs=None) -> None:
        self.start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None) -> None:
        # The last batch of an epoch may be short: clamp to the epoch size.
        done_before = min(self._epoch_steps * self.batch_size, self.n_windows)
        self._epoch_steps += 1
        done_now = min(self._epoch_steps * self.batch_size, self.n_windows)
        self.steps += 1
        self.signals += done_now - done_before
        if time.perf_counter() - self.start >= self.seconds:
            self.model.stop_training = True


def train_for(
    model: keras.Model,
    X: np.ndarray,
    y: np.ndarray,
    seconds: float,
    batch_size: int = 64,
    seed: int = 0,
) -> dict:
    """Train with ``model.fit`` (shuffled epochs) until ``seconds`` have passed.

    The budget is checked after every batch, so training overshoots by at most
    one batch. The time includes ``fit``'s own start-up (graph tracing), as a
    tutorial user would experience it. Returns ``steps`` (optimiser steps),
    ``signals`` (windows trained on, one training signal per window),
    ``seconds`` (wall clock) and ``signals_per_second``.
    """
    keras.utils.set_random_seed(seed)
    budget = _TimeBudget(seconds, n_windows=len(X), batch_size=batch_size)
    t0 = time.perf_counter()
    model.fit(
        X,
        y,
        batch_size=batch_size,
        epochs=1_000_000,
        shuffle=True,
        verbose=0,
        callbacks=[budget],
    )
    elapsed = time.perf_counter() - t0
    return {
        "steps": budget.steps,
        "signals": budget.signals,
        "seconds": elapsed,
        "signals_per_second": budget.signals / elapsed if elapsed > 0 else 0.0,
    }


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def validation_bits_per_char(
    model: keras.Model,
    text: str,
    vocab: list[str],
    seq_length: int = 100,
    max_windows: int | None = 2000,
    batch_size: int = 256,
) -> float:
    """Mean cross-entropy, in bits/char, of each window's next character.

    Characters of ``text`` not in ``vocab`` are skipped. If ``max_windows`` is
    set, a deterministic, evenly spaced subset of that many windows is used.
    """
    ids = encode(text, vocab)
    n_windows = len(ids) - seq_length
    if n_windows <= 0:
        raise ValueError("validation text is too short for seq_length")
    starts = np.arange(n_windows)
    if max_windows is not None and n_windows > max_windows:
        starts = np.unique(np.linspace(0, n_windows - 1, max_windows).round().astype(np.int64))
    vocab_size = len(vocab)
    X = np.stack([ids[s : s + seq_length] for s in starts]).astype(np.float64)
    X = X.reshape(len(starts), seq_length, 1) / float(vocab_size)
    targets = ids[starts + seq_length]
    probs = model.predict(X, batch_size=batch_size, verbose=0)
    p = np.clip(probs[np.arange(len(targets)), targets], 1e-12, 1.0)
    return float(-np.mean(np.log2(p)))


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def generate(
    model: keras.Model,
    seed_ids: list[int] | np.ndarray,
    vocab_size: int,
    n_chars: int = 50,
    temperature: float = 0.0,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Generate ``n_chars`` ids, one ``model.predict`` call per character.

    ``temperature == 0`` picks the argmax; otherwise sample from the softmax
    re-weighted by ``temperature``. The window slides by one each step.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    pattern = [int(i) for i in seed_ids]
    seq_length = len(pattern)
    out: list[int] = []
    for _ in range(n_chars):
        x = np.reshape(pattern, (1, seq_length, 1)) / float(vocab_size)
        prediction = model.predict(x, verbose=0)[0].astype(np.float64)
        if temperature <= 0:
            index = int(np.argmax(prediction))
        else:
            logits = np.log(np.clip(prediction, 1e-12, 1.0)) / temperature
            p = np.exp(logits - logits.max())
            index = int(rng.choice(len(p), p=p / p.sum()))
        out.append(index)
        pattern.append(index)
        pattern = pattern[1:]
    return out


def sample_chars_per_second(
    model: keras.Model,
    seed_ids: list[int] | np.ndarray,
    vocab_size: int,
    n_chars: int = 50,
) -> float:
    """Time the predict-per-character greedy sampling loop, in chars/second.

    One warm-up ``predict`` call is made first and not timed, so the figure
    is the steady-state loop rather than first-call tracing.
    """
    generate(model, seed_ids, vocab_size, n_chars=1)
    t0 = time.perf_counter()
    generate(model, seed_ids, vocab_size, n_chars=n_chars)
    return n_chars / (time.perf_counter() - t0)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Train on 90% of a corpus, validate on the last 10%, print a report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="path to a UTF-8 text file")
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget")
    parser.add_argument("--seq-length", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-chars", type=int, default=None, help="use only the first N chars")
    parser.add_argument("--sample-chars", type=int, default=50, help="chars to time sampling on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    if args.max_chars is not None:
        text = text[: args.max_chars]
    split = int(0.9 * len(text))
    train_text, val_text = text[:split], text[split:]

    t0 = time.perf_counter()
    X, y, vocab = build_dataset(train_text, args.seq_length)
    build_seconds = time.perf_counter() - t0
    model = build_model(args.seq_length, len(vocab))
    stats = train_for(model, X, y, args.seconds, args.batch_size, seed=args.seed)
    bpc = validation_bits_per_char(model, val_text, vocab, args.seq_length)
    seed_ids = encode(val_text, vocab)[: args.seq_length]
    if len(seed_ids) < args.seq_length:
        seed_ids = encode(train_text, vocab)[: args.seq_length]
    chars_per_s = sample_chars_per_second(model, seed_ids, len(vocab), args.sample_chars)
    rss = peak_rss_mb()

    results = {
        "train_chars": len(train_text),
        "val_chars": len(val_text),
        "vocab_size": len(vocab),
        "windows": len(X),
        "dataset_mb": (X.nbytes + y.nbytes) / 2**20,
        "dataset_build_seconds": build_seconds,
        **stats,
        "val_bits_per_char": bpc,
        "sample_chars_per_second": chars_per_s,
        "peak_rss_mb": rss,
    }
    print("tutorial way baseline")
    print(f"{'metric':<26}{'value':>14}")
    print("-" * 40)
    rows = [
        ("train / val chars", f"{len(train_text)} / {len(val_text)}"),
        ("vocab size", f"{len(vocab)}"),
        ("windows (X, y MB)", f"{len(X)} ({results['dataset_mb']:.1f})"),
        ("dataset build s", f"{build_seconds:.2f}"),
        ("train seconds", f"{stats['seconds']:.1f}"),
        ("train steps", f"{stats['steps']}"),
        ("training signals/s", f"{stats['signals_per_second']:.1f}"),
        ("validation bits/char", f"{bpc:.3f}"),
        ("sampled chars/s", f"{chars_per_s:.1f}"),
        ("peak RSS MB", f"{rss:.0f}"),
    ]
    for name, value in rows:
        print(f"{name:<26}{value:>14}")
    return results


if __name__ == "__main__":
    main()
