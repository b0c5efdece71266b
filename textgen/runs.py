"""The run folder: what is saved, how it is found again, and safe (atomic) writes.

A run folder `checkpoints/<run-name>/` holds everything needed to use a model again:

    run.json      format version, mode, hyper-parameters, training progress, versions
    vocab.json    the character vocabulary (generate mode)
    best.keras    the model with the lowest validation loss so far (no optimizer state: it
                  is for using; resuming starts from last.keras or backup/)
    last.keras    the model after the last finished epoch, with its optimizer state
    history.csv   one row per finished epoch
    backup/       mid-epoch backup for resuming after a crash, and an epoch's models until
                  run.json commits it (removed when training ends)

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgen.errors import (
    FIELD,
    FieldError,
    RunLockedError,
    TextgenError,
    as_path,
    choice,
    name_part_that_fits,
    written_command,
)
from textgen.modes import Mode, is_mode, mode_object, wrong_mode

if TYPE_CHECKING:
    import keras

FORMAT_VERSION = 1
# run.json's fields every mode writes, with their JSON types (None is allowed for each)
META_FIELDS: dict[str, tuple[type, ...]] = {"textgen_version": (str,), "chosen": (dict,),
                                            "updated": (int, float)}
TRAINING_FIELDS: dict[str, tuple[type, ...]] = {
    "rng_seed": (int,), "val_split": (int, float), "strategy": (str,), "replicas": (int,),
    "devices": (str,),
    "epochs_requested": (int,), "patience": (int,), "monitor": (str,), "best_epoch": (int,),
    "best_value": (int, float), "best_logs": (dict,), "last_logs": (dict,),
    "budget": (dict,), "stopped_early": (bool,)}
BUDGET_FIELDS: dict[str, tuple[type, ...]] = {"minutes": (int, float), "spent_s": (int, float)}

DEFAULT_CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_DIR_VARIABLE = "TEXTGEN_CHECKPOINT_DIR"  # the environment's --checkpoint-dir


class Checkpoint(StrEnum):
    """Which model of a run: the lowest validation loss, or the latest finished epoch."""

    best = "best"
    last = "last"


def list_runs_advice() -> str:
    """Where to see the runs there are: a shell command, said as one from Python."""
    return written_command("list runs with textgen runs",
                           "`textgen runs` in a shell lists them")


DAMAGED_MODEL_ADVICE = "use another checkpoint (best.keras / last.keras) or retrain"


def default_checkpoint_dir() -> Path:
    """TEXTGEN_CHECKPOINT_DIR, or checkpoints/ where it is unset or empty (as the CLI reads
    it: an empty one is not the current folder)."""
    return Path(os.environ.get(CHECKPOINT_DIR_VARIABLE) or DEFAULT_CHECKPOINT_DIR)


_SAID_MISSING: set[Path] = set()  # model files model_file said were missing, to say it once
MKSTEMP_RANDOM_BYTES = 8  # the characters tempfile.mkstemp puts between prefix and suffix
RUNS_NAMED = 5  # runs a message names when a folder of runs is given as one
LONGEST_KEPT_SUFFIX = 16  # characters of a file's suffix its temporary keeps (.keras: 6)
# The name atomic_path gives a temporary: `.STEM.` + mkstemp's random characters + `.tmp`
# and the kept suffix (`.last.k3j9x0a1.tmp.keras`). Only such files are textgen's leftovers.
TEMPORARY_NAME = re.compile(
    rf"\..*\.[a-z0-9_]{{{MKSTEMP_RANDOM_BYTES}}}\.tmp(\.[^.]{{1,{LONGEST_KEPT_SUFFIX - 1}}})?")


# What a file browser leaves in a folder it shows: nobody's work, so no bar to --overwrite.
FILE_BROWSER_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def is_temporary(path: Path) -> bool:
    """Whether `path` is a temporary file atomic_path made (left by a killed process)."""
    return (bool(TEMPORARY_NAME.fullmatch(path.name)) and path.is_file()
            and not path.is_symlink())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed over `path`, with the
    permissions any new file gets under the user's umask (mkstemp's are owner-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the suffix kept (Keras saves only to a .keras name), unless it is most of a long name
    suffix = f".tmp{path.suffix}" if len(path.suffix) <= LONGEST_KEPT_SUFFIX else ".tmp"
    stem = name_part_that_fits(path.stem, len(os.fsencode(f"..{suffix}")) + MKSTEMP_RANDOM_BYTES)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix, dir=path.parent)
    except OSError as exc:  # named as the file the user knows, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename not in (None, tmp_name, str(tmp)):  # None: a library's (h5py, Keras)
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def is_special_file(path: Path) -> bool:
    """An existing path that is neither a regular file nor a folder: a device (/dev/null,
    /dev/full), a named pipe, a socket, or a terminal."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def is_a_runs_own_file(path: Path) -> bool:
    """Whether `path` names a file a run folder needs (its run.json, vocabulary, history or
    a model, in the folder or its backup/): never an output's place."""
    folder = path.parent.parent if path.parent.name == "backup" else path.parent
    run = RunDir(folder)
    if not run.meta.is_file():
        return False
    if path.suffix == ".keras" or (path.suffix == ".json" and path.parent == run.backup):
        return True  # a model, or a backup's figures
    return path.absolute() in {p.absolute() for p in (run.meta, run.vocab, run.history,
                                                      run.lock)}


