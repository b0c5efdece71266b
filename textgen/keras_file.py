"""Reading a saved `.keras` file without Keras: its config, each layer's weights, its assets.

A `.keras` file is a zip of config.json (the layers, in order), model.weights.h5 (one HDF5
group per layer, named after the layer's class: LSTM -> lstm, a second Dense -> dense_1) and
assets/ (such as a TextVectorization's vocabulary). Reading it runs no code from the file and
imports no TensorFlow, so the NumPy paths (sampling, classifying a few texts) start at once.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgen.errors import TextgenError

# What a file that is not a readable .keras archive raises while being read.
READ_ERRORS = (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError)
# Layers whose saved form is Python code: refused, as Keras' safe_mode refuses them, though
# this reader would never run it (a model that needs it cannot be what textgen trained).
CODE_LAYERS = frozenset({"Lambda"})


def refused_code(path: Path) -> TextgenError:
    """The one error for a model file that holds code, from this reader and from Keras."""
    return TextgenError(f"{path}: refused to load: it contains arbitrary Python code (a Lambda "
                        "layer); textgen only loads safe model files")


def _snake_case(name: str) -> str:
    """Keras' HDF5 group name for a layer class: LSTM -> lstm, InputLayer -> input_layer."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


@dataclass
class SavedLayer:
    """One layer of a saved model: its class, config, HDF5 group name and weight arrays.

    `arrays` maps a path inside the layer ("" for its own variables, "cell" for a recurrent
    layer's, "forward_layer/cell" inside a Bidirectional) to its arrays in creation order.
    """

    class_name: str
    config: dict[str, Any]
    group: str
    arrays: dict[str, list[np.ndarray]]

    def weights(self) -> list[np.ndarray]:
        """Every array of the layer, in `layer.get_weights()` order (one path per layer)."""
        return [a for path in sorted(self.arrays) for a in self.arrays[path]]


@dataclass
class KerasFile:
    """A `.keras` file's layers by name (in the model's order) and its asset files."""

    layers: dict[str, SavedLayer]
    assets: dict[str, bytes]

    def layer(self, name: str) -> SavedLayer:
        """The layer called `name`; KeyError when the model has none."""
        return self.layers[name]

    def asset(self, layer: SavedLayer, name: str) -> bytes:
        """A file a layer saved beside its weights (e.g. vocabulary.txt)."""
        return self.assets[f"assets/layers/{layer.group}/{name}"]


def _collect(group: Any, prefix: str, out: dict[str, list[np.ndarray]]) -> None:
    """Every `vars` group below `group`, keyed by its path without the trailing /vars."""
    for key in group:
        if key == "vars":
            variables = group["vars"]
            if len(variables):
                out[prefix] = [np.array(variables[str(i)]) for i in range(len(variables))]
        else:
            _collect(group[key], f"{prefix}/{key}" if prefix else key, out)


def read_keras_file(path: Path) -> KerasFile:
    """The layers and assets of a `.keras` file; raises one of READ_ERRORS when it is not one
    this reader understands, and refused_code's TextgenError for a layer of code."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights_h5 = io.BytesIO(archive.read("model.weights.h5"))
        assets = {name: archive.read(name) for name in archive.namelist()
                  if name.startswith("assets/")}
    if any(layer.get("class_name") in CODE_LAYERS for layer in config["config"]["layers"]):
        raise refused_code(path)
    seen: dict[str, int] = {}
    layers: dict[str, SavedLayer] = {}
    with h5py.File(weights_h5, "r") as h5:
        for layer in config["config"]["layers"]:
            base = _snake_case(layer["class_name"])
            group = base if base not in seen else f"{base}_{seen[base]}"
            if group not in h5["layers"]:
                continue  # an operation (such as a mask's NotEqual), not a saved layer
            seen[base] = seen.get(base, 0) + 1
            arrays: dict[str, list[np.ndarray]] = {}
            _collect(h5["layers"][group], "", arrays)
            layers[layer["config"]["name"]] = SavedLayer(layer["class_name"], layer["config"],
                                                         group, arrays)
    return KerasFile(layers, assets)
