"""Commands for living with runs: `textgen runs`, `info`, `plot`, `export`."""

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.table import Table

from textgen.cli.app import app, err
from textgen.cli.options import DEFAULT_DIR, CheckpointDir, JsonOption, path_given
from textgen.cli.output import json_text, shown
from textgen.console import table_console
from textgen.errors import FieldError, TextgenError
from textgen.modes import mode_object
from textgen.runs import Checkpoint

PIPED_INFO_WIDTH = 120  # `textgen info | less`: the width its prose folds at
INFO_KEY_WIDTH = 28  # info's key column and the table's borders and padding
NAME_WIDTH = 32  # `textgen runs` keeps run and data names this wide before folding them
SPLIT_FOLDERS = ("train", "test")  # shown with their parent: every data set has a train/


class ExportFormat(StrEnum):
    savedmodel = "savedmodel"


@app.command()
def runs(
    ctx: typer.Context,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """List every run: mode, data, epochs, best validation figure, size, last change."""
    from textgen.inspection import all_runs

    # A folder typed that is not there is a typo more often than an empty list; the default
    # one (or the environment's) is simply not made until the first run.
    typed = ctx.get_parameter_source("checkpoint_dir").name == "COMMANDLINE"
    if typed and not checkpoint_dir.exists():
        raise FieldError("checkpoint_dir", f"{checkpoint_dir}: no such folder; give the folder "
                         "that holds the runs")
    rows, problems = all_runs(checkpoint_dir)
    for problem in problems:
        err.print(f"warning: {shown(problem)}", markup=False)
    if as_json:
        print(json_text(rows))
        return
    if not rows:
        err.print(f"no runs in {checkpoint_dir}/; train one with textgen train")
        return
    table = Table(title=shown(f"runs in {checkpoint_dir}"))
    # Names keep their width (up to NAME_WIDTH) and fold beyond it rather than end in "…": a
    # cut name cannot be typed back; the other columns give way first.
    widths = {"name": max(len(shown(r["name"])) for r in rows),
              "data": max(len(_data_name(r["data"])) for r in rows)}
    for column in ("name", "mode", "data", "epochs", "best", "size", "modified"):
        table.add_column(column, justify="right" if column in ("epochs", "size") else "left",
                         overflow="fold", no_wrap=column not in widths,
                         min_width=min(widths.get(column, 0), NAME_WIDTH) or None)
    for row in rows:
        figure = mode_object(row["mode"]).figure
        best = figure.show(row["best_value"])
        if row["best_metric"] == figure.fallback:  # a run without a validation split
            best += " (training)"
        table.add_row(shown(row["name"]), row["mode"], _data_name(row["data"]),
                      _epochs(row), best, _human_size(row["size_bytes"]),
                      row["modified"][:-3])  # to the minute: the seconds only cost width
    table_console().print(table)


def _epochs(row: dict) -> str:
    """The epochs done, and of how many where the run stopped short (--resume goes on); a
    budgeted run stopped short says its budget is left."""
    done = str(row["epochs_done"])
    if not row["unfinished"]:
        return done
    return f"{done} of {row['epochs_requested']}" if row["epochs_requested"] else (
        f"{done} (budget left)")


def _data_name(data: str | None) -> str:
    """The data's file or folder name; a split's folder with its data set's (aclImdb/train)."""
    if not data:
        return "-"
    path = Path(data)
    return shown(f"{path.parent.name}/{path.name}" if path.name in SPLIT_FOLDERS else path.name)


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@app.command()
def info(
    run_name: Annotated[str | None, typer.Argument(
        metavar="[RUN]", help="Run name under --checkpoint-dir, a run folder, or a run's "
                              ".keras file. Default: the run updated last.",
        show_default=False)] = None,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: hyper-parameters, sizes, vocabulary, history, files, versions."""
    from textgen.inspection import run_info
    from textgen.runs import latest_run, resolve_run

    run = (resolve_run(run_name, checkpoint_dir) if run_name is not None
           else latest_run(checkpoint_dir))
    details = run_info(run)
    if as_json:
        print(json_text(details))
        return
    table = Table(title=shown(f"run {details['name']} ({details['mode']})"), show_header=False)
    # values fold on a terminal, never end in "…" (a cut path cannot be typed back)
    table.add_column()
    table.add_column(overflow="fold")
    training_figure = details.get("best_metric") == mode_object(details["mode"]).figure.fallback
    trainer = run.trainer()  # --resume is refused while another process trains it
    state = (f" (being trained now, pid {trainer})" if trainer is not None
             else " (unfinished: --resume trains on)" if details["unfinished"] else "")
    details["epochs_done"] = _epochs(details) + state
    for key in ("path", "data", "epochs_done", "best_metric", "best_value", "parameters",
                "preset", "vocabulary_size", "text_characters", "longest_line", "longest_word",
                "classes", "vocabulary",
                "textgen_version", "tensorflow_version", "keras_version", "modified"):
        if details.get(key) is not None:
            text = _shown(details[key])
            if key == "best_metric" and training_figure:  # as `runs` says it
                text += " (training: the run has no validation split)"
            table.add_row(key.replace("_", " "), text)
    if details.get("base"):
        table.add_row("base", _base_line(details["base"]))
    table.add_section()
    table.add_row("hyper-parameters", "(as saved in run.json)")
    for key, value in details["hyperparameters"].items():
        table.add_row(f"  {key}", _shown(value))
    if details.get("chosen"):
        table.add_row("  (chosen)", details["chosen"])
    table.add_section()
    table.add_row("training", "(as saved in run.json)")
    for key, value in _training_rows(details["training"]):
        table.add_row(f"  {key}", value)
    table.add_section()
    history = details["history"]
    if history["last"]:
        epochs = f"{history['epochs']} epoch{'s' if history['epochs'] != 1 else ''}"
        table.add_row("history", f"{epochs}; last: " + ", ".join(
            f"{k} {_shown(v)}" for k, v in history["last"].items() if k != "epoch"))
    table.add_row("files", ", ".join(details["files"]))
    # Piped, its prose (the vocabulary, the choices, the history) folds at a readable width,
    # not every row padded to the longest; the paths stay whole, to be typed back.
    base = details.get("base")  # its name or folder (what it added is prose, and folds)
    paths = [details.get("path"), details.get("data"), base and base.get("name"),
             details["hyperparameters"].get("base")]
    widest = max(cell_len(shown(str(path))) for path in paths if path)  # terminal columns
    table_console(max(PIPED_INFO_WIDTH, widest + INFO_KEY_WIDTH)).print(table)


TRAINING_SHOWN = ("batch_size", "steps_per_epoch", "epochs_requested", "val_split", "rng_seed",
                  "patience", "monitor", "strategy", "replicas")


def _training_rows(training: dict) -> list[tuple[str, str]]:
    """How the run trains (what --resume keeps): batch, epochs, split, seed, stopping, the
    devices and the time budget."""
    rows = [(key, _shown(training[key])) for key in TRAINING_SHOWN
            if training.get(key) is not None]
    budget = training.get("budget")
    if isinstance(budget, dict) and budget.get("minutes") is not None:
        spent = budget.get("spent_s") or 0
        spent = _shown(spent / 60) if isinstance(spent, int | float) else _shown(spent)
        rows.append(("max_time", f"{_shown(budget['minutes'])} minutes ({spent} spent)"))
    return rows


def _base_line(base: dict) -> str:
    """The base a generator was fine-tuned from: its name, its weights' hash, what it added."""
    line = str(base.get("name"))
    if base.get("sha256"):
        line += f" (weights sha256 {str(base['sha256'])[:12]}...)"
    if isinstance(base.get("new_chars"), list) and base["new_chars"]:
        line += f"; added {''.join(map(str, base['new_chars']))!r}"
    return shown(line)


def _shown(value: object) -> str:
    """A value for a person: numbers to 4 significant digits (JSON keeps them whole)."""
    if isinstance(value, str):
        try:
            value = float(value) if "." in value or "e" in value else value
        except ValueError:
            return shown(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return shown(value)


@app.command()
def plot(
    run_names: Annotated[list[str], typer.Argument(metavar="RUN...",
                                                   help="One or more runs to draw together.")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", parser=path_given,
        help="PNG file (or - for stdout). Default: the run's history.png; "
        "for several runs, RUN1+RUN2.png in --checkpoint-dir.", show_default=False)] = None,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
) -> None:
    """Draw loss and validation curves of one or several runs into a PNG; prints where."""
    from textgen.runs import is_special_file, resolve_run

    if (output is not None and str(output) != "-" and output.suffix.lower() != ".png"
            and not output.is_symlink() and not is_special_file(output)):  # a pipe is fine
        raise TextgenError(f"-o {output}: plot writes a PNG; give a .png file name (or - for "
                           "stdout)")
    chosen = [resolve_run(name, checkpoint_dir) for name in run_names]
    folders = [run.path.resolve() for run in chosen]
    for run, folder in zip(chosen, folders, strict=True):
        if folders.count(folder) > 1:  # its curves twice, under one legend entry each
            raise TextgenError(f"{run.path} is named twice; name each run once")
    for run in chosen:
        run.read_meta()  # a folder that is not a run (or a damaged one) is said so first
        if run.read_history():
            continue
        if run.history.exists():  # empty, or only its header
            raise TextgenError(f"{run.history}: holds no epochs (emptied or damaged); delete "
                               "it, or train the run for an epoch (the models are unaffected)")
        raise TextgenError(f"{run.path} has no history.csv yet; train it for an epoch first")
    from textgen.plots import plot_runs, render_png

    if str(output) == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(render_png(chosen))
        return
    if output is None and len(chosen) > 1 and not checkpoint_dir.is_dir():
        # the default for several runs lies in --checkpoint-dir: said so, not as an -o
        raise TextgenError(f"the plot of several runs goes into --checkpoint-dir "
                           f"{checkpoint_dir}, which is not a folder; give -o FILE.png")
    target = output or _plot_target(chosen, checkpoint_dir)
    plot_runs(chosen, target)
    print(f"wrote {target}")


def _plot_target(chosen: list, checkpoint_dir: Path) -> Path:
    """One run: its own history.png. Several: a file named after them beside the runs (never
    the current folder, which may be a repository)."""
    if len(chosen) == 1:
        return chosen[0].plot
    for name in ("+".join(run.name for run in chosen),
                 f"{chosen[0].name}+{len(chosen) - 1}-more", f"{len(chosen)}-runs"):
        if len(name.encode(errors="surrogateescape")) <= 200:  # a file name: 255 bytes at most
            break
    return checkpoint_dir / f"{name}.png"


@app.command()
def export(
    run_name: Annotated[str, typer.Argument(
        metavar="RUN", help="Run name under --checkpoint-dir, a run folder, or a .keras file.")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", parser=path_given, help="Folder to write.")],
    export_format: Annotated[ExportFormat, typer.Option(
        "--format", help="What to write: savedmodel, a TensorFlow SavedModel folder (the one "
                         "format so far).")] = ExportFormat.savedmodel,
    checkpoint: Annotated[Checkpoint | None, typer.Option(
        help="Which model of the run: best (lowest validation loss) or last (the latest "
             "epoch). Default: what sample and serve use (last for a generator, best for a "
             "classifier). Ignored when a .keras file is named.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace an earlier export at -o (a folder holding saved_model.pb).")] = False,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
) -> None:
    """Export a run as a TensorFlow SavedModel that serves without textgen installed."""
    from textgen.export import export_chosen

    output, file = export_chosen(run_name, output, checkpoint, overwrite, checkpoint_dir)
    print(f"wrote {output} from {file} (tf.saved_model.load({str(output)!r})"
          ".signatures['serving_default'])")
