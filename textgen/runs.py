"""The run folder: what is saved, how it is found again, and safe (atomic) writes.

A run folder `checkpoints/<run-name>/` holds everything needed to use a model again:

    run.json      format version, mode, hyper-parameters, training progress, versions
    vocab.json    the character vocabulary (generate mode)
    best.keras    the model with the lowest validation loss so far
    last.keras    the model after the last finished epoch, with its optimizer state
    history.csv   one row per finished epoch
    backup/       mid-epoch backup for resuming after a crash (removed when training ends)

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgen.errors import RunLockedError, TextgenError

if TYPE_CHECKING:
    import keras

FORMAT_VERSION = 1
MODES = ("generate", "classify")
DEFAULT_CHECKPOINT_DIR = "checkpoints"


def default_checkpoint_dir() -> Path:
    return Path(os.environ.get("TEXTGEN_CHECKPOINT_DIR", DEFAULT_CHECKPOINT_DIR))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def save_model_atomic(model: keras.Model, path: Path) -> None:
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

    def exists(self) -> bool:
        return self.meta.exists()

    def read_meta(self) -> dict:
        """run.json, checked: one-line errors for missing, corrupt or too-new files."""
        if not self.meta.exists():
            raise TextgenError(f"{self.meta}: missing; this folder is not a textgen run")
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TextgenError(f"{self.meta}: cannot be read as JSON ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("mode") not in MODES:
            raise TextgenError(f"{self.meta}: not a textgen run description (no valid 'mode')")
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise TextgenError(
                f"{self.meta}: run format version {version} is newer than this textgen "
                f"understands ({FORMAT_VERSION}); upgrade textgen (pip install -U textgen)"
            )
        return meta

    def write_meta(self, meta: dict) -> None:
        meta = {**meta, "format_version": FORMAT_VERSION, "updated": time.time()}
        write_json_atomic(self.meta, meta)

    def read_history(self) -> list[dict[str, str]]:
        if not self.history.exists():
            return []
        with open(self.history, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

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

    def model_file(self, which: str = "best") -> Path:
        """best.keras (falling back to last.keras) or last.keras, with a clear error if absent."""
        candidates = [self.best, self.last] if which == "best" else [self.last]
        for path in candidates:
            if path.exists():
                return path
        raise TextgenError(
            f"{self.path}: no model file ({', '.join(p.name for p in candidates)}) yet; "
            "train it first (or resume it with textgen train --resume)"
        )


def list_runs(checkpoint_dir: Path) -> list[RunDir]:
    """Run folders under `checkpoint_dir`, most recently updated first."""
    if not checkpoint_dir.is_dir():
        return []
    runs = [RunDir(p) for p in checkpoint_dir.iterdir() if (p / "run.json").is_file()]
    return sorted(runs, key=lambda r: r.meta.stat().st_mtime, reverse=True)


def resolve_run(name: str, checkpoint_dir: Path) -> RunDir:
    """A run named on the command line: a folder path, or a name under checkpoint_dir."""
    for candidate in (Path(name), checkpoint_dir / name):
        if (candidate / "run.json").is_file():
            return RunDir(candidate)
    raise TextgenError(f"no run named {name!r} in {checkpoint_dir}/ (and no such run folder); "
                       "list runs with textgen runs")


def find_run(model: str | None, checkpoint_dir: Path, mode: str) -> RunDir:
    """Resolve --model: a run name under checkpoint_dir, a run folder, or a file inside one.

    With no --model, the most recently trained run of `mode`. The run's mode is checked.
    """
    train_cmd = "textgen train" if mode == "generate" else "textgen classify train"
    if model is None:
        for run in list_runs(checkpoint_dir):
            with contextlib.suppress(TextgenError):
                if run.read_meta()["mode"] == mode:
                    return run
        raise TextgenError(
            f"no trained {mode} model found in {checkpoint_dir}/; train one first "
            f"(e.g. {train_cmd}) or pass --model RUN"
        )
    candidate = Path(model)
    if candidate.suffix == ".keras" and candidate.is_file():
        run = RunDir(candidate.parent)
    elif candidate.is_dir():
        run = RunDir(candidate)
    elif (checkpoint_dir / model).is_dir():
        run = RunDir(checkpoint_dir / model)
    else:
        raise TextgenError(
            f"no run named {model!r} in {checkpoint_dir}/ and no such folder or .keras file; "
            "list runs with ls checkpoints/ or train one with " + train_cmd
        )
    meta = run.read_meta()
    if meta["mode"] != mode:
        other = "textgen sample/evaluate" if meta["mode"] == "generate" else "textgen classify"
        raise TextgenError(
            f"{run.path} is a {meta['mode']} run, not a {mode} run; use it with {other}"
        )
    return run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files left by a killed process (never under a final name) are removed."""
    for tmp in [*folder.glob(".*.tmp*"), *folder.glob("*/.*.tmp*")]:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(run: RunDir) -> Iterator[None]:
    """Only one training process per run folder; a lock left by a dead process is taken over."""
    run.path.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(run.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(run.lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise RunLockedError(
                    f"{run.path} is being trained by another process (pid {pid}); wait for it "
                    "to finish or use another --run-name"
                ) from None
            run.lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        _remove_stale_temporaries(run.path)
        break
    try:
        yield
    finally:
        run.lock.unlink(missing_ok=True)
