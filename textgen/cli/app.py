"""The Typer application, its global options, and the output every command group shares."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from textgen.cli.output import shown
from textgen.console import stderr_console, stdout_console
from textgen.errors import TextgenError, written_for_cli
from textgen.modes import Figure

if TYPE_CHECKING:
    from textgen.runs import ModelChoice
    from textgen.training.lifecycle import TrainResult

app = typer.Typer(
    help="Character-level text generation (recurrent networks fine-tuned from a pretrained "
         "base) and text classification (LSTM or n-grams), with Keras; served over HTTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # paragraphs of docstrings reflow to the terminal
)
err = stderr_console()
out = stdout_console(highlight=False, soft_wrap=True)  # results: what was made and where


@contextlib.contextmanager
def using_run(chosen: ModelChoice, picked: bool) -> Iterator[None]:
    """Name the run a command uses: on a terminal first, when it was picked by default (the
    most recent run of its mode), and in front of every error while it is used."""
    run = chosen.run
    if picked and err.is_terminal:
        said = f"using {run.name}, the most recent {chosen.meta['mode']} run ({chosen.file})"
        err.print(Text(shown(said), style="dim"))
    try:
        yield
    except TextgenError as exc:
        exc.run_name = run.name  # the CLI puts "run NAME: " in front of the message
        raise


@app.callback()
def _global(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show TensorFlow's start-up log messages.")] = False,
) -> None:
    from textgen.tf_setup import set_quiet

    set_quiet(not verbose)
    # every command's notes and advice name options and commands as typed here (--epochs 5,
    # textgen sample), for as long as the command runs
    ctx.with_resource(written_for_cli())


def run_training(job: Callable[[], Any], overwrite: bool = False) -> Any:
    """Run a training job; Ctrl-C or SIGTERM ends it with how to resume and exit code 130
    or 143 (128 + the signal's number, as a shell reports a killed process). `overwrite`:
    the command had --overwrite, which --resume replaces (the two are refused together)."""
    from textgen.training.fit import TrainingInterrupted

    try:
        return job()
    except TrainingInterrupted as stop:
        where = f"interrupted ({stop.signal.name}) in epoch {stop.epoch + 1} after step {stop.step}"
        resume = ("run the same command with --resume in place of --overwrite to continue"
                  if overwrite else "run the same command with --resume to continue")
        if stop.finished:
            err.print(f"interrupted ({stop.signal.name}) as training ended; everything is saved "
                      f"in {stop.run.path}")
        elif stop.run.exists() and stop.saved_step == stop.step:
            err.print(f"{where}; everything up to there is saved in {stop.run.path}; {resume}")
        elif stop.run.exists():  # at the epoch's end, before its commit
            saved = (f"its first {stop.saved_step} steps" if stop.saved_step
                     else "the epochs before it")
            err.print(f"{where}, before the epoch was saved; {saved} are saved in "
                      f"{stop.run.path}; {resume}")
        else:  # a new run stopped before its first step: nothing worth a folder
            err.print(f"{where}; nothing was saved yet; run the same command to start again")
        raise typer.Exit(128 + stop.signal.value) from None


def report_training(result: TrainResult, figure: Figure) -> bool:
    """The summary table of a training run, with its mode's headline `figure`; False when a
    resumed run had nothing left to do (its note says so).

    (Notes were printed as they arose.)
    """
    from textgen.training.lifecycle import watched

    summary, run = result.summary, result.run
    if result.already_finished:
        return False
    table = Table(title=shown(f"run {run.name}"), show_header=False)
    table.add_column()
    table.add_column(overflow="fold")  # paths fold, never end in "…"
    table.add_row("epochs done", str(summary["epochs_done"]))
    if summary.get("stopped_by_time"):
        table.add_row("stopped", "time budget (--max-time) reached")
    elif summary.get("stopped_early"):
        watching = watched(summary.get("monitor", ""))
        table.add_row("stopped", f"{watching} stopped improving (--patience)")
    best = summary.get("best_logs") or {}
    if summary.get("best_epoch"):
        table.add_row("best epoch", str(summary["best_epoch"]))
    key = figure.key if figure.key in best or figure.fallback not in best else figure.fallback
    if key in best:  # a run without a validation split: its training figure, so named
        label = figure.label if key == figure.key else f"training {figure.unit}"
        # the loss in other units is best where the loss is; another figure (accuracy) is
        # the best epoch's, not necessarily its own best
        shown_as = f"best {label}" if figure.per_nat else f"{label} at the best epoch"
        table.add_row(shown_as, f"{best[key]:.3f}")
        if commonest := summary.get("commonest"):  # what a classifier's accuracy must beat
            table.add_row(f"always answering '{shown(commonest['class'])}'",
                          f"{commonest['share']:.3f}")
    table.add_row("steps this session", str(summary.get("steps_run", 0)))
    table.add_row("training time", f"{summary['seconds']:.0f} s")
    table.add_row("best model", shown(run.best))
    table.add_row("last model", shown(run.last))
    table.add_row("history", shown(run.history))
    out.print(table)  # the result: stdout, so `textgen train > log` keeps it
    return True
