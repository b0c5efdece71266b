"""Rows for the characters a text adds to a base's vocabulary, fitted to the text (NumPy).

A new character's rows start as the base's averages (`base.fine_tuning_weights`). Fine-tuning
on a small text takes a few dozen steps at a gentle rate, too few to learn them: a character on
every line (a tab, a '…') then costs many bits where it comes and confuses the model after it.
So before training, on a sample of the text and in about a second:

- its input row becomes the embedding of the known character that, read in its place, best
  predicts what follows it (a tab after a newline reads like a space or a newline);
- its output column and bias are fitted by logistic regression against the base's own
  logits (the known characters' rows stay fixed), its occurrences weighted to its share of
  the text, so it starts as likely as it is, where it is.
"""

from __future__ import annotations

import numpy as np

from textgen.generate.config import GeneratorConfig
from textgen.generate.data import Vocabulary
from textgen.generate.stepper import NumpyStepper, RecurrentState

# Occurrences of each new character read (each after up to CONTEXT characters of the text):
# enough to tell a character's role, few enough to stay well under a second.
OCCURRENCES = 16
CONTEXT = 32
# Rows are fitted for at most this many new characters, the most frequent (each costs about
# 0.1 s); the rest, rare in a text with so many (another script's letters quoted in code),
# keep their averages.
MAX_FITTED = 16
# The output fit reads windows spread evenly over the text, as the base's score does.
FIT_WINDOWS = 32
FIT_WINDOW = 100
FIT_STEPS = 300  # Adam steps of the output fit (full batch; each costs milliseconds)
FIT_RATE = 0.02
# Pulls the fitted columns towards their average start, so a character seen a few times does
# not get a column tuned to those few places.
FIT_L2 = 1e-3
# A larger text is read as this many pieces spread evenly over it, so a 100 MB corpus costs
# what 2 MB do (a new character missing from them is rare there, and learnt in training).
SAMPLE_PIECES = 64
PIECE_CHARS = 32_000


def fit_new_rows(config: GeneratorConfig, weights: list[np.ndarray], vocab: Vocabulary,
                 new: list[str], text: str) -> list[np.ndarray]:
    """`weights` (a model over `vocab`, the `new` characters' rows at their averages) with
    those rows fitted to `text` as the module says, for the MAX_FITTED most frequent after the
    text's first character; the others keep their average rows."""
    ids = vocab.encode(_spread_sample(text))  # the vocabulary's small unsigned ids
    is_new = np.zeros(len(vocab), bool)
    is_new[[vocab.chars.index(char) for char in new]] = True
    counts = np.bincount(ids[1:], minlength=len(vocab))  # after the first: one to predict
    present = sorted((i for i in np.flatnonzero(is_new) if counts[i]), key=lambda i: -counts[i])
    present = present[:MAX_FITTED]
    if len(ids) < 2 or not present:
        return weights
    weights = [w.copy() for w in weights]
    known_in_text = np.flatnonzero((counts > 0) & ~is_new)
    _fit_inputs(config, weights, ids, is_new, present, known_in_text)
    _fit_outputs(config, weights, ids, is_new, present)
    return weights


def _spread_sample(text: str) -> str:
    """The text, or SAMPLE_PIECES pieces of PIECE_CHARS spread evenly over a larger one."""
    if len(text) <= SAMPLE_PIECES * PIECE_CHARS:
        return text
    starts = np.linspace(0, len(text) - PIECE_CHARS, SAMPLE_PIECES).astype(int)
    return "".join(text[start:start + PIECE_CHARS] for start in starts)


def _occurrences(ids: np.ndarray, char_id: int, following_known: np.ndarray | None) -> np.ndarray:
    """Up to OCCURRENCES positions of `char_id` after the text's first character, spread
    evenly; where `following_known` is given, only those followed by a known character."""
    positions = np.flatnonzero(ids == char_id)
    positions = positions[positions >= 1]
    if following_known is not None:
        positions = positions[positions + 1 < len(ids)]
        positions = positions[following_known[ids[positions + 1]]]
    if len(positions) > OCCURRENCES:
        positions = positions[np.linspace(0, len(positions) - 1, OCCURRENCES).astype(int)]
    return positions


def _read_before(stepper: NumpyStepper, ids: np.ndarray, positions: np.ndarray
                 ) -> tuple[RecurrentState, np.ndarray]:
    """The state after reading the up to CONTEXT characters before each position (each from a
    zero state, as in training), and the dense layer's input there."""
    starts = np.maximum(positions - CONTEXT, 0)
    length = int((positions - starts).max())
    state = stepper.zero_state(len(positions))
    for t in range(length):
        at = positions - length + t  # right-aligned: every row ends just before its position
        waiting = at < starts
        stepper.advance(state, ids[np.maximum(at, 0)])
        for h, c in zip(state.h, state.c, strict=True):
            h[waiting], c[waiting] = 0, 0  # not started yet: still the zero state
    return state, stepper.dense_input(state)


