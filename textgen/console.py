"""Where textgen's messages go: progress, notes and summaries, on stderr."""

from typing import Any

from rich.console import Console


def stderr_console() -> Console:
    """The console for messages, the CLI's and the Python API's alike: soft-wrapped, so a
    note stays one line however narrow the terminal (rich takes a pipe or a notebook for 80
    columns and would cut sentences in two), not highlighted (no colours in numbers), and
    reading no markup (a run or class named '[red]x' is shown as it is)."""
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def stdout_console(**options: Any) -> Console:
    """A console for results on stdout (tables, summaries), reading no markup either: names
    and paths from the user's files are shown as they are."""
    return Console(markup=False, **options)
