"""Scoring a text with a trained generator: cross-entropy in bits and nats per character.

Two figures. `bits_per_char` averages over consecutive windows of the run's --seq-length, each
starting from a zero state, as validation does during training. `bits_per_char_stateful`
carries the recurrent state through the whole text, so every character is predicted from all
the text before it: the figure char-rnn and the language-model literature report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from textgen.errors import TextgenError
from textgen.generate.config import GeneratorConfig
from textgen.generate.data import evaluation_dataset, read_text
from textgen.generate.model import LOSS, build_stream_model
from textgen.generate.sampling import read_vocabulary
from textgen.generate.train import LN2
from textgen.runs import ModelChoice, load_keras_model

STREAM_CHUNK = 4096  # characters per call of the stateful model (the state goes on between)


def evaluate_text(path: str | Path, model: ModelChoice, batch_size: int = 64,
                  window: int | None = None) -> dict[str, float | int]:
    """Mean cross-entropy of the model on a text, in bits and nats per character: over
    consecutive windows of `window` characters (default: the run's --seq-length), and with
    the state carried through the whole text.

    Characters outside the model's vocabulary are counted and left out.
    """
    text = read_text(path)
    vocab = read_vocabulary(model.run)
    config = GeneratorConfig.from_dict(model.meta["config"])
    unknown = set(vocab.unknown(text))
    known_text = "".join(c for c in text if c not in unknown) if unknown else text
    n_unknown = len(text) - len(known_text)
    if len(known_text) < 2:
        raise TextgenError(f"{path}: fewer than 2 characters the model knows; nothing to score")
    keras_model = load_keras_model(model.file)
    keras_model.compile(loss=LOSS)
    ids = vocab.encode(known_text)
    data = evaluation_dataset(ids, window or config.seq_length, batch_size, len(vocab))
    nats = float(keras_model.evaluate(data, verbose=0))
    stateful = stateful_nats(config, keras_model, ids)
    return {"bits_per_char": nats / LN2, "nats_per_char": nats,
            "bits_per_char_stateful": stateful / LN2, "nats_per_char_stateful": stateful,
            "chars": len(text), "unknown_chars": n_unknown}


def stateful_nats(config: GeneratorConfig, trained, ids: np.ndarray) -> float:
    """Mean cross-entropy of ids[1:] given everything before, the state carried throughout."""
    import tensorflow as tf

    stream = build_stream_model(config, trained)
    run = tf.function(lambda x, states: stream([x, *states], training=False))
    states = [tf.zeros([1, config.units]) for _ in stream.inputs[1:]]
    total = 0.0
    for start in range(0, len(ids) - 1, STREAM_CHUNK):
        inputs = ids[start : min(start + STREAM_CHUNK, len(ids) - 1)].astype(np.int32)
        targets = ids[start + 1 : start + 1 + len(inputs)].astype(np.int64)
        probs, *states = run(tf.constant(inputs[None, :]), states)
        picked = np.take_along_axis(probs.numpy()[0], targets[:, None], axis=1)[:, 0]
        total -= float(np.log(np.maximum(picked.astype(np.float64), 1e-30)).sum())
    return total / (len(ids) - 1)
