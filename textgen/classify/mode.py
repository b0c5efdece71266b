"""Classify mode's object: what shared code (runs, serve, export, info, plots) asks of a
text-classifier run. Imports stay light; what needs TensorFlow loads when asked."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textgen.classify.config import SEQUENCE_ONLY, Arch, ClassifierConfig
from textgen.modes import Figure, Mode
from textgen.runs import Checkpoint, ModelChoice, RunDir

if TYPE_CHECKING:
    from textgen.classify.train import ClassifierRecipe


@dataclass
class ServingClassifier:
    """A loaded classifier for the server: one prediction at a time."""

    class_names: list[str]
    predictor: Any  # textgen.classify.prediction.Predictor (NumPy, or Keras loaded lazily)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        """The same answers as `textgen classify predict --json`."""
        from textgen.classify.prediction import predictions

        with self.lock:
            return predictions(self.predictor, texts, self.class_names)


class ClassifyMode:
    mode = Mode.classify
    train_command = "textgen classify train"
    use_command = "textgen classify"
    train_function = "textgen.train_classifier"
    use_function = "textgen.predict_texts or evaluate_data"
    figure = Figure("val_accuracy", "accuracy", "accuracy")
    config_class = ClassifierConfig
    served_checkpoint = Checkpoint.best
    streams = False
    meta_fields = {"data": (str,), "examples": (dict,), "data_sha256": (str,),
                   "decoding": (dict,), "split": (str,), "columns": (dict,)}

    @property
    def recipe_class(self) -> type[ClassifierRecipe]:
        from textgen.classify.train import ClassifierRecipe

        return ClassifierRecipe

    def info_rows(self, run: RunDir, meta: dict) -> dict[str, Any]:
        config = meta.get("config", {})
        rows = {"vocabulary_size": _vocabulary_size(run) or config.get("max_tokens"),
                "classes": config.get("class_names")}
        if config.get("arch") == Arch.ngrams:  # the sequence model's options are not its own
            rows["hyperparameters"] = {k: v for k, v in config.items() if k not in SEQUENCE_ONLY}
        return rows

    def load_for_serving(self, choice: ModelChoice) -> ServingClassifier:
        from textgen.classify.prediction import classes_of, load_predictor

        return ServingClassifier(classes_of(choice), load_predictor(choice))

    def describe_served(self, loaded: ServingClassifier) -> dict[str, Any]:
        return {"classes": loaded.class_names}

    def export_module(self, choice: ModelChoice) -> tuple[Any, dict[str, Any]]:
        from textgen.classify.export import classifier_module

        return classifier_module(choice)


def _vocabulary_size(run: RunDir) -> int | None:
    """The words (and word pairs) the saved vectorizer holds; --max-tokens is only its cap."""
    from textgen.keras_file import READ_ERRORS, read_keras_file

    model_file = run.best if run.best.exists() else run.last
    try:
        return read_keras_file(model_file).layers["vectorize"].config.get("vocabulary_size")
    except READ_ERRORS:  # a KeyError too: no vectorize layer
        return None


MODE = ClassifyMode()
