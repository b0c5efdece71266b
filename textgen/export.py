"""`textgen export`: a TensorFlow SavedModel that serves without textgen installed.

The run's mode makes the module (textgen/<mode>/export.py): generate runs export
`generate(seed, length, temperature, rng_seed, top_k, top_p) -> text` (the text `textgen
sample` writes for the same arguments), classify runs `classify(texts) ->
probabilities` (one column per class). Each signature is also the SavedModel's
`serving_default`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textgen.errors import TextgenError
from textgen.modes import mode_of
from textgen.runs import ModelChoice
from textgen.tf_setup import import_tensorflow


def export_savedmodel(model: ModelChoice, output: Path, overwrite: bool = False) -> Path:
    """Write the chosen model of a run as a SavedModel folder at `output`."""
    tf = import_tensorflow()
    if output.exists():
        if not overwrite:
            raise TextgenError(f"{output} already exists; pass --overwrite or choose another -o")
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    module, signatures = mode_of(model.meta).export_module(model)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    tmp.rename(output)
    return output