def refuse_a_runs_own_file(path: Path, option: str = "--output") -> None:
    """A one-line error for an output named as a file its run folder needs."""
    if is_a_runs_own_file(path):
        raise TextgenError(f"{option} {path}: a file of the run in {path.parent}; writing "
                           "there would destroy the run, so choose another name")


def write_output(path: Path, data: str | bytes, option: str = "--output") -> None:
    """Write what a command produced to a path the user named.

    A regular file (or a new one) is written atomically; a device, a named pipe or a symbolic
    link (/dev/stdout) is written to directly, never replaced by a file (renaming over
    /dev/null would replace the device node); a folder is refused. Errors name the path.
    """
    if path.is_dir():
        raise TextgenError(f"{option} {path}: is a directory; give a file name")
    refuse_a_runs_own_file(path, option)
    direct = path.is_symlink() or is_special_file(path)
    if not direct and not path.parent.is_dir():
        raise TextgenError(f"{option} {path}: the folder {path.parent} does not exist; "
                           "create it or write elsewhere")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if direct:
        try:
            with open(path, "wb") as f:  # the device or pipe itself, as `> /dev/null` would
                f.write(raw)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)


def json_dumps(data: Any, ascii_only: bool = False, **options: Any) -> str:
    """JSON with characters as they are (unless `ascii_only`), except where a string holds a
    lone surrogate, which UTF-8 cannot write: a path's bytes that are not UTF-8, as Python
    reads them. Then every character is escaped, and the JSON reads back as the same path."""
    text = json.dumps(data, ensure_ascii=ascii_only, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, ensure_ascii=True, **options)
    return text


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json_dumps(data, indent=2) + "\n")


def save_model_atomic(model: keras.Model, path: Path, optimizer: bool = True) -> None:
    """`model` into `path`; without `optimizer`, its layers and weights only (Adam's state
    is twice the weights, and only a resumed run needs it)."""
    if not optimizer:
        import keras

        model = keras.Model(model.inputs, model.outputs, name=model.name)
    with atomic_path(path) as tmp:
        model.save(tmp)


