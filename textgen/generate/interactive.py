"""`textgen sample --interactive`: load the model once, then sample from seeds typed at a prompt.

Lines starting with `:` change settings for the rest of the session, e.g. `:temperature 0.5`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from textgen.errors import FieldError, TextgenError
from textgen.generate.sampling import Sampler, SamplingSettings

HELP = (":temperature T   :length N   :top-k K|off   :top-p P|off   :rng-seed N|off   "
        ":skip-unknown on|off   :text-limits on|off   :settings   :help   :quit  (an empty line "
        "uses the default seed)")


SETTINGS = {"temperature": float, "length": int, "top-k": int, "top-p": float, "rng-seed": int,
            "skip-unknown": bool, "text-limits": bool}
OFF = ("off", "none")


def describe(settings: SamplingSettings) -> str:
    """The settings as the commands that set them take them (`off`, `on`), one line."""
    s = settings

    def shown(value: object) -> object:
        return "off" if value is None or value is False else "on" if value is True else value

    return (f"temperature {s.temperature}, length {s.length}, top-k {shown(s.top_k)}, "
            f"top-p {shown(s.top_p)}, rng-seed {shown(s.rng_seed)}, "
            f"skip-unknown {shown(s.skip_unknown)}, text-limits {shown(s.text_limits)}")


def as_prompt_text(error: TextgenError) -> str:
    """An error as the prompt shows it: a field as its command (`:top-k`), a setting as the
    command that sets it (`:skip-unknown on`)."""
    if not isinstance(error, FieldError):
        return str(error)

    def command(field: str) -> str:
        return ":" + field.replace("_", "-")

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
    if value.lower() in OFF and name in ("top-k", "top-p", "rng-seed"):
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
                prompt: Callable[[], None] = lambda: None) -> int:
    """Read seeds and commands from `lines` until EOF or :quit; returns samples made.

    `write` gets sample text (streamed), `tell` gets messages, `prompt` is called before each
    line is read.
    """
    made = 0
    prompt()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.startswith(":"):
            settings, message = apply_command(settings, line)
            if message is None:
                break
            tell(message)
        else:
            seed = line if line else None
            try:
                sampler.sample(seed, settings.for_sample(made), on_text=write)
                write("\n")
                made += 1
            except TextgenError as exc:
                tell(f"error: {as_prompt_text(exc)}")
        prompt()
    return made
