"""Classify mode's object: what shared code (runs, serve, export, info, plots) asks of a
text-classifier run. Imports stay light; what needs TensorFlow loads when asked."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textgen.classify.config import ClassifierConfig
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
        """The same labels and probabilities as `textgen classify predict`."""
        from textgen.classify.prediction import labelled

        with self.lock:
            probs = self.predictor.probabilities(texts)
        return labelled(texts, probs, self.class_names)


class ClassifyMode:
    mode = Mode.classify
    train_command = "textgen classify train"
    use_command = "textgen classify"
    figure = Figure("val_accuracy", "accuracy", "accuracy")
    config_class = ClassifierConfig
    served_checkpoint = Checkpoint.best

    @property
    def recipe_class(self) -> type[ClassifierRecipe]:
        from textgen.classify.train import ClassifierRecipe

        return ClassifierRecipe

    def info_rows(self, run: RunDir, meta: dict) -> dict[str, Any]:
        config = meta.get("config", {})
        return {"vocabulary_size": config.get("max_tokens"), "classes": config.get("class_names")}

    def load_for_serving(self, choice: ModelChoice) -> ServingClassifier:
        from textgen.classify.prediction import classes_of, load_predictor

        return ServingClassifier(classes_of(choice), load_predictor(choice))

    def describe_served(self, loaded: ServingClassifier) -> dict[str, Any]:
        return {"classes": loaded.class_names}

    def export_module(self, choice: ModelChoice) -> tuple[Any, dict[str, Any]]:
        from textgen.classify.export import classifier_module

        return classifier_module(choice)


MODE = ClassifyMode()
