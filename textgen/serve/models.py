"""The runs a server answers for, loaded once when it starts.

Requests name a model by its run name; only these loaded runs can be named, so no request
can make the server read a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgen.errors import TextgenError
from textgen.modes import Mode, mode_object, mode_of
from textgen.runs import SEARCHED_SETTINGS, ModelChoice, find_model, searched
from textgen.serve.engine import GeneratorEngine

if TYPE_CHECKING:
    from textgen.generate.sampling import Sampler


@dataclass
class Served:
    """A loaded run: its name, its mode, and what its mode loaded for serving (`model`)."""

    name: str
    choice: ModelChoice
    mode: Mode
    model: Any  # a Sampler, a ServingClassifier...: the mode's load_for_serving

    def describe(self) -> dict[str, Any]:
        return mode_object(self.mode).describe_served(self.model)


@dataclass
class ServedGenerator(Served):
    """A generator, with the engine that batches its clients' sequences."""

    engine: GeneratorEngine | None = None

    @property
    def sampler(self) -> Sampler:
        return self.model


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
        for mode in Mode:
            try:
                choices.append(find_model(None, checkpoint_dir, mode))
            except TextgenError:
                continue
        if not choices:
            raise TextgenError(f"no trained runs to serve {searched(checkpoint_dir)}; train one "
                               "first (textgen train) or name runs: textgen serve RUN...",
                               SEARCHED_SETTINGS)
    seen: dict[str, ModelChoice] = {}
    for choice in choices:  # before any model loads (and its engine thread starts)
        name, first = choice.run.name, seen.get(choice.run.name)
        if first is not None:
            if first.run.path.resolve() != choice.run.path.resolve():
                raise TextgenError(f"two runs named {name!r} ({first.run.path}, "
                                   f"{choice.run.path}); models are served by their folder's "
                                   "name, so rename one folder")
            shown = [c.file if c.named_file else c.run.path for c in (first, choice)]
            if (first.named_file or choice.named_file) and (
                    shown[0].resolve() != shown[1].resolve()):
                raise TextgenError(f"{shown[0]} and {shown[1]} are models of one run; models "
                                   f"are served by their run's name ({name}), so serve one of "
                                   "them (or a renamed copy of the run folder)")
            raise TextgenError(f"{choice.run.path} is named twice; name each run once")
        seen[name] = choice
    return {choice.run.name: _load(choice) for choice in choices}


def _load(choice: ModelChoice) -> Served:
    """The run's model as its mode loads it for serving: from the run folder, the model file
    the mode serves (the latest epoch for generators, the best for classifiers); a named
    .keras file as it is."""
    mode = mode_of(choice.meta)
    try:
        choice = choice.served()
    except TextgenError as error:
        if "checkpoint" not in error.settings:  # its advice is sample's --checkpoint option
            raise
        raise TextgenError(f"{choice.run.path}: no {choice.run.last.name}; serve its best "
                           f"model by naming the file: textgen serve {choice.run.best}") from None
    loaded = mode.load_for_serving(choice)
    if mode.streams:  # a generator's samples run through one shared batch
        return ServedGenerator(choice.run.name, choice, mode.mode, loaded,
                               GeneratorEngine(loaded))
    return Served(choice.run.name, choice, mode.mode, loaded)
