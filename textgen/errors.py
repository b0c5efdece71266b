"""The project's error type (the CLI prints its message on one line and exits non-zero), and
the checks that raise it."""

from __future__ import annotations

import errno
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)


class TextgenError(Exception):
    """A problem the user can fix: bad input, a missing model, a wrong option.

    The message says what is wrong and what to do; the CLI shows it without a traceback.
    """

    exit_code = 2


def python_setting(field: str, value: Any) -> str:
    """A setting as a Python keyword argument: `skip_unknown=True`."""
    return f"{field}={value!r}"


class FieldError(TextgenError):
    """A bad value of one named field (of a config, of the sampling settings, an option).

    The error carries the field; each shell names it its own way when it shows the error:
    the CLI `--top-k`, the server `'top_k'` (and `"param": "top_k"`), the interactive prompt
    `:top-k`, the Python API (str of the error) the keyword, `top_k`. `problem` follows the
    field's name ("must be >= 1, got 0"); a `{fix}` in it is a setting that would help
    (`fix`, a field and its value), written as the shell writes settings. Nothing parses a
    message back, so rewording one cannot break what the server names.
    """

    def __init__(self, field: str, problem: str, fix: tuple[str, Any] | None = None):
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(self.render(str, python_setting))

    def render(self, name: Callable[[str], str],
               setting: Callable[[str, Any], str] = python_setting) -> str:
        """The message with the field named by `name(field)` and the fix by `setting`."""
        text = f"{name(self.field)} {self.problem}"
        return text.replace("{fix}", setting(*self.fix)) if self.fix else text

    def for_cli(self) -> str:
        """The message as the command line shows it: `--top-k must be >= 1, got 0`."""
        return self.render(option_flag, lambda field, value: as_typed(field, value))


def check_field(ok: bool, field: str, problem: str) -> None:
    """Raise a FieldError about `field` unless `ok`."""
    if not ok:
        raise FieldError(field, problem)


def option_flag(name: str) -> str:
    """The command-line flag of a config or training field: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def as_typed(name: str, value: Any) -> str:
    """An option as the user would type it: `--units 256`, `--layer-norm`, `--no-layer-norm`,
    `--dropout 0.2`."""
    flag = option_flag(name)
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"


class RunLockedError(TextgenError):
    """Another live process is training into the same run folder."""

    exit_code = 3


def choice(enum: type[E], value: Any, field: str) -> E:
    """`value` as a member of `enum`, or a FieldError about `field` listing the valid choices."""
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(member.value for member in enum)
        raise FieldError(field, f"must be one of {valid}; got {value!r}") from None


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
    check_field(not bad, "run_name", f"{name!r} is not a run name: use one folder name "
                "(letters, digits, '-', '_', '.'), not empty, not starting with '.', without "
                "'/' or '\\' (runs live inside --checkpoint-dir)")
