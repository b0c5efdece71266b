"""The `textgen` command line: argument parsing, rich output, errors to exit codes; no ML logic.

One module per command group (generate.py: train, sample, evaluate; classify.py: classify
...; runs.py: runs, info, plot, export); options.py declares the shared options once.
TensorFlow is imported only inside the commands that need it, so `textgen --help` and argument
errors answer at once.
"""

import os
import signal
import sys
import traceback
from typing import Any

import typer.main
from typer import Abort

from textgen.cli import classify, generate, runs, serve  # noqa: F401  (they register their commands)
from textgen.cli.app import app, err
from textgen.cli.output import ClosedStdout, GuardedStderr, GuardedStdout, ReaderGone, shown
from textgen.errors import TextgenError, bug_report_line, known_failure

try:  # Typer ships its own copy of Click since 0.2x
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older Typer uses Click itself
    from click.exceptions import ClickException, NoArgsIsHelpError

__all__ = ["app", "main"]

# the app's own options, given before the command (`textgen -v train`)
GLOBAL_OPTIONS = ("-v", "--verbose")
BUG_EXIT_CODE = 1  # a traceback: textgen's fault, not the user's (their errors exit 2 or 3)


class Terminated(BaseException):  # noqa: N818  (a signal, as KeyboardInterrupt is)
    """SIGTERM outside training: unwinds the command so its temporary files are removed."""


def main() -> None:
    """Entry point: run the app inside one error boundary.

    Every failure a user can cause, found up front or late (out of memory, the file system,
    undecodable text, values NumPy or TensorFlow refuse), becomes one line on stderr and a
    non-zero exit code; temporary files are removed as the command unwinds. A traceback is
    printed only for a bug, with a line asking to report it.
    """
    _reopen_closed_descriptors()
    stdout = sys.stdout
    errors = getattr(stdout, "errors", None)
    # A path's bytes that are not UTF-8 (lone surrogates in Python's str) go out as those
    # bytes, as `ls` writes them, not as a failed command (Python's own rule in the C locale).
    bytes_as_named = errors == "strict" and hasattr(stdout, "reconfigure")
    if bytes_as_named:
        stdout.reconfigure(errors="surrogateescape")
    sys.stdout = GuardedStdout(stdout) if stdout is not None else ClosedStdout()
    stderr = sys.stderr
    if stderr is not None:
        sys.stderr = GuardedStderr(stderr)
    previous = _on_sigterm(_terminate)
    try:
        code = _run()
    except Terminated:
        code = None
    finally:
        sys.stdout = stdout
        sys.stderr = stderr
        if bytes_as_named:
            stdout.reconfigure(errors=errors)
        _on_sigterm(previous)
    if code is None:  # die of the signal, as the process would have without the boundary
        _on_sigterm(signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    sys.exit(code)


def command_line() -> Any:
    """The app as a Click command, its flags shown in --help without a value (Typer 0.29
    shows `--json <bool>`, and a user then types `--json true`, read as a text)."""
    command = typer.main.get_command(app)
    commands = [command]
    while commands:
        current = commands.pop()
        # --help is made on first use and kept apart from the params: made here, once
        help_option = current.get_help_option(current.context_class(current))
        for param in [*current.params, *filter(None, [help_option])]:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        commands.extend(getattr(current, "commands", {}).values())
    return command


def _reopen_closed_descriptors() -> None:
    """A closed stdout or stderr (`>&-`, `2>&-`) gets /dev/null as its descriptor: else the
    next file opened takes the number, and TensorFlow's C++ logging (which writes to
    descriptor 2 whatever Python holds) would write into it. Python's own sys.stdout and
    sys.stderr stay None, so what it would print is still known to be lost."""
    for descriptor in (1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != descriptor:
                os.dup2(devnull, descriptor)
                os.close(devnull)


def _run() -> int:
    try:
        code = command_line()(standalone_mode=False)
        sys.stdout.flush()  # a failed write to a full disk shows here, not at exit
    except NoArgsIsHelpError as exc:  # plain `textgen`: the help, as before
        exc.show()
        return 0
    except ClickException as exc:  # a bad or missing option or argument
        context = getattr(exc, "ctx", None)
        # Typer 0.29 checks a choice through pydantic, whose "Value error, " lands in front of
        # Typer's own "'rnn' is not one of ..."
        message = exc.format_message().replace(": Value error, ", ": ", 1).rstrip(".")
        if context is not None and getattr(exc, "option_name", None) in GLOBAL_OPTIONS:
            root = context.find_root().command_path
            command = context.command_path.removeprefix(root).strip()
            message = f"No such option: {exc.option_name}"  # not the command's look-alikes
            hint = (f"; {exc.option_name} goes before the command: {root} {exc.option_name} "
                    f"{command} ...")
        elif context is not None:  # after a question ("Did you mean 'train'?"), in brackets
            see = f"see '{context.command_path} --help'"
            hint = f" ({see})" if message.endswith("?") else f"; {see}"
        else:
            hint = ""
        _error(f"{message}{hint}")
        return exc.exit_code
    except Abort:  # end of input at a prompt
        return 1
    except TextgenError as exc:
        _error(_message(exc))
        return exc.exit_code
    except ReaderGone:
        # The reader went away (`textgen sample | head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Terminated, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        known = known_failure(exc)
        if known is not None:
            _error(_message(known))
            return known.exit_code
        traceback.print_exc()
        err.print(bug_report_line(exc), markup=False, highlight=False, soft_wrap=True)
        return BUG_EXIT_CODE
    return code if isinstance(code, int) else 0


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _on_sigterm(handler):
    """Install a SIGTERM handler (main thread only); returns the previous one."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application)
        return handler


def _message(exc: TextgenError) -> str:
    """An error as the command line shows it: fields as --flags, the run in use in front."""
    text = exc.for_cli()
    run_name = getattr(exc, "run_name", None)
    return f"run {run_name}: {text}" if run_name else text


def _error(message: str) -> None:
    # a name or path typed or found (`--model $'\x1b[31mred'`) cannot drive the terminal
    err.print(f"error: {shown(message)}", markup=False, highlight=False, soft_wrap=True)
