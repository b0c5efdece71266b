"""Commands for living with runs: `textgen runs`, `info`, `plot`, `export`."""

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from textgen.cli.app import app, err
from textgen.cli.options import DEFAULT_DIR, CheckpointDir, CheckpointOption, JsonOption
from textgen.errors import TextgenError
from textgen.modes import mode_object
from textgen.runs import Checkpoint


class ExportFormat(StrEnum):
    savedmodel = "savedmodel"


@app.command()
def runs(
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """List every run: mode, data, epochs, best validation figure, size, last change."""
    from textgen.inspection import all_runs

    rows, problems = all_runs(checkpoint_dir)
    for problem in problems:
        err.print(f"warning: {problem}", markup=False)
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        err.print(f"no runs in {checkpoint_dir}/; train one with textgen train")
        return
    table = Table(title=f"runs in {checkpoint_dir}")
    for column in ("name", "mode", "data", "epochs", "best", "size", "modified"):
        table.add_column(column, justify="right" if column in ("epochs", "size") else "left")
    for row in rows:
        best = mode_object(row["mode"]).figure.show(row["best_value"])
        table.add_row(row["name"], row["mode"], Path(row["data"] or "-").name,
                      str(row["epochs_done"]), best, _human_size(row["size_bytes"]),
                      row["modified"])
    Console().print(table)


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@app.command()
def info(
    run_name: Annotated[str, typer.Argument(metavar="RUN",
                                            help="Run name under --checkpoint-dir or a folder.")],
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: hyper-parameters, sizes, vocabulary, history, files, versions."""
    from textgen.inspection import run_info
    from textgen.runs import resolve_run

    details = run_info(resolve_run(run_name, checkpoint_dir))
    if as_json:
        print(json.dumps(details, ensure_ascii=False))
        return
    table = Table(title=f"run {details['name']} ({details['mode']})", show_header=False)
    for key in ("path", "data", "epochs_done", "best_metric", "best_value", "parameters",
                "vocabulary_size", "classes", "vocabulary", "textgen_version",
                "tensorflow_version", "keras_version", "modified"):
        if details.get(key) is not None:
            table.add_row(key.replace("_", " "), str(details[key]))
    for key, value in details["hyperparameters"].items():
        table.add_row(f"  {key}", str(value))
    history = details["history"]
    if history["last"]:
        table.add_row("history", f"{history['epochs']} epochs; last: " + ", ".join(
            f"{k} {v}" for k, v in history["last"].items() if k != "epoch"))
    table.add_row("files", ", ".join(details["files"]))
    Console().print(table)


@app.command()
def plot(
    run_names: Annotated[list[str], typer.Argument(metavar="RUN...",
                                                   help="One or more runs to draw together.")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="PNG file. Default: the run's history.png, or runs.png.")] = None,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
) -> None:
    """Draw loss and validation curves of one or several runs into a PNG."""
    from textgen.plots import plot_runs
    from textgen.runs import resolve_run

    chosen = [resolve_run(name, checkpoint_dir) for name in run_names]
    if not all(run.read_history() for run in chosen):
        raise TextgenError("a run has no history.csv yet; train it for an epoch first")
    target = output or (chosen[0].path / "history.png" if len(chosen) == 1 else Path("runs.png"))
    plot_runs(chosen, target)
    err.print(f"wrote {target}")


@app.command()
def export(
    run_name: Annotated[str, typer.Argument(
        metavar="RUN", help="Run name under --checkpoint-dir, a run folder, or a .keras file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")],
    export_format: Annotated[ExportFormat, typer.Option("--format", help="savedmodel")
                             ] = ExportFormat.savedmodel,
    checkpoint: CheckpointOption = Checkpoint.best,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
) -> None:
    """Export a run as a TensorFlow SavedModel that serves without textgen installed."""
    from textgen.runs import find_model

    chosen = find_model(run_name, checkpoint_dir, None, checkpoint)
    from textgen.export import export_savedmodel

    export_savedmodel(chosen, output, overwrite)
    err.print(f"wrote {output} (tf.saved_model.load({str(output)!r}).signatures"
              "['serving_default'])", markup=False)
