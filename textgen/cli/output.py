"""Standard output as the commands see it: a failed write says it was standard output (a
full disk behind `> file` is an error), and a reader that went away (`| head`) ends the
command quietly, as it does for cat."""

from __future__ import annotations

from typing import Any, TextIO

from textgen.errors import STDOUT


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
