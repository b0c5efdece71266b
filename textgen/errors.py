"""The project's error type (the CLI prints its message on one line and exits non-zero), and
the checks that raise it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)


class TextgenError(Exception):
    """A problem the user can fix: bad input, a missing model, a wrong option.

    The message says what is wrong and what to do; the CLI shows it without a traceback.
    """

    exit_code = 2


class RunLockedError(TextgenError):
    """Another live process is training into the same run folder."""

    exit_code = 3


def choice(enum: type[E], value: Any, option: str) -> E:
    """`value` as a member of `enum`, or a one-line error listing the valid choices."""
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(member.value for member in enum)
        raise TextgenError(f"{option} must be one of {valid}; got {value!r}") from None


def check(ok: bool, message: str) -> None:
    """Raise a TextgenError with `message` unless `ok` (a check `python -O` cannot remove)."""
    if not ok:
        raise TextgenError(message)
