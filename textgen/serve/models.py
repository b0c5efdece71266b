"""The runs a server answers for, loaded once when it starts.

Requests name a model by its run name; only these loaded runs can be named, so no request
can make the server read a path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgen.errors import TextgenError
from textgen.generate.sampling import SAMPLE_CHECKPOINT, Sampler, load_sampler
from textgen.runs import Checkpoint, ModelChoice, find_model
from textgen.serve.engine import GeneratorEngine

MODES = ("generate", "classify")


@dataclass
class ServedGenerator:
    name: str
    choice: ModelChoice
    sampler: Sampler
    engine: GeneratorEngine
    mode: str = "generate"

    def describe(self) -> dict[str, Any]:
        return {"vocab_size": len(self.sampler.vocab),
                "default_seed": self.sampler.default_seed}


@dataclass
class ServedClassifier:
    name: str
    choice: ModelChoice
    class_names: list[str]
    predictor: Any  # textgen.classify.prediction.ReviewPredictor (TensorFlow: loaded lazily)
    mode: str = "classify"
    lock: threading.Lock = field(default_factory=threading.Lock)  # one prediction at a time

    def describe(self) -> dict[str, Any]:
        return {"classes": self.class_names}

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        """The same labels and probabilities as `textgen classify predict`."""
        from textgen.classify.prediction import labelled

        with self.lock:
            probs = self.predictor.probabilities(texts)
        return labelled(texts, probs, self.class_names)


Served = ServedGenerator | ServedClassifier


def stop_generators(models: dict[str, Served]) -> None:
    """End every running stream (reason "cancelled") and the generator engines."""
    for model in models.values():
        if isinstance(model, ServedGenerator):
            model.engine.stop()


def training_figures(meta: dict) -> dict[str, Any]:
    """What run.json says about how the run was trained and how well it did."""
    training = meta.get("training", {})
    return {"epochs_done": training.get("epochs_done"), "best_epoch": training.get("best_epoch"),
            "best": training.get("best_logs", {}), "config": meta.get("config", {})}


def load_models(names: list[str], checkpoint_dir: Path) -> dict[str, Served]:
    """The named runs (names under checkpoint_dir, run folders or .keras files), or the latest
    run of each mode; loaded once."""
    choices: list[ModelChoice] = []
    if names:
        choices = [find_model(name, checkpoint_dir) for name in names]
    else:
        for mode in MODES:
            try:
                choices.append(find_model(None, checkpoint_dir, mode))
            except TextgenError:
                continue
        if not choices:
            raise TextgenError(f"no trained runs in {checkpoint_dir}/ to serve; train one first "
                               "(textgen train) or name runs: textgen serve RUN...")
    served: dict[str, Served] = {}
    for given, choice in zip(names or [None] * len(choices), choices, strict=True):
        name = choice.run.name
        if name in served:
            raise TextgenError(f"two models named {name!r}; serve runs with different names")
        served[name] = _load(choice, given)
    return served


def _load(choice: ModelChoice, given: str | None) -> Served:
    is_file = given is not None and given.endswith(".keras")
    if choice.meta["mode"] == "generate":
        which = choice.file if is_file else choice.run.path
        sampler = load_sampler(which, SAMPLE_CHECKPOINT)
        return ServedGenerator(choice.run.name, choice, sampler, GeneratorEngine(sampler))
    from textgen.classify.prediction import ReviewPredictor, load_classifier

    if not is_file:
        choice = ModelChoice(choice.run, choice.run.model_file(Checkpoint.best), choice.meta)
    model, config = load_classifier(choice)
    return ServedClassifier(choice.run.name, choice, list(config.class_names),
                            ReviewPredictor(model))
