"""Standard output as the commands see it: a failed write says it was standard output (a
full disk behind `> file` is an error), and a reader that went away (`| head`) ends the
command quietly, as it does for cat."""

from __future__ import annotations

import codecs
import errno
import math
import sys
from typing import Any, TextIO

from textgen.errors import STDOUT
from textgen.runs import json_dumps


class ReaderGone(Exception):  # noqa: N818  (not an error: the reader has what it wanted)
    """The pipe's reader closed it; not an OSError, so Click does not turn it into exit 1."""


class GuardedStdout:
    """A stand-in for sys.stdout whose write errors name standard output."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def _guard(self, action: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, action)(*args)
        except BrokenPipeError:
            raise ReaderGone() from None
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, STDOUT) from None

    def write(self, text: str) -> int:
        return self._guard("write", text)

    def writelines(self, lines: Any) -> None:
        self._guard("writelines", lines)

    def flush(self) -> None:
        self._guard("flush")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class GuardedStderr:
    """A stand-in for sys.stderr that drops what it is given once its reader has gone
    (`textgen train ... 2>&1 | head`): notes and progress nobody reads must not end a
    training run half-way."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone = True
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ClosedStdout:
    """sys.stdout when the command was started with it closed (`>&-`): a write is an error
    naming standard output, not a bug."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "closed (start the command with > FILE or > /dev/null)",
                      STDOUT)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:  # asked by loggers' formatters (uvicorn's) before any write
        return False


# Control characters and line breaks as Python writes them (\x1b, \n): a name's escape codes
# must not drive the terminal, nor its line breaks cut a table's row.
CONTROL_ESCAPES = {c: c.encode("unicode_escape").decode("ascii")
                   for c in ["\u2028", "\u2029", *map(chr, [*range(0x20), *range(0x7f, 0xa0)])]}
_CONTROLS = str.maketrans(CONTROL_ESCAPES)


def shown(text: object) -> str:
    """A name or path from the user's files as the terminal shows it: every control character
    escaped (the consoles read no markup, so a '[' stays a '[')."""
    return str(text).translate(_CONTROLS)


def json_text(value: Any) -> str:
    """JSON for standard output: characters as they are where it writes UTF-8, else as \\u
    escapes (the same JSON), so an ASCII-only locale cannot make it fail half-way."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return json_dumps(_finite(value),
                      ascii_only=not codecs.lookup(encoding).name.startswith("utf"))


def _finite(value: Any) -> Any:
    """NaN and infinities (a diverged run's loss) as null: standard JSON has no word for them,
    and other programs' parsers refuse Python's NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
