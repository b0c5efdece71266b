"""The `textgen` command line: argument parsing, rich output, errors to exit codes; no ML logic.

One module per command group (generate.py: train, sample, evaluate; classify.py: classify
...; runs.py: runs, info, plot, export); options.py declares the shared options once.
TensorFlow is imported only inside the commands that need it, so `textgen --help` and argument
errors answer at once.
"""

import os
import sys

from typer import Abort

from textgen.cli import classify, generate, runs, serve  # noqa: F401  (they register their commands)
from textgen.cli.app import app, err
from textgen.errors import FieldError, TextgenError, os_error_message

try:  # Typer ships its own copy of Click since 0.2x
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older Typer uses Click itself
    from click.exceptions import ClickException, NoArgsIsHelpError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the app; every error a user can cause becomes one line on stderr and
    a non-zero exit code (usage errors too, instead of Click's three-line block)."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # plain `textgen`: the help, as before
        exc.show()
        sys.exit(0)
    except ClickException as exc:  # a bad or missing option or argument
        context = getattr(exc, "ctx", None)
        hint = f"; see '{context.command_path} --help'" if context is not None else ""
        _error(f"{exc.format_message().rstrip('.')}{hint}")
        sys.exit(exc.exit_code)
    except Abort:  # end of input at a prompt
        sys.exit(1)
    except TextgenError as exc:
        _error(exc.for_cli() if isinstance(exc, FieldError) else str(exc))
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # The reader went away (`textgen sample | head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as exc:  # permissions, full disks, paths that are files: one line, exit 2
        _error(os_error_message(exc))
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def _error(message: str) -> None:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
