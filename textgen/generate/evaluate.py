"""Scoring a text with a trained generator: cross-entropy in bits and nats per character.

Two figures. `bits_per_char` averages over consecutive windows of the run's --seq-length, each
starting from a zero state, as validation does during training. `bits_per_char_stateful`
carries the recurrent state through the whole text, so every character is predicted from all
the text before it: the figure char-rnn and the language-model literature report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from textgen.errors import TextgenError, as_path, check_field
from textgen.generate.config import GeneratorConfig, Precision
from textgen.generate.data import evaluation_dataset
from textgen.generate.model import LOSS, build_generator
from textgen.generate.sampling import read_vocabulary
from textgen.generate.stepper import check_run_weights
from textgen.generate.train import LN2
from textgen.modes import Mode
from textgen.reading import Decoding, read_text
from textgen.runs import Checkpoint, ModelChoice, RunDir, find_model, load_keras_model
from textgen.tf_setup import keras_defaults, random_states_kept

# The stateful figure runs the text as up to MAX_STREAMS contiguous parts side by side (one
# batch), each part but the first starting LEAD_IN characters early to build its state, so
# every scored character has at least LEAD_IN characters of context (all of it in a text
# shorter than MIN_PART_CHARS x 2, which runs as one stream). Batch 1 over 100k characters
# took minutes; this takes seconds.
MAX_STREAMS = 64
MIN_PART_CHARS = 2048
LEAD_IN = 512
PROBABILITIES_PER_CALL = 1 << 24  # bounds the (streams, chunk, vocab) output of one call


@keras_defaults()  # a program's global Keras policy stays out
def evaluate_text(path: str | Path, model: ModelChoice | RunDir | str | Path | Any | None = None,
                  batch_size: int = 64, window: int | None = None,
                  decoding: Decoding | str | None = None,
                  checkpoint_dir: str | Path | None = None, *, encoding: str | None = None,
                  decode_errors: str | None = None,
                  checkpoint: Checkpoint | str = Checkpoint.best) -> dict[str, float | int]:
    """Mean cross-entropy of the model on a text, in bits and nats per character: over
    consecutive windows of `window` characters (default: the run's seq_length), and with
    the state carried through the whole text. `model` is what find_model takes or returns
    (its best.keras, or `checkpoint`'s file; a run name is looked up in `checkpoint_dir`;
    None, the latest generator run).
    The text is read as the run read its own, or as `encoding` and `decode_errors` (strict, replace,
    ignore) say, as for train_generator (or `decoding`: a Decoding or an encoding's name).

    Characters outside the model's vocabulary are counted and left out.
    """
    path = as_path(path, "path")
    check_field(window is None or _whole(window) and window >= 1, "window",
                f"must be a whole number >= 1, got {window!r}")
    check_field(_whole(batch_size) and batch_size >= 1, "batch_size",
                f"must be a whole number >= 1, got {batch_size!r}")
    check_field(decoding is None or isinstance(decoding, Decoding | str), "decoding",
                f"must be a Decoding or an encoding's name, got {decoding!r}")
    window = None if window is None else int(window)
    model = find_model(model, checkpoint_dir, mode=Mode.generate, checkpoint=checkpoint)
    if decoding is None:
        decoding = Decoding.from_dict(model.meta.get("decoding"))
    decoding = decoding if isinstance(decoding, Decoding) else Decoding(decoding)
    decoding = decoding.overridden(encoding, decode_errors)
    text = read_text(path, decoding)
    config = GeneratorConfig.from_dict(model.meta["config"], str(model.run.meta))
    vocab = read_vocabulary(model.run, config)
    unknown = set(vocab.unknown(text))
    known_text = "".join(c for c in text if c not in unknown) if unknown else text
    n_unknown = len(text) - len(known_text)
    if len(known_text) < 2:
        raise TextgenError(f"{path}: fewer than 2 characters the model knows; nothing to score")
    with random_states_kept():  # Keras' initializers draw from Python's as a model loads
        keras_model = load_keras_model(model.file)
        check_run_weights(config, keras_model.get_weights(), model.file, model.run)
        keras_model.compile(loss=LOSS)
        ids = vocab.encode(known_text)
        data = evaluation_dataset(ids, window or config.seq_length, int(batch_size), len(vocab))
        nats = float(keras_model.evaluate(data, verbose=0))
        stateful = stateful_nats(config, keras_model, ids)
    return {"bits_per_char": nats / LN2, "nats_per_char": nats,
            "bits_per_char_stateful": stateful / LN2, "nats_per_char_stateful": stateful,
            "chars": len(text), "unknown_chars": n_unknown}


def _whole(value: Any) -> bool:
    """A whole number, NumPy's included (not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def stateful_nats(config: GeneratorConfig, trained, ids: np.ndarray) -> float:
    """Mean cross-entropy of ids[1:] given the text before, the state carried through (see
    MAX_STREAMS for how the text is split into parallel streams)."""
    import tensorflow as tf

    n = len(ids) - 1  # predictions to score: ids[1:] from ids[:-1]
    streams = max(1, min(MAX_STREAMS, n // MIN_PART_CHARS))
    part = -(-n // streams)
    lead = min(LEAD_IN, part) if streams > 1 else 0
    length = lead + part
    inputs = np.zeros((streams, length), np.int32)
    targets = np.zeros((streams, length), np.int64)
    scored = np.zeros((streams, length), bool)
    for k in range(streams):
        first, last = k * part, min((k + 1) * part, n)  # targets first..last-1 (0-based)
        start = max(0, first - lead)
        size = last - start
        inputs[k, :size] = ids[start:last]
        targets[k, :size] = ids[start + 1 : last + 1]
        scored[k, first - start : size] = True
    stream = build_generator(config, with_states=True, precision=Precision.float32)
    stream.set_weights(trained.get_weights())
    run = tf.function(lambda x, states: stream([x, *states], training=False))
    states = [tf.zeros([streams, config.units]) for _ in stream.inputs[1:]]
    chunk = max(32, min(4096, PROBABILITIES_PER_CALL // (streams * config.vocab_size)))
    total = 0.0
    for begin in range(0, length, chunk):
        end = min(begin + chunk, length)
        probs, *states = run(tf.constant(inputs[:, begin:end]), states)
        picked = np.take_along_axis(probs.numpy(), targets[:, begin:end, None], axis=2)[..., 0]
        logs = np.log(np.maximum(picked.astype(np.float64), 1e-30))
        total -= float(logs[scored[:, begin:end]].sum())
    return total / n
