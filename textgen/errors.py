"""The project's error type (the CLI prints its message on one line and exits non-zero), and
the checks that raise it."""

from __future__ import annotations

import errno
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


_OS_ERROR_ADVICE = {
    errno.EACCES: "permission denied; choose a folder you can write to (--checkpoint-dir) or "
                  "fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "read-only file system; choose a writable folder (--checkpoint-dir)",
    errno.ENOSPC: "disk full; free some space or choose another --checkpoint-dir (the files "
                  "saved before are untouched)",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another --checkpoint-dir",
    errno.ENOTDIR: "not a directory; a folder was expected there",
    errno.EEXIST: "already exists and is not a folder; choose another name",
    errno.EISDIR: "is a directory; a file was expected there",
    errno.ENOENT: "no such file or directory",
    errno.ENAMETOOLONG: "name too long",
}


def os_error_message(exc: OSError) -> str:
    """One line for an error of the file system: the path, what went wrong, what to do."""
    where = exc.filename if exc.filename is not None else "file system"
    reason = _OS_ERROR_ADVICE.get(exc.errno, (exc.strerror or str(exc)).lower())
    return f"{where}: {reason}"


def check_run_name(name: str) -> None:
    """A run name is one folder name inside --checkpoint-dir, never a path out of it."""
    bad = (not name or name.strip() != name or "/" in name or "\\" in name or
           name.startswith(".") or "\0" in name or len(name.encode()) > 200)
    check(not bad, f"--run-name {name!r} is not a run name: use one folder name (letters, "
                   "digits, '-', '_', '.'), not empty, not starting with '.', without '/' or "
                   "'\\' (runs live inside --checkpoint-dir)")
