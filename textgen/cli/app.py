"""The Typer application, its global options, and the output every command group shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Character-level text generation and review classification with Keras LSTMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback()
def _global(
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show TensorFlow's start-up log messages.")] = False,
) -> None:
    from textgen.tf_setup import set_verbose

    set_verbose(verbose)


def run_training(job: Callable[[], Any]) -> Any:
    """Run a training job; Ctrl-C or SIGTERM ends it with how to resume and exit code 130
    or 143 (128 + the signal's number, as a shell reports a killed process)."""
    from textgen.training.fit import TrainingInterrupted

    try:
        return job()
    except TrainingInterrupted as stop:
        err.print(f"interrupted ({stop.signal.name}) in epoch {stop.epoch + 1} after step "
                  f"{stop.step}; everything up to there is saved in {stop.run.path}; run the "
                  "same command with --resume to continue")
        raise typer.Exit(128 + stop.signal.value) from None


def report_training(result: Any, metric_label: str, metric_key: str) -> bool:
    """The summary table of a training run; False when a resumed run had nothing left to do.

    (Notes were printed as they arose.)
    """
    summary, run = result.summary, result.run
    if result.already_finished:
        if summary.get("stopped_early"):
            err.print(f"{run.path} stopped early at epoch {summary['epochs_done']}: its "
                      "validation loss had stopped improving; nothing left to train")
        else:
            err.print(f"{run.path} has already finished {summary['epochs_done']} "
                      f"epoch(s); pass a larger --epochs to train it further")
        return False
    table = Table(title=f"run {run.name}", show_header=False)
    table.add_row("epochs done", str(summary["epochs_done"]))
    if summary.get("stopped_by_time"):
        table.add_row("stopped", "time budget (--max-time) reached")
    elif summary.get("stopped_early"):
        table.add_row("stopped", "validation loss stopped improving (--patience)")
    best = summary.get("best_logs") or {}
    if summary.get("best_epoch"):
        table.add_row("best epoch", str(summary["best_epoch"]))
    if metric_key in best:
        table.add_row(metric_label, f"{best[metric_key]:.3f}")
    table.add_row("steps this session", str(summary.get("steps_run", 0)))
    table.add_row("training time", f"{summary['seconds']:.0f} s")
    table.add_row("best model", str(run.best))
    table.add_row("last model", str(run.last))
    table.add_row("history", str(run.history))
    err.print(table)
    return True
