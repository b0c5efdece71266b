"""The project's error type: the CLI prints its message on one line and exits non-zero."""


class TextgenError(Exception):
    """A problem the user can fix: bad input, a missing model, a wrong option.

    The message says what is wrong and what to do; the CLI shows it without a traceback.
    """

    exit_code = 2


class RunLockedError(TextgenError):
    """Another live process is training into the same run folder."""

    exit_code = 3
