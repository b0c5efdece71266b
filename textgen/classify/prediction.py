"""Using a trained classifier: labels for texts, evaluation on labelled folders or tables.

Predictions come from the NumPy classifier (classify/inference.py) whenever the saved model is
a shape it reproduces (every model textgen builds): no TensorFlow to import, so labelling a few
texts answers at once (benchmarks/quick_answers.py). Any other `.keras` file goes through
Keras' `model.predict`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textgen.classify.config import ClassifierConfig
from textgen.classify.data import Examples, evaluation_examples
from textgen.classify.inference import NumpyClassifier
from textgen.classify.metrics import Metrics
from textgen.classify.tables import Columns, check_columns_apply, is_blank
from textgen.errors import FieldError, TextgenError, as_path, check_field
from textgen.modes import Mode
from textgen.reading import Decoding
from textgen.runs import Checkpoint, ModelChoice, RunDir, find_model, load_keras_model
from textgen.tf_setup import keras_defaults, random_states_kept

if TYPE_CHECKING:
    import keras

KERAS_BATCH_SIZE = 512  # texts per model.predict batch


class KerasClassifier:
    """Class probabilities for raw texts from a loaded Keras classifier (`model.predict`)."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.known_words = None  # the vocabulary is inside the graph: not counted
        width = int(model.outputs[0].shape[-1])
        self.classes = 2 if width == 1 else width  # a sigmoid output stands for two classes

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n, classes) probabilities; for two classes, columns are P(class 0), P(class 1)."""
        import tensorflow as tf

        if not texts:
            return np.zeros((0, self.classes))
        data = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
        probs = self.model.predict(data.batch(KERAS_BATCH_SIZE), verbose=0)
        if probs.shape[-1] == 1:
            probs = np.concatenate([1.0 - probs, probs], axis=-1)
        return probs


Predictor = NumpyClassifier | KerasClassifier


def load_predictor(model: ModelChoice) -> Predictor:
    """The classifier in the chosen file: in NumPy when it can be, else through Keras."""
    return NumpyClassifier.read(model.file) or KerasClassifier(load_keras_classifier(model))


def load_keras_classifier(model: ModelChoice) -> keras.Model:
    """The Keras model of a classifier run (the run's mode already checked)."""
    import textgen.classify.model  # noqa: F401  (registers its layers for loading)

    with random_states_kept():  # Keras' initializers draw from Python's as a model loads
        return load_keras_model(model.file)


def classes_of(model: ModelChoice) -> list[str]:
    """The run's classes, in the order of the model's outputs."""
    return list(ClassifierConfig.from_dict(model.meta["config"], str(model.run.meta)).class_names)


@keras_defaults()  # a program's global Keras policy stays out
def evaluate_data(data: str | Path, model: ModelChoice | RunDir | str | Path | Any | None = None,
                  decoding: Decoding | str | None = None, columns: Columns | str | None = None,
                  checkpoint_dir: str | Path | None = None, *, encoding: str | None = None,
                  decode_errors: str | None = None, text_column: str | list[str] | None = None,
                  label_column: str | None = None,
                  checkpoint: Checkpoint | str = Checkpoint.best) -> Metrics:
    """Metrics of the model on labelled data: a folder of class subfolders (or a root with
    test/), or a table. It is read as the model's training data was, or as `encoding`,
    `decode_errors`, `text_column` and `label_column` say, as for train_classifier (or
    `decoding` and `columns`: a Decoding or an encoding's name, a Columns or "title,body").
    `model` is what find_model takes or returns (its best.keras, or `checkpoint`'s file; a
    run name is looked up in `checkpoint_dir`; None, the latest classify run)."""
    data = as_path(data, "data")
    check_field(decoding is None or isinstance(decoding, Decoding | str), "decoding",
                f"must be a Decoding or an encoding's name, got {decoding!r}")
    check_field(columns is None or isinstance(columns, Columns | str), "columns",
                f"must be a Columns or the text column's name(s), e.g. \"title,body\"; got "
                f"{columns!r}")
    check_columns_apply(data, text_column, label_column, columns)
    if isinstance(decoding, str):  # an encoding's name
        decoding = Decoding(decoding)
    if isinstance(columns, str):  # "text" or "title,body"
        columns = Columns.parse(columns)
    model = find_model(model, checkpoint_dir, mode=Mode.classify, checkpoint=checkpoint)
    config = ClassifierConfig.from_dict(model.meta["config"], str(model.run.meta))
    decoding = (decoding or Decoding.from_dict(model.meta.get("decoding"))).overridden(
        encoding, decode_errors)
    columns = columns or Columns.parse(saved=model.meta.get("columns"))
    if text_column is not None or label_column is not None:
        columns = Columns.parse(text_column, label_column, columns.to_dict())
    return evaluate_examples(evaluation_examples(data, config.class_names, decoding, columns),
                             model)


def evaluate_examples(examples: Examples, model: ModelChoice) -> Metrics:
    """Metrics of the model on examples of its classes."""
    # The raw texts: the model's own standardisation removes HTML breaks (clean_text's job
    # in training), so evaluation needs no tf.data pipeline.
    predictor = load_predictor(model)
    texts = list(examples.texts)
    metrics = Metrics.from_labels(examples.labels, predictor.probabilities(texts).argmax(axis=-1),
                                  classes_of(model))
    if predictor.known_words is not None:
        metrics.without_known_words = predictor.known_words(texts).count(0)
    metrics.left_out = dict(examples.left_out)
    metrics.unread_note = examples.unread_note("score them")
    # training reads its data in canonical order (locate), so its digest is of that order
    metrics.training_data = examples.canonical().digest() == model.meta.get("data_sha256")
    return metrics


@keras_defaults()  # a program's global Keras policy stays out
def predict_texts(texts: list[str], model: ModelChoice | RunDir | str | Path | Any | None = None,
                  checkpoint_dir: str | Path | None = None, *,
                  checkpoint: Checkpoint | str = Checkpoint.best) -> list[dict[str, Any]]:
    """For each text: its predicted label, that label's probability and every class's (and,
    read in NumPy, how many of its words the model knows).
    `model` is what find_model takes or returns (its best.keras by default; a run name is
    looked up in `checkpoint_dir`; None, the latest classify run)."""
    if not isinstance(texts, str) and isinstance(texts, Iterable):
        texts = [str(t) if isinstance(t, np.str_) else t for t in texts]  # once, if a generator
    if isinstance(texts, str) or not isinstance(texts, list):
        raise TextgenError("texts must be a list of strings, e.g. [\"a wonderful film\"]")
    for place, text in enumerate(texts):
        if not isinstance(text, str):
            raise FieldError(f"texts[{place}]", f"must be a string, got {type(text).__name__}")
    model = find_model(model, checkpoint_dir, mode=Mode.classify, checkpoint=checkpoint)
    return predictions(load_predictor(model), texts, classes_of(model))


def predictions(predictor: Predictor, texts: list[str], class_names: list[str]
                ) -> list[dict[str, Any]]:
    """Each text labelled, with how many of its words the model knows where that is counted
    (with none, the label is the model's prior, not a reading of the text). An empty text is
    refused: it has only the prior to give (the Python API and the server alike)."""
    for place, text in enumerate(texts):
        if is_blank(text):
            raise FieldError(f"texts[{place}]", "is empty; give each text some words")
    results = labelled(texts, predictor.probabilities(texts), class_names)
    if predictor.known_words is not None:
        for result, count in zip(results, predictor.known_words(texts), strict=True):
            result["known_words"] = count
    return results


def labelled(texts: list[str], probs: np.ndarray, class_names: list[str]
             ) -> list[dict[str, Any]]:
    """Each text with its label, that label's probability and every class's."""
    out = []
    for text, p in zip(texts, probs, strict=True):
        best = int(np.argmax(p))
        out.append({"text": text, "label": class_names[best],
                    "probability": float(p[best]),
                    "probabilities": {c: float(v) for c, v in zip(class_names, p,
                                                                   strict=True)}})
    return out
