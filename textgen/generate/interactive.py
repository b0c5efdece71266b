"""`textgen sample --interactive`: load the model once, then sample from seeds typed at a prompt.

Lines starting with `:` change settings for the rest of the session, e.g. `:temperature 0.5`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import replace

from textgen.errors import TextgenError
from textgen.generate.sampling import Sampler, SamplingSettings
from textgen.reading import argument_text


def _settable() -> tuple[dict[str, type], set[str]]:
    """The settings a `:name value` command sets (those SamplingSettings gives a range), by
    command name: each one's type, and those that may be off (None)."""
    hints = typing.get_type_hints(SamplingSettings)
    kinds, may_be_off = {}, set()
    for field in SamplingSettings.RANGES:
        hint = hints[field]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        name = field.replace("_", "-")
        kinds[name] = next(k for k in options if k is not type(None))
        if type(None) in options:
            may_be_off.add(name)
    return kinds, may_be_off


SETTINGS, MAY_BE_OFF = _settable()
OFF = ("off", "none")
_PLACEHOLDER = {bool: "on|off", int: "N", float: "X"}
HELP = ("   ".join(f":{name} {_PLACEHOLDER[kind]}{'|off' if name in MAY_BE_OFF else ''}"
                   for name, kind in SETTINGS.items())
        + "   :settings   :help   :quit  (an empty line uses the default seed)")
INTERRUPTED = "interrupted; type a seed, or Ctrl-D to quit"


def describe(settings: SamplingSettings) -> str:
    """The settings as the commands that set them take them (`off`, `on`), one line."""
    s = settings

    def shown(value: object) -> object:
        return "off" if value is None or value is False else "on" if value is True else value

    return ", ".join(f"{name} {shown(getattr(s, name.replace('-', '_')))}" for name in SETTINGS)


def as_prompt_text(error: TextgenError) -> str:
    """An error as the prompt shows it: a field as its command (`:top-k`), a setting as the
    command that sets it (`:skip-unknown on`); the seed, typed at the prompt, as "the seed"."""
    def command(field: str) -> str:
        name = field.replace("_", "-")
        return f":{name}" if name in SETTINGS else f"the {name}"

    def setting(field: str, value: object) -> str:
        shown_value = ("on" if value else "off") if isinstance(value, bool) else value
        return f"{command(field)} {shown_value}"

    return error.render(command, setting)


def _parse(name: str, value: str) -> object:
    """The typed value of `:name value`; ValueError when it does not parse."""
    kind = SETTINGS[name]
    if kind is bool:
        if value.lower() in ("on", "true", "yes", "1"):
            return True
        if value.lower() in ("off", "false", "no", "0"):
            return False
        raise ValueError(value)
    if value.lower() in OFF and name in MAY_BE_OFF:
        return None
    return kind(value)


def apply_command(settings: SamplingSettings, line: str) -> tuple[SamplingSettings, str | None]:
    """Apply one `:name value` command: (the new settings, a message to show); the message is
    None to quit. An invalid value leaves the settings as they were and says why."""
    name, _, value = line[1:].strip().partition(" ")
    value = value.strip()
    if name in ("quit", "q", "exit"):
        return settings, None
    if name == "help":
        return settings, HELP
    if name == "settings":
        return settings, describe(settings)
    if name not in SETTINGS:
        return settings, f"unknown command :{name}; {HELP}"
    field_name = name.replace("-", "_")
    valid = SamplingSettings.RANGES[field_name]
    try:
        changed = replace(settings, **{field_name: _parse(name, value)})
    except ValueError:
        shown = repr(value) if value else "nothing"
        return settings, f"error: :{name} needs {valid}, got {shown}"
    except TextgenError as exc:
        return settings, f"error: {as_prompt_text(exc)}"
    return changed, describe(changed)


def run_session(sampler: Sampler, settings: SamplingSettings, lines: Iterable[str],
                write: Callable[[str], None], tell: Callable[[str], None],
                prompt: Callable[[], None] = lambda: None,
                interruptible: bool = False) -> int:
    """Read seeds and commands from `lines` until EOF or :quit; returns samples made.

    `write` gets sample text (streamed), `tell` gets messages, `prompt` is called before each
    line is read. `interruptible` (a terminal): Ctrl-C stops the sample being written, or the
    line being typed, and the prompt comes back, as in Python's own prompt; without it (seeds
    from a pipe) Ctrl-C ends the session.
    """
    made = 0
    lines = iter(lines)
    while True:
        sampling = False
        try:
            prompt()
            raw = next(lines, None)
            if raw is None:
                break
            line = raw.rstrip("\r\n")
            if line.startswith(":"):
                changed, message = apply_command(settings, line)
                if message is None:
                    break
                if changed.length != settings.length:  # one that cannot fit: refused now
                    try:
                        sampler.check_fits(1, changed.length)
                    except TextgenError as exc:
                        tell(f"error: {as_prompt_text(exc)}")
                        continue
                settings = changed
                tell(message)
                continue
            try:
                # bytes that are not UTF-8 said as such, not as unknown characters
                seed = argument_text(line, "the seed") if line else None
                sampling = True
                sampler.sample(seed, settings.for_sample(made), on_text=write)
                write("\n")
                made += 1
            except TextgenError as exc:
                tell(f"error: {as_prompt_text(exc)}")
        except KeyboardInterrupt:
            if not interruptible:
                raise
            if sampling:  # its line ended, and its seed used: the next sample draws anew
                write("\n")
                made += 1
            tell(("" if sampling else "\n") + INTERRUPTED)
    return made
