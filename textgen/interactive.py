"""`textgen sample --interactive`: load the model once, then sample from seeds typed at a prompt.

Lines starting with `:` change settings for the rest of the session, e.g. `:temperature 0.5`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from textgen.errors import TextgenError
from textgen.sampling import Sampler, validate_sampling_options

HELP = (":temperature T   :length N   :top-k K|off   :top-p P|off   :rng-seed N|off   "
        ":skip-unknown on|off   :settings   :help   :quit  (an empty line uses the default seed)")


@dataclass
class SampleSettings:
    temperature: float = 0.8
    length: int = 500
    top_k: int | None = None
    top_p: float | None = None
    rng_seed: int | None = None
    skip_unknown: bool = False

    def describe(self) -> str:
        return (f"temperature {self.temperature}, length {self.length}, top-k {self.top_k}, "
                f"top-p {self.top_p}, rng-seed {self.rng_seed}, skip-unknown {self.skip_unknown}")


def _optional(value: str, kind: type) -> int | float | None:
    return None if value.lower() in ("off", "none") else kind(value)


def apply_command(settings: SampleSettings, line: str) -> str | None:
    """Apply one `:name value` command; returns a message to show, or None to quit.

    An invalid value leaves the settings as they were.
    """
    name, _, value = line[1:].strip().partition(" ")
    value = value.strip()
    before = replace(settings)
    try:
        if name in ("quit", "q", "exit"):
            return None
        if name == "help":
            return HELP
        if name == "settings":
            return settings.describe()
        if name == "temperature":
            settings.temperature = float(value)
        elif name == "length":
            settings.length = int(value)
        elif name == "top-k":
            settings.top_k = _optional(value, int)
        elif name == "top-p":
            settings.top_p = _optional(value, float)
        elif name == "rng-seed":
            settings.rng_seed = _optional(value, int)
        elif name == "skip-unknown":
            settings.skip_unknown = value.lower() in ("on", "true", "yes", "1")
        else:
            return f"unknown command :{name}; {HELP}"
        validate_sampling_options(settings.temperature, settings.top_k, settings.top_p,
                                  settings.length)
    except ValueError:
        settings.__dict__.update(before.__dict__)
        return f"error: :{name} needs a value, e.g. :temperature 0.5"
    except TextgenError as exc:
        settings.__dict__.update(before.__dict__)
        return f"error: {str(exc).replace('--', ':')}"
    return settings.describe()


def run_session(sampler: Sampler, settings: SampleSettings, lines: Iterable[str],
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
            message = apply_command(settings, line)
            if message is None:
                break
            tell(message)
        else:
            seed = line if line else None
            try:
                rng_seed = None if settings.rng_seed is None else settings.rng_seed + made
                sampler.generate(seed, settings.length, settings.temperature, settings.top_k,
                                 settings.top_p, rng_seed, settings.skip_unknown, on_text=write)
                write("\n")
                made += 1
            except TextgenError as exc:
                tell(f"error: {exc}")
        prompt()
    return made
