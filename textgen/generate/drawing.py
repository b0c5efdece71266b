"""Choosing the next character: temperature, top-k and top-p (nucleus), then one draw.

Rows are reshaped and drawn together (one NumPy call for a whole batch of sequences), each
with its own settings and random draws; every operation is row by row, so a row gets bit
for bit what it would get alone.

The draws are counter-based (`Uniforms`: draw k of seed s is splitmix64(s + (k + 1) x golden
ratio), 53 bits), so the SavedModel that `textgen export` writes computes the same numbers in
TensorFlow and generates the same text as `textgen sample` for the same --rng-seed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

import numpy as np

DrawSettings = tuple[float, int | None, float | None]  # (temperature, top_k, top_p) of a row

MASK64 = (1 << 64) - 1
# splitmix64's constants (Steele, Lea and Flood 2014; Vigna's reference code)
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_1, MIX_2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
UNIFORM_BITS = 53  # a float64's significand: every value k / 2**53 is exact


def splitmix64(state: int) -> int:
    """splitmix64's output function of a 64-bit state."""
    z = state & MASK64
    z = ((z ^ (z >> 30)) * MIX_1) & MASK64
    z = ((z ^ (z >> 27)) * MIX_2) & MASK64
    return z ^ (z >> 31)


class Uniforms:
    """One sequence's stream of uniform draws in [0, 1) from an integer seed (any int: it is
    taken modulo 2**64; None draws a seed from the OS)."""

    def __init__(self, seed: int | None = None):
        self.seed = secrets.randbits(64) if seed is None else seed & MASK64
        self.count = 0

    def random(self) -> float:
        self.count += 1
        bits = splitmix64(self.seed + self.count * GOLDEN_GAMMA) >> (64 - UNIFORM_BITS)
        return bits / float(1 << UNIFORM_BITS)


def next_char_distributions(probs: np.ndarray, settings: Sequence[DrawSettings]) -> np.ndarray:
    """Reshape rows of next-character distributions, each with its own (temperature, top_k,
    top_p): temperature, then top-k, then top-p (nucleus); None is off.

    Every operation is row by row, so a row's result does not depend on the other rows (a
    request's text is the same alone and in a batch). Temperature 0 puts all mass on the
    argmax (greedy) instead of dividing by zero.
    """
    rows, vocab = probs.shape
    # p ** (1/T), scaled by each row's largest first so that nothing overflows or vanishes
    out = np.asarray(probs, dtype=np.float64) / probs.max(axis=1, keepdims=True)
    out **= np.array([[1.0 / (t or 1.0)] for t, _, _ in settings])
    top_k = [vocab if k is None else min(k, vocab) for _, k, _ in settings]
    if min(top_k) < vocab:
        cutoff = -np.sort(-out, axis=1)[np.arange(rows), np.array(top_k) - 1]
        out[out < cutoff[:, None]] = 0.0
    out /= np.cumsum(out, axis=1)[:, -1:]
    nucleus = [i for i, (_, _, p) in enumerate(settings) if p is not None and p < 1]
    if nucleus:
        top_p = np.array([[settings[i][2]] for i in nucleus])
        some = out[nucleus]
        order = np.argsort(-some, axis=1, kind="stable")
        cumulative = np.cumsum(np.take_along_axis(some, order, axis=1), axis=1)
        keep = (cumulative < top_p).sum(axis=1, keepdims=True) + 1  # smallest prefix >= p
        kept = np.zeros_like(some, dtype=bool)
        np.put_along_axis(kept, order, np.arange(vocab) < keep, axis=1)
        some[~kept] = 0.0
        out[nucleus] = some / np.cumsum(some, axis=1)[:, -1:]
    greedy = [i for i, (t, _, _) in enumerate(settings) if t == 0]
    if greedy:
        out[greedy] = 0.0
        out[greedy, probs[greedy].argmax(axis=1)] = 1.0
    return out


def choose_next_ids(probs: np.ndarray, rngs: Sequence[Uniforms],
                    settings: Sequence[DrawSettings]) -> list[int]:
    """Draw each row's next character id with its own generator and settings (inverse-CDF
    sampling: one uniform draw per non-greedy row, none for a greedy one)."""
    cumulative = np.cumsum(next_char_distributions(probs, settings), axis=1)
    draws = np.array([0.0 if t == 0 else rng.random()
                      for rng, (t, _, _) in zip(rngs, settings, strict=True)])
    # the greedy rows' distributions are one-hot: a draw of 0 picks the argmax
    chosen = (cumulative <= (draws * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(chosen, probs.shape[1] - 1).tolist()


def row_drawer(rng: Uniforms, temperature: float, top_k: int | None = None,
               top_p: float | None = None) -> Callable[[np.ndarray], int]:
    """choose_next for one sequence's rows, one after the other: the same arithmetic on one
    row as choose_next_ids, without its batch bookkeeping (the one-sequence sampler's hot
    loop). Returns a function of a row of probabilities that returns the drawn id."""
    if temperature == 0:
        return lambda probs: int(np.argmax(probs))
    if top_k is not None or top_p is not None:
        return lambda probs: choose_next_ids(probs[None, :], [rng],
                                             [(temperature, top_k, top_p)])[0]
    # an array exponent, as in next_char_distributions: NumPy takes another route for a
    # scalar exponent (0.5, 2), whose last bit may differ
    power = np.array([1.0 / temperature])

    def draw(probs: np.ndarray) -> int:
        out = np.asarray(probs, dtype=np.float64) / probs.max()
        out **= power
        out /= np.cumsum(out)[-1]
        cumulative = np.cumsum(out)
        chosen = int((cumulative <= rng.random() * cumulative[-1]).sum())
        return min(chosen, len(probs) - 1)

    return draw


def next_char_distribution(probs: np.ndarray, temperature: float, top_k: int | None = None,
                           top_p: float | None = None) -> np.ndarray:
    """One distribution reshaped (see next_char_distributions)."""
    return next_char_distributions(np.asarray(probs)[None, :],
                                   [(temperature, top_k, top_p)])[0]


def choose_next(probs: np.ndarray, rng: Uniforms, temperature: float,
                top_k: int | None = None, top_p: float | None = None) -> int:
    """Draw one next character id (see choose_next_ids)."""
    return choose_next_ids(np.asarray(probs)[None, :], [rng],
                           [(temperature, top_k, top_p)])[0]
