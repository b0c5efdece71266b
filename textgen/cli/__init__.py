"""The `textgen` command line: argument parsing, rich output, errors to exit codes; no ML logic.

One module per command group (generate.py: train, sample, evaluate; classify.py: classify
...; runs.py: runs, info, plot, export); options.py declares the shared options once.
TensorFlow is imported only inside the commands that need it, so `textgen --help` and argument
errors answer at once.
"""

import sys

from textgen.cli import classify, generate, runs  # noqa: F401  (they register their commands)
from textgen.cli.app import app, err
from textgen.errors import TextgenError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the app; project errors become one line on stderr and an exit code."""
    try:
        app()
    except TextgenError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