def _fit_inputs(config: GeneratorConfig, weights: list[np.ndarray], ids: np.ndarray,
                is_new: np.ndarray, present: list[int], candidates: np.ndarray) -> None:
    """Each new character's input row: the embedding of the candidate (the text's known
    characters) that, read in its place, best predicts the character after it."""
    embedding = weights[0]
    stepper = NumpyStepper(config, weights)
    samples = {char_id: _occurrences(ids, char_id, following_known=~is_new)
               for char_id in present}
    samples = {char_id: positions for char_id, positions in samples.items() if len(positions)}
    if not samples or not len(candidates):
        return
    state, _ = _read_before(stepper, ids, np.concatenate(list(samples.values())))  # one batch
    first = 0
    for char_id, positions in samples.items():
        rows, tried = len(positions), len(candidates)
        mine = np.repeat(np.arange(first, first + rows), tried)  # each row once per candidate
        first += rows
        tries = RecurrentState([h[mine] for h in state.h], [c[mine] for c in state.c])
        probs = stepper.advance(tries, np.tile(candidates, rows))  # (rows * tried, vocab)
        following = np.repeat(ids[positions + 1], tried)
        logs = np.log(np.maximum(probs[np.arange(rows * tried), following], 1e-12))
        best = candidates[int(np.argmax(logs.reshape(rows, tried).mean(axis=0)))]
        embedding[char_id] = embedding[best]


def _fit_outputs(config: GeneratorConfig, weights: list[np.ndarray], ids: np.ndarray,
                 is_new: np.ndarray, present: list[int]) -> None:
    """The new characters' output columns and biases: a softmax regression on the dense
    layer's inputs over the text, the known characters' logits fixed."""
    x, y, w = _output_examples(NumpyStepper(config, weights), ids, is_new, present)
    kernel, bias = weights[-2], weights[-1]
    known, fitted = np.flatnonzero(~is_new), np.array(present)
    known_logits = x @ kernel[:, known] + bias[known]
    peak = known_logits.max(axis=1, keepdims=True)
    known_mass = np.exp(known_logits - peak).sum(axis=1, keepdims=True)  # fixed
    start = [kernel[:, fitted].copy(), bias[fitted].copy()]
    params = [array.copy() for array in start]  # the columns, the biases
    target = (y[:, None] == fitted[None, :]).astype(np.float32)
    adam = _Adam(params)
    for _ in range(FIT_STEPS):
        columns, offsets = params
        new_mass = np.exp(np.minimum(x @ columns + offsets - peak, 60.0))
        error = (new_mass / (known_mass + new_mass.sum(axis=1, keepdims=True)) - target)
        error *= w[:, None]  # the weighted cross-entropy's gradient at the logits
        adam.step([x.T @ error + FIT_L2 * (columns - start[0]),
                   error.sum(axis=0) + FIT_L2 * (offsets - start[1])])
    kernel[:, fitted], bias[fitted] = params


def _output_examples(stepper: NumpyStepper, ids: np.ndarray, is_new: np.ndarray,
                     present: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dense inputs, next characters, weights summing to 1): every place in FIT_WINDOWS
    windows whose next character is known, and each new character's sampled places, weighted
    so that it counts as often as its share of the text."""
    features, labels = [], []
    length = min(FIT_WINDOW, len(ids) - 1)
    starts = np.unique(np.linspace(0, len(ids) - length - 1, FIT_WINDOWS).astype(int))
    state = stepper.zero_state(len(starts))
    for t in range(length):
        stepper.advance(state, ids[starts + t])
        following = ids[starts + t + 1]
        keep = ~is_new[following]  # the new characters' own places come from their samples
        features.append(stepper.dense_input(state)[keep])
        labels.append(following[keep])
    sampled = sum(len(f) for f in features)
    weight = [np.ones(sampled, np.float32)]
    sampled = max(sampled, 1)  # a text of new characters only: weigh them by share alone
    samples = {char_id: _occurrences(ids, char_id, following_known=None) for char_id in present}
    _, dense = _read_before(stepper, ids, np.concatenate(list(samples.values())))  # one batch
    features.append(dense)
    for char_id, positions in samples.items():
        labels.append(np.full(len(positions), char_id))
        share = np.count_nonzero(ids == char_id) / len(ids)
        weight.append(np.full(len(positions), share * sampled / len(positions), np.float32))
    w = np.concatenate(weight)
    return np.concatenate(features), np.concatenate(labels), w / w.sum()


class _Adam:
    """Adam (Kingma and Ba's defaults, FIT_RATE) updating NumPy arrays in place."""

    def __init__(self, params: list[np.ndarray]):
        self.params, self.steps = params, 0
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.steps += 1
        for param, grad, first, second in zip(self.params, grads, self.first, self.second,
                                              strict=True):
            first[...] = 0.9 * first + 0.1 * grad
            second[...] = 0.999 * second + 0.001 * grad * grad
            param -= FIT_RATE * (first / (1 - 0.9 ** self.steps)) / (
                np.sqrt(second / (1 - 0.999 ** self.steps)) + 1e-8)
