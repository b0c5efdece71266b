"""Where textgen's messages go: progress, notes and summaries, on stderr."""

import sys
from typing import Any

from rich.console import Console


def stderr_console() -> Console:
    """The console for messages, the CLI's and the Python API's alike: soft-wrapped, so a
    note stays one line however narrow the terminal (rich takes a pipe or a notebook for 80
    columns and would cut sentences in two), not highlighted (no colours in numbers), and
    reading no markup (a run or class named '[red]x' is shown as it is)."""
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def notes_console(console: Any) -> Console:
    """The console a Python caller gave training for its notes and progress (None: stderr);
    anything else is a FieldError naming `console`, not an AttributeError from deep inside."""
    from textgen.errors import check_field

    check_field(console is None or isinstance(console, Console), "console",
                f"must be a rich.console.Console, or None for stderr; got {console!r}")
    return console or stderr_console()


WIDE_ENOUGH = 1000  # columns for a table written to a pipe or a file: never cut


def table_console(piped_width: int = WIDE_ENOUGH) -> Console:
    """stdout for a table: on a terminal its width; piped, `piped_width` (by default the
    table's natural width: rich would cut it to 80 columns, and a cut path cannot be typed
    back; a table of prose folds it at a width of its own)."""
    isatty = getattr(sys.stdout, "isatty", None)  # any stand-in without one: not a terminal
    return stdout_console(width=None if isatty is not None and isatty() else piped_width)


def stdout_console(**options: Any) -> Console:
    """A console for results on stdout (tables, summaries), reading no markup either: names
    and paths from the user's files are shown as they are."""
    return Console(markup=False, **options)
