"""Scoring a text with a trained generator: cross-entropy in bits and nats per character."""

from __future__ import annotations

from pathlib import Path

from textgen.errors import TextgenError
from textgen.generate.config import GeneratorConfig
from textgen.generate.data import evaluation_dataset, read_text
from textgen.generate.model import LOSS
from textgen.generate.sampling import read_vocabulary
from textgen.generate.train import LN2
from textgen.runs import ModelChoice, load_keras_model


def evaluate_text(path: str | Path, model: ModelChoice, batch_size: int = 64
                  ) -> dict[str, float | int]:
    """Mean cross-entropy of the model on a text, in bits and nats per character, over
    consecutive windows of the run's --seq-length.

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
    data = evaluation_dataset(ids, config.seq_length, batch_size, len(vocab))
    nats = float(keras_model.evaluate(data, verbose=0))
    return {"bits_per_char": nats / LN2, "nats_per_char": nats, "chars": len(text),
            "unknown_chars": n_unknown}
