"""What a run folder holds, summarised for `textgen runs` and `textgen info` (no TensorFlow)."""

from __future__ import annotations

import contextlib
import io
import time
import zipfile
from pathlib import Path
from typing import Any

from textgen.errors import TextgenError
from textgen.modes import mode_of
from textgen.runs import RunDir, list_runs
from textgen.training.options import BUDGET_EPOCHS


def folder_size(path: Path) -> int:
    """The bytes of the files under `path`; a file a running training replaces or removes
    while it is counted (a temporary, a backup) is left out, not an error."""
    total = 0
    with contextlib.suppress(FileNotFoundError):
        for p in path.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if p.is_file():
                    total += p.stat().st_size
    return total


def run_summary(run: RunDir) -> dict[str, Any]:
    """One row of `textgen runs`."""
    meta = run.read_meta()
    metric, value = mode_of(meta).figure.best_entry(meta)  # the one users compare runs by
    training = meta.get("training", {})
    return {
        "name": run.name,
        "path": str(run.path),
        "mode": meta["mode"],
        "data": meta.get("corpus") or meta.get("data"),
        "epochs_done": training.get("epochs_done", 0),
        "epochs_requested": planned_epochs(training),
        "unfinished": unfinished(training),
        "best_metric": metric,
        "best_value": value,
        "size_bytes": folder_size(run.path),
        "modified": time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.localtime(run.meta.stat().st_mtime)),
    }


def planned_epochs(training: dict) -> int | None:
    """The epochs a run asked for; None where its time budget, not a count, ends it (the
    count it saves then is a formality no run reaches)."""
    requested = training.get("epochs_requested")
    formality = training.get("budget") and isinstance(requested, int) and (
        requested >= BUDGET_EPOCHS)
    return None if formality else requested


def unfinished(training: dict) -> bool:
    """Whether the run stopped short of its plan (interrupted, or a crash): --resume trains
    on. Under --max-time the plan is the budget (its epochs are a formality): short of it
    while minutes are left, as budget_used_up tells."""
    from textgen.training.lifecycle import budget_used_up

    if training.get("stopped_early"):
        return False
    requested = planned_epochs(training)  # None: the budget alone ends the run
    if requested is not None and training.get("epochs_done", 0) >= requested:
        return False  # its epochs done, with or without minutes left
    budget = training.get("budget")
    if isinstance(budget, dict) and budget.get("minutes") is not None:
        return not budget_used_up(budget)
    return requested is not None


def all_runs(checkpoint_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Summaries of every readable run, and one-line problems for the unreadable ones."""
    rows, problems = [], []
    for run in list_runs(checkpoint_dir):
        try:
            rows.append(run_summary(run))
        except TextgenError as exc:
            problems.append(str(exc))
    return rows, problems


def parameter_count(model_file: Path) -> int:
    """Trainable and non-trainable weights of a saved model, read from its HDF5 (no TF)."""
    import h5py

    with zipfile.ZipFile(model_file) as archive:
        data = io.BytesIO(archive.read("model.weights.h5"))
    total = 0
    with h5py.File(data, "r") as h5:
        def visit(name: str, obj: Any) -> None:
            nonlocal total
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
                total += int(obj.size)
        h5["layers"].visititems(visit)
    return total


def _numbers(row: dict[str, str]) -> dict[str, Any]:
    """A history.csv row with its figures as numbers (the file holds text)."""
    def number(value: str) -> Any:
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return {key: number(value) for key, value in row.items()}


def run_info(run: RunDir) -> dict[str, Any]:
    """Everything `textgen info` shows about one run."""
    meta = run.read_meta()
    info: dict[str, Any] = run_summary(run)
    training = meta.get("training", {})
    # the epochs run.json counts: a row written just before a crash cut the commit is not one
    history = run.read_history()[:training.get("epochs_done", 0)]
    info.update({
        "format_version": meta.get("format_version"),
        "hyperparameters": meta.get("config", {}),
        # what textgen chose for options not given, and why (a new run's first note)
        "chosen": (meta.get("chosen") or {}).get("reason"),
        "training": {**{k: v for k, v in training.items()
                        if k not in ("best_logs", "last_logs")},
                     "epochs_requested": planned_epochs(training)},
        "best_logs": training.get("best_logs", {}),
        "last_logs": training.get("last_logs", {}),
        "history": {"epochs": len(history),
                    "first": _numbers(history[0]) if history else None,
                    "last": _numbers(history[-1]) if history else None},
        "files": sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*")
                        if p.is_file() and not p.name.startswith(".")),
        "textgen_version": meta.get("textgen_version"),
        "tensorflow_version": meta.get("tensorflow_version"),
        "keras_version": meta.get("keras_version"),
    })
    model_file = run.best if run.best.exists() else run.last
    try:
        info["parameters"] = parameter_count(model_file) if model_file.exists() else None
    except (OSError, KeyError, zipfile.BadZipFile):
        info["parameters"] = None
    info.update(mode_of(meta).info_rows(run, meta))
    return info
