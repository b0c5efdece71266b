"""The project's error type (the CLI prints its message on one line and exits non-zero), and
the checks that raise it."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shlex
import traceback
import unicodedata
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


def python_setting(field: str, value: Any) -> str:
    """A setting as a Python keyword argument: `skip_unknown=True`, `arch='ngrams'` (an
    option's enum member as its value)."""
    return f"{field}={(value.value if isinstance(value, Enum) else value)!r}"


FIELD = object()  # a setting's value meaning "the field itself": `--run-name`, `run_name`


def with_settings(message: str, settings: dict[str, tuple[str, Any]],
                  name: Callable[[str], str], setting: Callable[[str, Any], str]) -> str:
    """`message` with each `{key}` of `settings` (a field and its value, or the field itself
    with the value FIELD) written by `setting(field, value)` or `name(field)`, in one pass, so
    a name or value that holds braces stays as it is."""
    def shown(placeholder: re.Match) -> str:
        if placeholder[1] not in settings:
            return placeholder[0]
        field, value = settings[placeholder[1]]
        return name(field) if value is FIELD else setting(field, value)

    return re.sub(r"\{(\w+)\}", shown, message)


def named_fields(*names: str) -> dict[str, tuple[str, Any]]:
    """Settings that name fields themselves, each `{name}` in a message: `--units`, `units`."""
    return {name: (name, FIELD) for name in names}


class TextgenError(Exception):
    """A problem the user can fix: bad input, a missing model, a wrong option.

    The message says what is wrong and what to do; the CLI shows it without a traceback. A
    `{name}` in it, for each of `settings` (a field and its value, or the field itself with
    the value FIELD), is an option that would help, written as each shell writes settings:
    the CLI `--overwrite`, the Python API (str of the error) `overwrite=True`, the server
    `"overwrite": true`.
    """

    exit_code = 2
    field: str | None = None  # the field the message is about, named in front (FieldError)

    def __init__(self, message: str, settings: dict[str, tuple[str, Any]] | None = None):
        self.message, self.settings = message, dict(settings or {})
        super().__init__(self.render(str, python_setting))

    def render(self, name: Callable[[str], str],
               setting: Callable[[str, Any], str] = python_setting) -> str:
        """The message with each field named by `name(field)` and each setting by `setting`
        (in one pass, so a name or value that holds braces stays as it is)."""
        text = with_settings(self.message, self.settings, name, setting)
        return f"{name(self.field)} {text}" if self.field else text

    def for_cli(self) -> str:
        """The message as the command line shows it: `--top-k must be >= 1, got 0`."""
        return self.render(option_flag, as_typed)

    def quoted(self, prefix: str) -> tuple[str, dict[str, tuple[str, Any]]]:
        """This error's message and settings, to be quoted in another error's message (its
        settings keep their shell's wording); their keys take `prefix` so none can clash."""
        settings = {f"{prefix}{key}": value for key, value in self.settings.items()}
        text = re.sub(r"\{(\w+)\}", lambda m: "{" + prefix + m[1] + "}"
                      if m[1] in self.settings else m[0], self.message)
        if self.field:
            settings[f"{prefix}field"] = (self.field, FIELD)
            text = "{" + prefix + "field} " + text
        return text, settings


class FieldError(TextgenError):
    """A bad value of one named field (of a config, of the sampling settings, an option).

    The error carries the field; each shell names it its own way when it shows the error:
    the CLI `--top-k`, the server `'top_k'` (and `"param": "top_k"`), the interactive prompt
    `:top-k`, the Python API (str of the error) the keyword, `top_k`. `problem` follows the
    field's name ("must be >= 1, got 0"); a `{fix}` in it is a setting that would help
    (`fix`, a field and its value), and so is each `{name}` of `fixes`. Nothing parses a
    message back, so rewording one cannot break what the server names.
    """

    def __init__(self, field: str, problem: str, fix: tuple[str, Any] | None = None,
                 fixes: dict[str, tuple[str, Any]] | None = None):
        self.field, self.problem = field, problem
        # `{fix}` and the `{name}` of each of `fixes` in the problem: settings that would help
        super().__init__(problem, {**({"fix": fix} if fix else {}), **(fixes or {})})

    @property
    def fix(self) -> tuple[str, Any] | None:
        return self.settings.get("fix")


def check_field(ok: bool, field: str, problem: str,
                fixes: dict[str, tuple[str, Any]] | None = None) -> None:
    """Raise a FieldError about `field` unless `ok`."""
    if not ok:
        raise FieldError(field, problem, fixes=fixes)


def option_flag(name: str) -> str:
    """The command-line flag of a config or training field: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def as_typed(name: str, value: Any) -> str:
    """An option as the user would type it: `--units 256`, `--layer-norm`, `--no-layer-norm`,
    `--dropout 0.2`."""
    flag = option_flag(name)
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if isinstance(value, str):  # as a shell takes it, on one line
        if name in ESCAPED_OPTIONS:  # typed back, it reads as the value: "\\n" is not "\n"
            value = value.replace("\\", "\\\\")
        shown = LINE_BREAKS.sub(lambda m: TYPED_BREAKS[m[0]], value)
        return f"{flag} {shlex.quote(shown)}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"


# The options whose values the CLI reads through reading.unescape (\n, \t, \r, \\).
ESCAPED_OPTIONS = ("doc_separator", "stop")
LINE_BREAKS = re.compile("[\n\r\t]")
TYPED_BREAKS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


# How the running shell writes the settings a note names, for notes printed as they arise
# (a training run's): the Python API's keywords unless the CLI says otherwise
# (`written_for_cli`). Errors are written by the shell that catches them instead.
PYTHON_STYLE = (str, python_setting)
CLI_STYLE = (option_flag, as_typed)
_note_style: ContextVar[tuple[Callable[[str], str], Callable[[str, Any], str]]] = ContextVar(
    "note_style", default=PYTHON_STYLE)


@contextlib.contextmanager
def written_for_cli() -> Iterator[None]:
    """Notes made inside name settings as the command line types them: `--epochs 5`."""
    token = _note_style.set(CLI_STYLE)
    try:
        yield
    finally:
        _note_style.reset(token)


def written(message: str, settings: dict[str, tuple[str, Any]] | None = None) -> str:
    """A note's text, its settings (as TextgenError's) written as the running shell writes
    them: `epochs=5` from Python, `--epochs 5` on the command line."""
    return with_settings(message, settings or {}, *_note_style.get())


def written_command(cli: str, python: str) -> str:
    """A command a note points to, as the running shell calls it (`written`): `textgen
    classify evaluate` on the command line, `evaluate_data(...)` from Python."""
    return cli if _note_style.get() is CLI_STYLE else python


def written_setting(field: str, value: Any) -> str:
    """One setting as the running shell writes it (`written`): `epochs=5`, `--epochs 5`."""
    return _note_style.get()[1](field, value)


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


# What went wrong, and what to do (None: the reason says it all).
_OS_ERROR_ADVICE = {
    errno.EACCES: ("permission denied", "choose a folder you can write to or fix its "
                   "permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to"),
    errno.EROFS: ("read-only file system", "choose a folder you can write to"),
    errno.ENOSPC: ("disk full", "free some space or write elsewhere (the files saved before are "
                   "untouched)"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
    errno.ENOTDIR: ("not a directory", "a folder was expected there"),
    errno.EEXIST: ("already exists and is not a folder", "choose another name"),
    errno.EISDIR: ("is a directory", "a file was expected there"),
    errno.ENOENT: ("no such file or directory", None),
    errno.ENAMETOOLONG: ("name too long", None),
    errno.EIO: ("input/output error (a failing disk or a device that refuses writes)", None),
}
INTERRUPTED_EXIT_CODE = 130  # Ctrl-C: 128 + SIGINT, as shells report it
STDOUT = "<stdout>"  # the `filename` of an error writing to standard output


def os_error_message(exc: OSError) -> str:
    """One line for an error of the file system: the path, what went wrong, what to do."""
    where = exc.filename if exc.filename is not None else "file system"
    reason, advice = _OS_ERROR_ADVICE.get(exc.errno, ((exc.strerror or str(exc)).lower(), None))
    if where == STDOUT:  # no folder to choose: what was lost instead
        where, advice = "standard output", "the output is incomplete"
    return f"{where}: {reason}" + (f"; {advice}" if advice else "")


SEED_SPACE = 2**32  # NumPy's legacy seeding and Keras' set_random_seed take [0, 2**32)


def seed_value(seed: Any, field: str = "rng_seed") -> int:
    """A random seed: any whole number, reduced modulo 2**32 (so -1 is 4294967295, its
    two's complement) because every random generator textgen seeds takes that range."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FieldError(field, f"must be a whole number, got {seed!r}")
    return seed % SEED_SPACE


# Late failures: what the libraries raise once the up-front checks have passed. Each known
# family becomes a TextgenError (one line, exit 2); anything else is a bug (a traceback).
_DATA_LIBRARIES = {"numpy": "NumPy", "tensorflow": "TensorFlow", "keras": "Keras"}
_TF_DATA_ERRORS = ("InvalidArgumentError", "OutOfRangeError")
_TF_FILE_ERRORS = {"No space left on device": errno.ENOSPC, "Read-only file system": errno.EROFS,
                   "Permission denied": errno.EACCES, "Disk quota exceeded": errno.EDQUOT}
# the options that size memory, named as each shell names them (FIELD: the field itself)
OUT_OF_MEMORY_ADVICE = ("ask for less: a smaller {batch_size}, {units}, {layers}, {seq_length}, "
                        "{num_samples} or text")
OUT_OF_MEMORY_FIELDS = named_fields("batch_size", "units", "layers", "seq_length", "num_samples")


def _raised_in(exc: BaseException) -> str:
    """The top-level package of the innermost Python frame that raised `exc`."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        parts = frame.filename.replace("\\", "/").split("/")
        for library in _DATA_LIBRARIES:
            if library in parts:
                return library
        return parts[-1]
    return ""


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def known_failure(exc: BaseException) -> TextgenError | None:
    """The user's error for a failure of a known family, None for a bug.

    Families: a worker of a multi-worker cluster gone (TensorFlow's UnavailableError), out of
    memory (MemoryError, TensorFlow's ResourceExhaustedError), the file
    system (OSError and TensorFlow's file errors, by errno), text that cannot be encoded or
    decoded (UnicodeError), and values NumPy, TensorFlow or Keras refuse (ValueError raised
    inside them, TensorFlow's InvalidArgumentError).
    """
    names = {kind.__name__ for kind in type(exc).__mro__}
    if isinstance(exc, OSError):
        return TextgenError(os_error_message(exc))
    if "OpError" in names:  # TensorFlow's file errors carry the OS's words (a full disk is
        for words, number in _TF_FILE_ERRORS.items():  # a ResourceExhaustedError there too)
            if words in str(exc):
                path = re.search(r"(/[^\s:;,']+)", str(exc))
                return TextgenError(os_error_message(OSError(
                    number, words, path.group(1) if path else None)))
    if "UnavailableError" in names:  # a multi-worker peer gone: TensorFlow's collectives end
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        at = next((i for i, line in enumerate(lines)
                   if "unhealthy" in line or "aborted by" in line), None)
        # the telling line, and the task it introduces where it ends in a colon
        told = (_first_line(exc) if at is None else
                " ".join(lines[at : at + (2 if lines[at].endswith(":") else 1)]))[:200]
        return TextgenError(f"another worker stopped or cannot be reached ({told}); start "
                            "every worker again with {resume}", {"resume": ("resume", True)})
    if isinstance(exc, MemoryError) or "ResourceExhaustedError" in names:
        shape = re.search(r"shape\s*\[([\d,\s]+)\]", str(exc))
        what = f" for a tensor of shape [{shape.group(1)}]" if shape else ""
        return TextgenError(f"out of memory{what}; {OUT_OF_MEMORY_ADVICE}", OUT_OF_MEMORY_FIELDS)
    if isinstance(exc, UnicodeEncodeError):
        return TextgenError(
            f"cannot write {exc.object[exc.start:exc.end]!r} in the {exc.encoding} encoding; "
            "write to a file with -o, or set PYTHONIOENCODING=utf-8")
    if isinstance(exc, UnicodeError):
        return TextgenError(f"text that is not valid in its encoding ({_first_line(exc)}); "
                            "use {encoding} with its real encoding, or {replace}",
                            {"encoding": ("encoding", FIELD),
                             "replace": ("decode_errors", "replace")})
    if (isinstance(exc, ValueError) and _raised_in(exc) in _DATA_LIBRARIES) or (
            names & set(_TF_DATA_ERRORS)):
        library = _DATA_LIBRARIES.get(_raised_in(exc), "TensorFlow")
        return TextgenError(f"{library} refused a value: "
                            f"{_first_line(exc)}; check the options and the input (if they "
                            "look right, please report it as a bug)")
    return None


def user_errors(function: Callable[..., T]) -> Callable[..., T]:
    """`function` raising what the command line says for a failure of a known family (a name
    too long, a read-only folder, out of memory) as a TextgenError, chained to its cause: the
    Python API's entry points answer as the CLI does."""
    @functools.wraps(function)
    def answering(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except TextgenError:
            raise
        except Exception as exc:
            known = known_failure(exc)
            if known is None:
                raise
            raise known from exc

    return answering


def bug_report_line(exc: BaseException) -> str:
    """The line under a bug's traceback."""
    from textgen import __version__

    return (f"error: this is a bug in textgen {__version__} ({type(exc).__name__}); please "
            "report it with the command you ran and the traceback above")


RUN_NAME_MAX_BYTES = 200  # leaves room under the file system's 255 for a temporary's additions


def check_run_name(name: str) -> None:
    """A run name is one folder name inside --checkpoint-dir, never a path out of it."""
    # '-' first would read as an option wherever the name is typed (`textgen info -x`)
    # control characters (a line break, an escape code) would drive the terminal wherever
    # the name is printed, and break the lines of `runs` and of scripts
    bad = (not name or name.strip() != name or "/" in name or "\\" in name or
           name.startswith((".", "-")) or any(unicodedata.category(c) == "Cc" for c in name)
           or len(os.fsencode(name)) > RUN_NAME_MAX_BYTES)
    check_field(not bad, "run_name", f"{name!r} is not a run name: use one folder name "
                f"of at most {RUN_NAME_MAX_BYTES} bytes, not empty, not starting with '.' or "
                "'-', not starting or ending with a space, without '/', '\\' or control "
                "characters (runs live inside {checkpoint_dir})",
                fixes={"checkpoint_dir": ("checkpoint_dir", FIELD)})


def as_path(value: Any, name: str) -> Path:
    """A path the Python API was given: a str or os.PathLike, else a FieldError naming the
    argument (a raw pathlib TypeError otherwise); an empty str too, which pathlib reads as '.'
    (an unset variable would train on the current folder)."""
    if not isinstance(value, str | os.PathLike):
        raise FieldError(name, f"must be a path (a str or pathlib.Path), got {value!r}")
    if isinstance(value, str) and not value:
        raise FieldError(name, "is empty; give a file or folder name")
    return Path(value)


def default_run_name(stem: str) -> str:
    """The run name a file or folder gives: its name without leading dots, dashes and spaces
    (a run named '.hidden' would be one `textgen runs` does not list, '-x' one no command
    takes), a backslash and each control character made '_', cut to a run name's length: a
    name --run-name takes too (check_run_name)."""
    name = "".join("_" if c == "\\" or unicodedata.category(c) == "Cc" else c
                   for c in re.sub(r"^[.\s-]+", "", stem))
    return cut_to_bytes(name, RUN_NAME_MAX_BYTES).rstrip() or "run"


def cut_to_bytes(name: str, limit: int) -> str:
    """`name` cut at a character so that the file system's bytes for it (a name's bytes
    that are not UTF-8 included, as Python holds them) are at most `limit`."""
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return name


FILE_NAME_MAX_BYTES = 255  # the longest file name Linux, macOS and Windows file systems take


def name_part_that_fits(part: str, reserved_bytes: int) -> str:
    """`part` cut (at a character) so that it and `reserved_bytes` more make a file name
    the file system takes: a temporary's name adds a few bytes to the user's own."""
    return cut_to_bytes(part, max(FILE_NAME_MAX_BYTES - reserved_bytes, 1))