@dataclass(frozen=True)
class RunDir:
    """Paths of the files in one run folder."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def meta(self) -> Path:
        return self.path / "run.json"

    @property
    def vocab(self) -> Path:
        return self.path / "vocab.json"

    @property
    def best(self) -> Path:
        return self.path / "best.keras"

    @property
    def last(self) -> Path:
        return self.path / "last.keras"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def backup(self) -> Path:
        return self.path / "backup"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    @property
    def plot(self) -> Path:
        return self.path / "history.png"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def others(self) -> list[Path]:
        """What the folder holds besides the run's own files: the user's (a sample written
        there, an export, a .git). Temporary files (is_temporary) are the run's: leftovers
        of interrupted writes."""
        own = {p.name for p in (self.meta, self.vocab, self.best, self.last, self.history,
                                self.backup, self.lock, self.plot, self.tensorboard)}
        return sorted(p for p in self.path.iterdir()
                      if p.name not in own | FILE_BROWSER_LITTER and not is_temporary(p))

    def exists(self) -> bool:
        return self.meta.exists()

    def read_meta(self) -> dict:
        """run.json, checked: one-line errors for missing, corrupt or too-new files."""
        if not self.meta.exists():
            held = [run.name for run in list_runs(self.path)] if self.path.is_dir() else []
            if held:  # --model checkpoints: the folder above the runs
                shown = ", ".join(held[:RUNS_NAMED]) + (", ..." if len(held) > RUNS_NAMED else "")
                raise TextgenError(f"{self.path}: a folder of runs ({shown}), not a run; give "
                                   f"one of them, e.g. {self.path / held[0]}")
            raise TextgenError(f"{self.meta}: missing; this folder is not a textgen run")
        check_regular_file(self.meta)
        damaged = "the file was edited or damaged: train the run again"
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TextgenError(f"{self.meta}: cannot be read as JSON ({exc}); {damaged}"
                               ) from exc
        if not isinstance(meta, dict) or not is_mode(meta.get("mode")):
            raise TextgenError(f"{self.meta}: not a textgen run description (no valid 'mode')")
        if not isinstance(meta.get("config"), dict):
            raise TextgenError(f"{self.meta}: 'config' is missing or not an object; {damaged}")
        training = meta.get("training")
        if not isinstance(training, dict):
            raise TextgenError(f"{self.meta}: 'training' is missing or not an object; {damaged}")
        for key in ("epochs_done", "steps_per_epoch", "batch_size"):
            value = training.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TextgenError(f"{self.meta}: training.{key} must be a whole number >= 0, "
                                   f"got {value!r}; {damaged}")
        version = meta.get("format_version")
        if not _whole(version) or version < 1:
            raise TextgenError(f"{self.meta}: format_version must be a whole number >= 1, got "
                               f"{version!r}; {damaged}")
        if version > FORMAT_VERSION:
            raise TextgenError(
                f"{self.meta}: run format version {version} is newer than this textgen "
                f"understands ({FORMAT_VERSION}); upgrade textgen (pip install -U textgen)"
            )
        wrong = (_wrong_types(meta, {**META_FIELDS, **mode_object(meta["mode"]).meta_fields},
                              "") or _wrong_types(training, TRAINING_FIELDS, "training.")
                 or _wrong_types(training.get("budget") or {}, BUDGET_FIELDS,
                                 "training.budget."))
        for key in ("best_logs", "last_logs"):
            logs = training.get(key) or {}
            wrong = wrong or next((f"training.{key}.{name} is {json.dumps(value)}, not a number"
                                   for name, value in logs.items() if not _number(value)), None)
        wrong = wrong or _wrong_values(meta, training)
        if wrong:
            raise TextgenError(f"{self.meta}: {wrong}; {damaged}")
        return meta

    def write_meta(self, meta: dict) -> None:
        meta = {**meta, "format_version": FORMAT_VERSION, "updated": time.time()}
        write_json_atomic(self.meta, meta)

    def read_history(self) -> list[dict[str, str]]:
        """history.csv's rows (one per epoch, every figure a number or empty); a damaged
        file is a one-line error (only the curves depend on it, never the models)."""
        if not self.history.exists():
            return []
        check_regular_file(self.history)
        try:
            with open(self.history, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise TextgenError(f"{self.history}: cannot be read ({exc}); delete it (the "
                               "models are unaffected; only the curves are lost)") from None
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            epoch = row.get("epoch")
            problem = next(("more values than columns" if name is None else
                            f"no value for {name}" if value is None else f"{name} is {value!r}"
                            for name, value in row.items()
                            if name is None or value is None or not _number_or_empty(value)),
                           None) or (None if epoch and epoch.isdigit() and int(epoch) >= 1
                                     else f"epoch is {epoch!r}, not a whole number >= 1")
            if problem is not None:
                raise TextgenError(f"{self.history}: line {number} is damaged ({problem}); "
                                   "mend or delete that line (the models are unaffected)")
        return rows

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        fields = list(rows[0].keys())
        for row in rows[1:]:
            fields.extend(k for k in row if k not in fields)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.history, out.getvalue())

    def commit_file(self, epochs_done: int, which: str) -> Path:
        """Where an epoch's model ("last" or "best") waits for run.json to commit it."""
        return self.backup / f"commit-{epochs_done:06d}-{which}.keras"

    def committed(self, path: Path) -> Path:
        """best.keras or last.keras as run.json has them: an epoch's model still waiting
        under backup/ once run.json counts the epoch (a crash cut its renaming short)."""
        try:
            done = self.read_meta().get("training", {}).get("epochs_done", 0)
        except TextgenError:
            return path
        waiting = self.commit_file(done, path.stem)
        return waiting if waiting.exists() else path

    def model_file(self, which: Checkpoint | str = Checkpoint.best) -> Path:
        """best.keras (falling back to last.keras) or last.keras, with a clear error if absent."""
        which = choice(Checkpoint, which, "checkpoint")
        candidates = [self.committed(p) for p in (
            [self.best, self.last] if which == Checkpoint.best else [self.last])]
        for path in candidates:
            if path.exists():
                missing = candidates[0].resolve()
                # said (once a process), so a deleted best.keras is not a surprise
                if path != candidates[0] and missing not in _SAID_MISSING:
                    _SAID_MISSING.add(missing)
                    print(f"note: {candidates[0]} is missing; using {path.name}",
                          file=sys.stderr)
                return path
        if self.committed(self.best).exists():  # last.keras deleted: the best one is there
            raise TextgenError(f"{self.path}: no {self.last.name}; use its best model "
                               "({checkpoint})", {"checkpoint": ("checkpoint", "best")})
        trainer = self.trainer()
        if trainer is not None:  # --resume would be refused as locked: wait instead
            raise TextgenError(
                f"{self.path}: no model file ({', '.join(p.name for p in candidates)}) yet; "
                f"it is being trained (pid {trainer}): its first model is saved when its "
                "first epoch ends, so wait for that")
        raise TextgenError(
            f"{self.path}: no model file ({', '.join(p.name for p in candidates)}) yet; "
            "train it first (or resume its training: {resume})", {"resume": ("resume", True)}
        )

    def trainer(self) -> str | None:
        """The pid of the process training this run now (it holds the lock: see run_lock),
        or None."""
        import fcntl

        try:
            fd = os.open(self.lock, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        except OSError:
            return None
        finally:
            os.close(fd)
        return None


def list_runs(checkpoint_dir: Path) -> list[RunDir]:
    """Run folders under `checkpoint_dir`, most recently updated first (none where it does
    not exist yet; a file there is an error)."""
    if checkpoint_dir.exists() and not checkpoint_dir.is_dir():
        raise FieldError("checkpoint_dir", f"{checkpoint_dir}: not a directory; give the "
                         "folder that holds the runs")
    if not checkpoint_dir.is_dir():
        return []
    # a run.json that cannot be read (a folder of that name, too) is listed: reading it says why
    runs = [RunDir(p) for p in checkpoint_dir.iterdir() if (p / "run.json").exists()]
    return sorted(runs, key=lambda r: r.meta.stat().st_mtime, reverse=True)


SEARCHED_SETTINGS = {"checkpoint_dir": ("checkpoint_dir", FIELD)}  # what `searched` names


def searched(checkpoint_dir: Path) -> str:
    """Where runs were looked for, in a message: `in checkpoints/`, and where a folder given
    is not there, that (a mistyped --checkpoint-dir read as an empty one; no runs yet, the
    default is not made)."""
    if checkpoint_dir.is_dir() or checkpoint_dir == Path(DEFAULT_CHECKPOINT_DIR):
        return f"in {checkpoint_dir}/"
    # the environment's, where it set this one (the option was then not given)
    given = (CHECKPOINT_DIR_VARIABLE if os.environ.get(CHECKPOINT_DIR_VARIABLE)
             and Path(os.environ[CHECKPOINT_DIR_VARIABLE]) == checkpoint_dir
             else "{checkpoint_dir}")
    return f"in {checkpoint_dir}/ (no such folder: check {given})"


def latest_run(checkpoint_dir: Path) -> RunDir:
    """The run updated last under `checkpoint_dir`, of either mode, finished or not."""
    runs = list_runs(checkpoint_dir)
    if not runs:
        first = mode_object(next(iter(Mode)))
        raise TextgenError(f"no runs in {checkpoint_dir}/; train one first (e.g. "
                           f"{written_command(first.train_command, first.train_function)}) or "
                           "name a RUN")
    return runs[0]


def check_mode(run: RunDir, meta: dict, mode: Mode | str) -> None:
    """The check that a run belongs to the mode a command serves."""
    if wrong_mode(meta["mode"], mode):
        its_mode = mode_object(meta["mode"])
        raise TextgenError(f"{run.path} is a {meta['mode']} run, not a {mode} run; use it with "
                           f"{written_command(its_mode.use_command, its_mode.use_function)}")


def _located(name: str | os.PathLike, checkpoint_dir: Path) -> tuple[RunDir, Path | None] | None:
    """The run a name means, and the `.keras` file it names if it names one: the path as
    given first, then the name under checkpoint_dir (a run name wins over a folder of that
    name that is not a run); None where neither is a run or a run's `.keras` file."""
    for candidate in (Path(os.fspath(name)), checkpoint_dir / name):
        if candidate.suffix == ".keras" and candidate.is_file():
            if not (candidate.parent / "run.json").is_file():
                raise TextgenError(f"{name}: a .keras file outside its run folder; textgen "
                                   "reads the run.json (and a generator's vocab.json) beside "
                                   "it: give the run folder it came from, or copy the whole "
                                   "folder")
            return RunDir(candidate.parent), candidate
        if (candidate / "run.json").is_file():
            return RunDir(candidate), None
    return None


def resolve_run(name: str, checkpoint_dir: Path) -> RunDir:
    """A run named on the command line: a folder path, a name under checkpoint_dir, or a
    `.keras` file inside a run (its run); as find_model reads --model."""
    return _run_named(name, checkpoint_dir)[0]


def _run_named(name: str | os.PathLike, checkpoint_dir: Path) -> tuple[RunDir, Path | None]:
    """The run a name means and the `.keras` file it names, if it names one; a folder that
    is not a run is returned as one (reading it says so); anything else is an error."""
    if not os.fspath(name).strip():  # an unset $RUN: "." would be read as the run
        raise TextgenError(f"an empty name is not a run; give a run's name or folder "
                           f"({list_runs_advice()})")
    located = _located(name, checkpoint_dir)
    if located is not None:
        return located
    for folder in (Path(os.fspath(name)), checkpoint_dir / name):
        if folder.is_dir():
            return RunDir(folder), None
    if Path(os.fspath(name)).exists():
        raise TextgenError(f"{name}: neither a run folder nor a .keras file; give a run name, "
                           f"a run folder or a run's .keras file ({list_runs_advice()})")
    raise _no_such_run(name, checkpoint_dir)


def _no_such_run(name: str | os.PathLike, checkpoint_dir: Path) -> TextgenError:
    """A run that is not there: a path named as one (a user gave a folder), else a name
    under the checkpoint folder."""
    if os.sep in str(name) or Path(name).is_absolute():
        return TextgenError(f"{name}: no such run folder or .keras file; give a run's folder "
                            f"or its name under {checkpoint_dir}/ ({list_runs_advice()})")
    return TextgenError(f"no run named {str(name)!r} {searched(checkpoint_dir)} (and no such "
                        f"run folder); {list_runs_advice()}", SEARCHED_SETTINGS)


def check_regular_file(path: Path) -> None:
    """One of a run's own files that is a pipe or a device (put there by hand) would be read
    without end: refused in one line (a folder is the OS's "Is a directory")."""
    if is_special_file(path):
        raise TextgenError(f"{path}: not a regular file; a run's files are textgen's own: "
                           "put the file back, or train the run again")


@dataclass(frozen=True)
class ModelChoice:
    """A run and the model file of it that a command uses."""

    run: RunDir
    file: Path
    meta: dict
    named_file: bool = False  # the user named this .keras file (not a run)

    def served(self) -> ModelChoice:
        """The model file its mode samples, serves and exports by default (the latest epoch
        for a generator, the best for a classifier); where the user named a .keras file,
        that file (a run folder whose name ends in .keras is a run)."""
        if self.named_file:
            return self
        which = mode_object(self.meta["mode"]).served_checkpoint
        return ModelChoice(self.run, self.run.model_file(which), self.meta)


def find_model(model: ModelChoice | RunDir | str | Path | Any | None,
               checkpoint_dir: str | Path | None = None, mode: Mode | str | None = None,
               checkpoint: Checkpoint | str = Checkpoint.best) -> ModelChoice:
    """The model file a command uses: a run name under checkpoint_dir, a run folder (its
    `checkpoint` file, best or last), or a `.keras` file inside one (that file, whatever
    `checkpoint` says). The Python API may also
    pass what it holds: a ModelChoice (kept: its file, as a .keras file's, whatever
    `checkpoint` says), a RunDir or a training result (its run).

    With no --model, the most recently trained run of `mode`. The run's mode is checked
    (`mode` None: a run of either mode).
    """
    if mode is not None:
        mode = choice(Mode, mode, "mode")
    which = choice(Checkpoint, checkpoint, "checkpoint")  # checked, whatever the model
    if isinstance(model, ModelChoice):
        if mode is not None:
            check_mode(model.run, model.meta, mode)
        return model
    if isinstance(getattr(model, "run", None), RunDir):  # a train_* result: its run
        model = model.run
    if isinstance(model, RunDir):
        model = model.path
    if model is not None and not isinstance(model, str | os.PathLike):
        raise FieldError("model", f"must be a run name, a run folder, a .keras file or what "
                         f"find_model returns, got {type(model).__name__}")
    checkpoint_dir = (as_path(checkpoint_dir, "checkpoint_dir") if checkpoint_dir is not None
                      else default_checkpoint_dir())
    if model is None:
        for run in list_runs(checkpoint_dir):
            with contextlib.suppress(TextgenError):
                meta = run.read_meta()
                if not wrong_mode(meta["mode"], mode):
                    return ModelChoice(run, run.model_file(which), meta)
        kind = f"{mode} model" if mode else "run"
        wanted = mode_object(mode or next(iter(Mode)))
        example = written_command(wanted.train_command, wanted.train_function)
        raise TextgenError(f"no trained {kind} found {searched(checkpoint_dir)}; train one "
                           f"first (e.g. {example}) or pass {{model}}",
                           {"model": ("model", "RUN"), **SEARCHED_SETTINGS})
    run, model_file = _run_named(model, checkpoint_dir)
    meta = run.read_meta()
    if mode is not None:
        check_mode(run, meta, mode)
    return ModelChoice(run, model_file or run.model_file(which), meta,
                       named_file=model_file is not None)


def load_keras_model(path: Path, compile: bool = False) -> keras.Model:
    """Load a `.keras` file with safe_mode=True; one-line errors for broken or unsafe files.

    A model with custom layers loads once its mode's module has registered them.
    """
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    import keras

    if not path.is_file():
        raise TextgenError(f"{path}: missing model file; train or resume the run to write it")
    if not zipfile.is_zipfile(path):
        raise TextgenError(f"{path}: not a valid .keras file (truncated or corrupted); "
                           f"{DAMAGED_MODEL_ADVICE}")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():  # Keras' words for it
            from textgen.keras_file import refused_code

            raise refused_code(path) from exc
        raise TextgenError(f"{path}: cannot be loaded as a Keras model ({str(exc)[:200]}); "
                           f"{DAMAGED_MODEL_ADVICE}") from exc
    except Exception as exc:  # corrupted archives surface as many exception types
        raise TextgenError(f"{path}: cannot be loaded as a Keras model "
                           f"({type(exc).__name__}: {str(exc)[:160]}); {DAMAGED_MODEL_ADVICE}"
                           ) from exc


def _remove_stale_temporaries(run: RunDir) -> None:
    """Temporary files left by a killed process (never under a final name) are removed: in
    the folders textgen writes to only, never through a link (a folder the user linked into
    the run is theirs)."""
    for folder in (run.path, run.backup):  # the run folder itself may be a link to a disk
        if folder.is_dir() and (folder == run.path or not folder.is_symlink()):
            for tmp in folder.iterdir():
                if is_temporary(tmp):
                    tmp.unlink(missing_ok=True)


LOCK_TRIES = 5  # 20 ms apart: RunDir.trainer's shared probe holds the lock for microseconds


def _lock_soon(fd: int) -> None:
    """flock(fd) exclusively, trying LOCK_TRIES times before BlockingIOError: a probe from
    `sample` at that moment is no trainer to refuse for."""
    import fcntl

    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == LOCK_TRIES - 1:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def run_lock(run: RunDir) -> Iterator[None]:
    """Only one training process per run folder. The lock is an advisory lock (flock) on
    `.lock`, which holds the owner's pid for the message: the system releases it when its
    process ends, however it ends, so a lock is never stale and a reused pid blocks nobody."""

    run.path.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(run.lock, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            _lock_soon(fd)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(f"{run.path} is being trained by another process (pid "
                                 f"{owner}); wait for it to finish or use another {{run_name}}",
                                 {"run_name": ("run_name", FIELD)}) from None
        # The holder before us may have removed the file as it let go: lock the one there now.
        try:
            same = os.fstat(fd).st_ino == os.stat(run.lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _remove_stale_temporaries(run)
        yield
    finally:
        # while still held: no one locks a removed file; a folder made read-only meanwhile
        # keeps it (the error that ended the run is the one to show)
        with contextlib.suppress(OSError):
            run.lock.unlink(missing_ok=True)
        os.close(fd)


def _wrong_values(meta: dict, training: dict) -> str | None:
    """The first value of the right JSON type that no run writes (a hand edit), said as a
    problem: found here, it is not a crash later, nor blamed on an option the user never
    gave (a val_split of 2 read as `--val-split must be in [0, 1)`)."""
    from textgen.reading import Decoding
    from textgen.training.distribute import parse_devices

    budget = training.get("budget")
    chosen = meta.get("chosen")
    decoding = meta.get("decoding")
    text_runs = meta.get("text_runs")
    if training["batch_size"] < 1:
        return f"training.batch_size is {training['batch_size']}, not a whole number >= 1"
    if training.get("val_split") is not None and not 0 <= training["val_split"] < 1:
        return f"training.val_split is {json.dumps(training['val_split'])}, not in [0, 1)"
    if isinstance(budget, dict) and not (_number(budget.get("minutes"))
                                         and budget["minutes"] > 0):
        return (f"training.budget.minutes is {json.dumps(budget.get('minutes'))}, not a number "
                "of minutes > 0")
    if isinstance(chosen, dict) and not isinstance(chosen.get("reason", ""), str | None):
        return f"chosen.reason is {json.dumps(chosen['reason'])}, not a string"
    if isinstance(text_runs, dict):
        bad = next((c for c, n in text_runs.items() if not (_whole(n) and n >= 0)), None)
        if bad is not None:
            return (f"text_runs[{json.dumps(bad)}] is {json.dumps(text_runs[bad])}, not a whole "
                    "number >= 0")
    if meta.get("default_seed") == "":
        return "default_seed is empty"
    if training.get("replicas") is not None and training["replicas"] < 1:
        return f"training.replicas is {training['replicas']}, not a whole number >= 1"
    if training.get("devices") is not None:
        try:
            parse_devices(training["devices"], on_this_machine=False)
        except TextgenError:
            return (f"training.devices is {json.dumps(training['devices'])}, not a count of "
                    "devices or their names")
    if isinstance(decoding, dict):
        try:
            Decoding.from_dict(decoding)
        except (TextgenError, TypeError):
            return f"decoding is {json.dumps(decoding)}, not an encoding and its error handling"
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrong_types(fields: dict, types: dict[str, tuple[type, ...]], where: str) -> str | None:
    """The first of `types`' fields in `fields` whose value has another JSON type (a bool is
    no number), said as a problem; None if all are as written."""
    for key, kinds in types.items():
        value = fields.get(key)
        if value is None:
            continue
        numeric = any(kind in (int, float) for kind in kinds)
        if not isinstance(value, kinds) or (numeric and isinstance(value, bool)):
            names = " or ".join(_JSON_NAMES[kind] for kind in kinds)
            return f"{where}{key} is {json.dumps(value)}, not {names}"  # as the file has it
    return None


_JSON_NAMES = {str: "a string", int: "a whole number", float: "a number", dict: "an object",
               bool: "true or false", list: "a list"}


def _number_or_empty(value: str) -> bool:
    if not value:
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True
