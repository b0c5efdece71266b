"""`textgen export`: a TensorFlow SavedModel that serves without textgen installed.

The run's mode makes the module (textgen/<mode>/export.py): generate runs export
`generate(seed, length, temperature, rng_seed, top_k, top_p) -> text` (the text `textgen
sample` writes for the same arguments), classify runs `classify(texts) ->
probabilities` (one column per class). Each signature is also the SavedModel's
`serving_default`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any

from textgen.errors import (
    TextgenError,
    as_path,
    check_field,
    choice,
    name_part_that_fits,
    named_fields,
    os_error_message,
)
from textgen.modes import mode_of
from textgen.runs import Checkpoint, ModelChoice, RunDir, find_model
from textgen.tf_setup import import_tensorflow, keras_defaults, random_states_kept

SAVED_MODEL_FILE = "saved_model.pb"  # what makes a folder an earlier export
# the settings the errors name, written as each caller types them (-o's long form, output=)
OUTPUT = named_fields("output")
OVERWRITE = {"overwrite": ("overwrite", True)}
SCRATCH_TOKEN_BYTES = 4  # random bytes in an export's scratch folder's name


def export_model(model: ModelChoice | RunDir | str | Path | Any | None, output: str | Path, *,
                 checkpoint: Checkpoint | str | None = None, overwrite: bool = False,
                 checkpoint_dir: str | Path | None = None) -> Path:
    """`textgen export` from Python: the run's model as a TensorFlow SavedModel folder at
    `output` (which must not exist, or be an earlier export with `overwrite=True`); returns
    its absolute path. `model` is what find_model takes or returns (None: the latest run of
    either mode); `checkpoint` picks the run's file, by default the one its mode samples and
    serves (last for a generator, best for a classifier)."""
    return export_chosen(model, output, checkpoint, overwrite, checkpoint_dir)[0]


def export_chosen(model: ModelChoice | RunDir | str | Path | Any | None, output: str | Path,
                  checkpoint: Checkpoint | str | None, overwrite: bool,
                  checkpoint_dir: str | Path | None) -> tuple[Path, Path]:
    """export_model, also returning the .keras file exported (the CLI names it)."""
    output = as_path(output, "output")
    check_field(isinstance(overwrite, bool), "overwrite",
                f"must be True or False, got {overwrite!r}")
    if checkpoint is not None:
        checkpoint = choice(Checkpoint, checkpoint, "checkpoint")
    check_export_target(output, overwrite)  # before a run is looked for, or TensorFlow loads
    chosen = find_model(model, checkpoint_dir, None, checkpoint or Checkpoint.best)
    if checkpoint is None:
        chosen = chosen.served()
    with random_states_kept():  # the caller's random numbers stay its own
        return export_savedmodel(chosen, output, overwrite), chosen.file


@keras_defaults()  # a program's global Keras policy stays out
def export_savedmodel(model: ModelChoice, output: Path, overwrite: bool = False) -> Path:
    """Write the chosen model of a run as a SavedModel folder at `output`; returns its
    absolute path."""
    output = check_export_target(output, overwrite, model.run.path)
    # A new folder of its own beside the target (never one of the user's, and as the umask
    # makes folders, unlike mkdtemp's 0700), made before TensorFlow loads, so a folder that
    # cannot be written to is said at once. Its name holds this machine's name and this
    # process's id: one whose process is gone (killed mid-save) is removed by the next export
    # to the same name on the same machine.
    token = f"{_host()}.{os.getpid()}-{secrets.token_hex(SCRATCH_TOKEN_BYTES)}"
    reserved = len(f"..{token}.tmp")
    prefix = f".{name_part_that_fits(output.name, reserved)}."
    _remove_stale_scratch(output, prefix)
    tmp = output.with_name(f"{prefix}{token}.tmp")
    try:
        tmp.mkdir()
    except OSError as exc:
        problem = os_error_message(OSError(exc.errno, exc.strerror, output))
        raise TextgenError(f"{{output}} {problem}", OUTPUT) from None
    aside = output.with_name(f"{prefix}{token}.old")  # --overwrite: the old export, set aside
    try:  # written beside the target and renamed: a failure leaves neither half
        tf = import_tensorflow()
        module, signatures = mode_of(model.meta).export_module(model)
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if output.exists():  # swapped by renames: the old export is whole until the new one is
            output.rename(aside)
        tmp.rename(output)
    finally:
        if aside.exists() and not output.exists():  # stopped between the renames: put back
            aside.rename(output)
        if output.exists():
            shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def _remove_stale_scratch(output: Path, prefix: str) -> None:
    """The scratch folders of earlier exports to `output`, made on this machine by a
    process that has ended (a folder of the user's does not have such a name). An old export
    set aside (`.old`) goes only where its swap finished: killed between the two renames, it
    is the only export left, and stays for the user."""
    hex_digits = 2 * SCRATCH_TOKEN_BYTES
    scratch = re.compile(re.escape(prefix) + rf"(?P<host>[\w-]+)\.(?P<pid>\d+)-"
                         rf"[0-9a-f]{{{hex_digits}}}\.(?P<kind>tmp|old)")
    for tmp in output.parent.iterdir():
        found = scratch.fullmatch(tmp.name)
        if (found and found["host"] == _host() and tmp.is_dir() and not tmp.is_symlink()
                and not _running(int(found["pid"]))
                and (found["kind"] == "tmp" or output.exists())):
            shutil.rmtree(tmp, ignore_errors=True)


def _host() -> str:
    """This machine's name as a scratch folder's name holds it."""
    return re.sub(r"[^\w-]", "_", socket.gethostname()) or "host"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: running
        return True
    return True


def _check_not_in_run_folders(output: Path) -> None:
    """An export inside a run's backup/ or tensorboard/ (or named so in a run folder) would be
    removed or written into by the run's training, which owns those folders: as named, and
    where its folders' links lead."""
    from textgen.runs import RunDir

    for path in dict.fromkeys((output, output.parent.resolve() / output.name)):
        for folder in path.parents:
            if not (folder / "run.json").is_file():
                continue
            run = RunDir(folder)
            owned = path.relative_to(folder).parts[0]
            if owned in (run.backup.name, run.tensorboard.name):
                raise TextgenError(f"{{output}} {output}: inside the run folder's {owned}/, "
                                   "which its training removes or rewrites; write the export "
                                   "elsewhere (a new folder beside the run's files is kept)",
                                   OUTPUT)
            break


def check_export_target(output: Path, overwrite: bool, run_folder: Path | None = None
                        ) -> Path:
    """-o names a folder to create: one-line errors before TensorFlow loads for a missing
    parent, a device or pipe, and an existing target without --overwrite. --overwrite
    replaces only an earlier export (a folder holding saved_model.pb) that holds neither the
    current folder nor the run: never a file, a run or a folder of other things. Returns the
    target as an absolute path ('.', '..' and '' get a name)."""
    from textgen.runs import is_special_file

    output = Path(os.path.abspath(output))
    _check_not_in_run_folders(output)
    if is_special_file(output):
        raise TextgenError(f"{{output}} {output}: is a device or pipe; a SavedModel is a "
                           "folder, give a folder name", OUTPUT)
    if not output.parent.is_dir():
        raise TextgenError(f"{{output}} {output}: the folder {output.parent} does not exist; "
                           "create it or write elsewhere", OUTPUT)
    if not output.exists() and not output.is_symlink():
        return output
    if output.is_symlink() or not (output / SAVED_MODEL_FILE).is_file():
        # said first: --overwrite would not replace it, so it is not offered
        raise TextgenError(f"{output} already exists and is not an earlier export (no "
                           f"{SAVED_MODEL_FILE}); {{overwrite}} replaces only those, so choose "
                           "another {output}", {**OUTPUT, **OVERWRITE})
    for inside, what in ((Path.cwd(), "the current folder"), (run_folder, "the run exported")):
        if inside is not None and inside.resolve().is_relative_to(output.resolve()):
            raise TextgenError(f"{output} holds {what}; {{overwrite}} would delete it, so "
                               "choose another {output}", {**OUTPUT, **OVERWRITE})
    if not overwrite:
        raise TextgenError(f"{output} already exists; pass {{overwrite}} or choose another "
                           "{output}", {**OUTPUT, **OVERWRITE})
    return output
