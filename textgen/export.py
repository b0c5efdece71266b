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
    check_export_target(output, overwrite)
    tf = import_tensorflow()
    module, signatures = mode_of(model.meta).export_module(model)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:  # written beside the target and renamed: a failure leaves neither half
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if output.exists():  # --overwrite: the old export goes only once the new one is whole
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def check_export_target(output: Path, overwrite: bool) -> None:
    """-o names a folder to create: one-line errors before TensorFlow loads for a missing
    parent, an existing target without --overwrite, and a device or pipe (never replaced)."""
    from textgen.runs import is_special_file

    if is_special_file(output):
        raise TextgenError(f"-o {output}: is a device or pipe; a SavedModel is a folder, give "
                           "a folder name")
    if not output.parent.is_dir():
        raise TextgenError(f"-o {output}: the folder {output.parent} does not exist")
    if output.exists() and not overwrite:
        raise TextgenError(f"{output} already exists; pass --overwrite or choose another -o")
