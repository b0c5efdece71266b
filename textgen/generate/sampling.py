"""Generating text: the settings, the sequences being generated and the batch that steps them
together, and the Sampler that loads a run.

Each sequence runs the recurrence one character at a time (textgen.generate.stepper, NumPy,
the state carried between steps) and draws its next character (textgen.generate.drawing).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from textgen.errors import FieldError, TextgenError, check_field
from textgen.generate.blas_threads import blas_threads
from textgen.generate.config import GeneratorConfig
from textgen.generate.data import Vocabulary, describe_chars
from textgen.generate.drawing import DrawSettings, Uniforms, choose_next_ids, row_drawer
from textgen.generate.limits import TextLimits
from textgen.generate.stepper import NumpyStepper, check_run_weights, load_generator_weights
from textgen.modes import Mode
from textgen.reading import normalise_newlines
from textgen.runs import Checkpoint, ModelChoice, RunDir, check_regular_file, find_model


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample: one object for the CLI, interactive mode and the Python API.

    temperature 0 is greedy (always the likeliest character), 1 the model's own odds; top_k
    and top_p (nucleus) restrict the choice to the likeliest characters; length counts the
    characters generated after the seed. Checked on construction.
    """

    temperature: float = 0.8
    length: int = 500
    top_k: int | None = None
    top_p: float | None = None
    rng_seed: int | None = None
    skip_unknown: bool = False
    stop: tuple[str, ...] = ()  # generation ends right after the first one it produces
    # Write only the training text's characters, none more times in a row than the text has
    # it: a fine-tuned model keeps habits of its base's books (indenting, centred titles) in
    # states the text never shows it, and a run of spaces, once begun, went on for hundreds.
    text_limits: bool = True

    RANGES = {"temperature": "a finite number >= 0 (0 = greedy)", "length": "a whole number >= 1",
              "top_k": "a whole number >= 1, or off", "top_p": "a number in (0, 1], or off",
              "rng_seed": "a whole number, or off", "skip_unknown": "on or off",
              "text_limits": "on or off"}

    def __post_init__(self) -> None:
        for name, value, kind in (("temperature", self.temperature, "number"),
                                  ("length", self.length, "whole"), ("top_k", self.top_k, "whole"),
                                  ("top_p", self.top_p, "number"),
                                  ("rng_seed", self.rng_seed, "whole")):
            # The Python API passes values untyped: "0.5", 2.5 or True is not a setting.
            refused = f"must be {self.RANGES[name]}, got {_shown(value)}"
            check_field(value is None and name in ("top_k", "top_p", "rng_seed") or
                        _is_number(value, whole=kind == "whole"), name, refused)
            if value is not None:  # NumPy's numbers as Python's (frozen: set once)
                try:
                    value = int(value) if kind == "whole" else float(value)
                except OverflowError:  # an int past float's range: no setting either
                    check_field(False, name, refused)
                object.__setattr__(self, name, value)
        t, k, p = self.temperature, self.top_k, self.top_p
        check_field(math.isfinite(t) and t >= 0, "temperature",
                    f"must be {self.RANGES['temperature']}, got {t}")
        check_field(k is None or k >= 1, "top_k", f"must be >= 1, got {_shown(k)}")
        check_field(p is None or 0 < p <= 1, "top_p", f"must be in (0, 1], got {p}")
        check_field(self.length >= 1, "length", f"must be >= 1, got {_shown(self.length)}")
        for name in ("skip_unknown", "text_limits"):
            value = getattr(self, name)
            check_field(isinstance(value, bool | np.bool_), name,
                        f"must be True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))
        stop = self.stop if self.stop is not None else ()
        stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(
            stop, list | tuple) else None
        check_field(stops is not None and all(isinstance(t, str) and t for t in stops),
                    "stop", "needs a non-empty text (or several), e.g. '\\n\\n'")
        object.__setattr__(self, "stop", stops)  # frozen: set once, normalised

    def for_sample(self, i: int) -> SamplingSettings:
        """The settings of sample i of several asked for at once: it draws with rng_seed + i,
        so each is the sample it would be alone (no rng_seed: each draws its own)."""
        return self if self.rng_seed is None else replace(self, rng_seed=self.rng_seed + i)

    def numbered(self, count: int) -> list[SamplingSettings]:
        """The settings of `count` samples asked for at once (`for_sample` of each)."""
        return [self.for_sample(i) for i in range(count)]


def _check_sequences(**arguments: Any) -> None:
    """sample_many's per-sample arguments are lists (a str would be read a character each,
    one SamplingSettings or one function is no list)."""
    for name, value in arguments.items():
        if value is None and name == "on_text":
            continue
        check_field(isinstance(value, Sequence) and not isinstance(value, str | bytes), name,
                    f"must be a list with one item per sample, got {_shown(value)[:80]}")


def _check_samples(seeds: Sequence, settings: Sequence, callbacks: list) -> None:
    """The Python API's arguments, before any step: one setting and callback per seed."""
    for seed in seeds:
        check_field(seed is None or isinstance(seed, str), "seed",
                    f"must be a string or None, got {seed!r}")
    if not all(isinstance(s, SamplingSettings) for s in settings):
        raise TextgenError("settings must be SamplingSettings(...) objects, one per seed")
    if not len(seeds) == len(settings) == len(callbacks):
        raise TextgenError(f"{len(seeds)} seeds, {len(settings)} settings and {len(callbacks)} "
                           "on_text callbacks: give one of each per sample")
    check_field(all(c is None or callable(c) for c in callbacks), "on_text",
                "must be a function taking the text, or None")


def _shown(value: object) -> str:
    """A value as an error shows it: a whole number too long to print by its size."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a number of about {round(value.bit_length() * math.log10(2))} digits"
    return repr(value)


def _is_number(value: object, whole: bool) -> bool:
    """A whole number (or with `whole` False, any real number; NumPy's too), never a bool."""
    kind = numbers.Integral if whole else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class Sample:
    """A generated text (the seed first) and why it ended: "stop" (a stop text was generated)
    or "length" (--length characters were generated)."""

    text: str
    finish_reason: str


DEFAULT_SAMPLING = SamplingSettings()
# A sequence sampled alone hands its text on a line, or this many characters, at a time: a
# write per character cost more than the step; 32 characters take a few milliseconds.
CHUNK = 32
# Sampling uses the latest epoch by default: on a short text the validation loss (on its
# unseen end) is lowest early, long before the model has learnt the text.
SAMPLE_CHECKPOINT = Checkpoint.last
# Distinct widened text limits a sampler keeps (stop texts rarely widen them; a server's
# clients could send endless variations)
MAX_WIDENED_LIMITS = 64


def read_vocabulary(run: RunDir, config: GeneratorConfig) -> Vocabulary:
    """The run's vocabulary, checked against its model's size (`config`, from run.json): a
    damaged file is named here, not later as a text "with characters the run lacks"."""
    try:
        check_regular_file(run.vocab)
        vocab = Vocabulary.from_json(run.vocab.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TextgenError(f"{run.vocab}: missing; the run cannot be used without its "
                           "vocabulary (retrain it)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TextgenError(f"{run.vocab}: not a valid vocabulary file ({exc})") from exc
    if len(vocab) != config.vocab_size:
        raise TextgenError(f"{run.vocab}: has {len(vocab)} characters but the model expects "
                           f"{config.vocab_size}; the run folder is inconsistent (retrain it)")
    return vocab


@dataclass(eq=False)
class Generation:
    """One sequence being generated: its settings, its own random generator, what it still
    has to read (the seed, then each character it draws) and what it has written."""

    settings: SamplingSettings
    feed: list[int]  # ids to read before the next draw, last first (a stack): the seed at first
    text: list[str]
    on_text: Callable[[str], None] | None = None
    rng: Uniforms = None
    finish_reason: str | None = None  # "stop" or "length" once ended, "cancelled"
    generated: int = 0
    tail: str = ""  # the text's end (the seed's at first), as long as the longest stop text
    last_id: int = -1  # the last character read or written, and how many times in a row
    repeats: int = 0
    column: int = 0  # characters since the text's last line break
    limits: TextLimits | None = None  # what it keeps to (Sampler.limits_for)
    # sequences that joined with the same seed at the same step: they take a copy of this
    # one's state to read the seed's last character (GenerationBatch._attach_followers)
    followers: list[Generation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = Uniforms(self.settings.rng_seed)
        self.longest_stop = max((len(t) for t in self.settings.stop), default=0)
        s = self.settings
        self.draw_settings: DrawSettings = (s.temperature, s.top_k, s.top_p)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def result(self) -> Sample:
        return Sample("".join(self.text), self.finish_reason or "length")

    @property
    def reading(self) -> bool:
        """Still reading its seed: the next step draws nothing for it."""
        return bool(self.feed)

    def accept(self, next_id: int, chars: tuple[str, ...]) -> bool:
        """Take the drawn character, check the ends; whether the sequence has ended."""
        s = self.settings
        char = chars[next_id]
        self.text.append(char)
        self.generated += 1
        if self.on_text:
            self.on_text(char)
        if self.longest_stop:
            self.tail = (self.tail + char)[-self.longest_stop:]
            if any(self.tail.endswith(t) for t in s.stop):
                self.finish_reason = "stop"
        if self.finish_reason is None and self.generated >= s.length:
            self.finish_reason = "length"
        self.feed.append(next_id)
        self.repeats = self.repeats + 1 if next_id == self.last_id else 1
        self.last_id = next_id
        self.column = 0 if char == "\n" else self.column + 1
        return self.finish_reason is not None


class GenerationBatch:
    """Sequences generated together (continuous batching): one NumPy step advances every
    active sequence, each with its own settings and random generator, so a sequence's text
    does not depend on what else is in the batch. Sequences join at any step (`join`) and
    leave when they end or are cancelled; a joining sequence reads its seed one character a
    step beside the others' generation. Sequences that join at one step with one seed (a
    request's `n` samples, `sample --num-samples`) read it once, in one row: a batch's step
    costs more the more rows it has, and a 10,000-character prompt is 10,000 steps.
    """

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.stepper = sampler.stepper
        self.state = self.stepper.zero_state(0)
        self.active: list[Generation] = []
        self._ended = False  # some active sequence has ended: drop it before the next step
        self._joined: dict[tuple[int, ...], Generation] = {}  # since the last step, by seed
        self._leaders: list[Generation] = []  # active sequences reading a seed for followers

    @property
    def size(self) -> int:
        """The sequences in the batch: its rows, and those waiting to share a row's seed."""
        return len(self.active) + sum(len(leader.followers) for leader in self._leaders)

    def join(self, seed: str | None, settings: SamplingSettings,
             on_text: Callable[[str], None] | None = None) -> Generation:
        """Add a sequence; its seed is checked (a TextgenError for unknown characters) and
        handed to `on_text` at once."""
        seed = self.sampler.prepare_seed(self.sampler.default_seed if seed is None else seed,
                                         settings.skip_unknown)
        ids = [int(i) for i in self.sampler.vocab.encode(seed)]
        generation = Generation(settings, ids[::-1], [seed], on_text)
        generation.last_id, generation.repeats = ids[-1], trailing_run(ids)
        generation.column = line_column(seed)
        generation.limits = self.sampler.limits_for(settings)
        # A stop text may begin in the seed (one that ends in "\n" and a stop at "\n\n"):
        # the limits let it be finished, so it must end the sample.
        generation.tail = seed[-generation.longest_stop:] if generation.longest_stop else ""
        if on_text:
            on_text(seed)
        leader = self._joined.setdefault(tuple(ids), generation)
        if leader is not generation:  # the same seed from the same step: read once
            if not leader.followers:
                self._leaders.append(leader)
            leader.followers.append(generation)
            return generation
        self.active.append(generation)
        self.state.extend(self.stepper.zero_state(1))
        return generation

    def cancel(self, generation: Generation) -> None:
        """End a sequence now (its client went away); its row leaves at the next step."""
        if not generation.done:
            generation.finish_reason = "cancelled"
            self._ended = True

    def step(self) -> list[Generation]:
        """Advance every active sequence by one character; returns those that ended."""
        self._joined.clear()  # who joins from now on reads from a later step
        if self._ended:
            self._drop_finished()
        if self._leaders:
            self._attach_followers()
        active = self.active
        if not active:
            return []
        ids = np.fromiter((g.feed.pop() for g in active), dtype=np.intp, count=len(active))
        with blas_threads:
            probs = blas_threads.timed(self.stepper.advance, self.state, ids)
        drawing = [i for i, g in enumerate(active) if not g.reading]
        if not drawing:
            return []
        rows = [active[i] for i in drawing]
        allowed = self.sampler.limited(probs[drawing], rows)
        for j, generation in enumerate(rows):
            if generation.generated < generation.longest_stop:  # its first characters
                banned = ending_empty(generation.tail, generation.settings.stop,
                                      generation.generated, self.sampler.vocab.index)
                if banned:
                    allowed[j] = without_ids(allowed[j], banned)
        chosen = self._draw(allowed, rows)
        chars = self.sampler.vocab.chars
        ended = [active[i] for i, next_id in zip(drawing, chosen, strict=True)
                 if active[i].accept(next_id, chars)]
        self._ended = self._ended or bool(ended)
        return ended

    @staticmethod
    def _draw(probs: np.ndarray, generations: list[Generation]) -> list[int]:
        """Each row's next character, drawn with its sequence's settings and generator."""
        return choose_next_ids(probs, [g.rng for g in generations],
                               [g.draw_settings for g in generations])

    def _attach_followers(self) -> None:
        """Give the followers of each leader about to read its seed's last character a copy
        of its row, to read that character themselves (and draw each on its own)."""
        ready = [leader for leader in self._leaders if len(leader.feed) == 1]
        for leader in ready:
            followers = [f for f in leader.followers if not f.done]  # cancelled while waiting
            leader.followers = []
            self._leaders.remove(leader)
            row = self.active.index(leader)
            for follower in followers:
                follower.feed = list(leader.feed)
            self.active += followers
            self.state.extend(self.state.rows_of([row] * len(followers)))

    def _drop_finished(self) -> None:
        for leader in [g for g in self._leaders if g.done]:  # cancelled while reading
            self._leaders.remove(leader)
            waiting = [f for f in leader.followers if not f.done]
            if waiting:  # the first that still waits takes its row and reads on
                heir = waiting[0]
                heir.feed, heir.followers = leader.feed, waiting[1:]
                self.active[self.active.index(leader)] = heir
                if heir.followers:
                    self._leaders.append(heir)
            leader.followers = []
        keep = [i for i, g in enumerate(self.active) if not g.done]
        if len(keep) < len(self.active):
            self.state.keep(keep)
            self.active = [self.active[i] for i in keep]
        self._ended = False

    def run(self) -> None:
        """Step until every sequence has ended (and has left the batch)."""
        while self.active:
            self.step()


# A sample without a seed starts after a new line, as a text's first line does (a run whose
# text has none records its first character instead: run.json's "default_seed").
DEFAULT_SEED = "\n"


@dataclass
class Sampler:
    """Generates text from a trained generator run."""

    vocab: Vocabulary
    stepper: NumpyStepper
    default_seed: str = DEFAULT_SEED
    run: RunDir | None = None
    # what text_limits keeps samples to (generate/limits.py); None for a run trained before
    # textgen recorded its text's limits
    limits: TextLimits | None = None

    # the limits widened by stop texts, one object for each distinct content, so that the
    # rows of a batch share them (one pass each, however many clients' stop texts)
    _widened: dict[bytes, TextLimits] = field(default_factory=dict, repr=False, compare=False)

    def limits_for(self, settings: SamplingSettings) -> TextLimits | None:
        """The text limits a sample with these settings keeps to (None: none), widened to
        its stop texts."""
        if self.limits is None or not settings.text_limits:
            return None
        widened = self.limits.with_stops(settings.stop, self.vocab)
        if widened is self.limits:
            return widened
        key = widened.key()
        if key not in self._widened and len(self._widened) < MAX_WIDENED_LIMITS:
            self._widened[key] = widened
        return self._widened.get(key, widened)

    def limited(self, probs: np.ndarray, generations: Sequence[Generation]) -> np.ndarray:
        """Rows of next-character probabilities without what each row's text limits rule
        out (rows with the same limits share one pass)."""
        groups: dict[int, tuple[TextLimits, list[int]]] = {}
        for i, generation in enumerate(generations):
            if generation.limits is not None:
                groups.setdefault(id(generation.limits), (generation.limits, []))[1].append(i)
        if not groups:
            return probs
        limited = probs.copy()
        for limits, rows in groups.values():
            limited[rows] = limits.limited(probs[rows], [generations[i].last_id for i in rows],
                                           [generations[i].repeats for i in rows],
                                           [generations[i].column for i in rows])
        return limited

    def prepare_settings(self, settings: SamplingSettings) -> SamplingSettings:
        """The settings with their stop texts read as the seed is: line ends as the model's
        (a client's "\r\n" stop never matched the "\n" the model writes), and in the
        Unicode form of its characters (Vocabulary.known_form)."""
        newlines = "\r" not in self.vocab.chars
        stop = tuple(self.vocab.known_form(normalise_newlines(t) if newlines else t)
                     for t in settings.stop)
        return settings if stop == settings.stop else replace(settings, stop=stop)

    def prepare_seed(self, seed: str, skip_unknown: bool = False) -> str:
        if "\r" not in self.vocab.chars:  # line ends read as the training text's were
            seed = normalise_newlines(seed)
        check_field(bool(seed), "seed", "is empty; give text to start from, or leave it out "
                    "for the run's default")
        seed = self.vocab.known_form(seed)
        unknown = self.vocab.unknown(seed)
        if unknown and not skip_unknown:
            # `--seed 'a\nb'` holds a backslash and an n (--stop reads such escapes, a seed not)
            typed = (" (\\n here is a backslash and an n, not a line break)"
                     if "\\" in unknown and "\\n" in seed else "")
            raise FieldError("seed", f"has characters the model never saw: "
                             f"{describe_chars(unknown)}{typed}; remove them or pass {{fix}} "
                             "to drop them", fix=("skip_unknown", True))
        if unknown:
            seed = "".join(c for c in seed if c not in set(unknown))
        check_field(bool(seed), "seed", "holds only characters the model never saw; give "
                    "text with characters from the training text")
        return seed

    def generate(
        self,
        seed: str | None = None,
        length: int = DEFAULT_SAMPLING.length,
        temperature: float = DEFAULT_SAMPLING.temperature,
        top_k: int | None = DEFAULT_SAMPLING.top_k,
        top_p: float | None = DEFAULT_SAMPLING.top_p,
        rng_seed: int | None = DEFAULT_SAMPLING.rng_seed,
        skip_unknown: bool = DEFAULT_SAMPLING.skip_unknown,
        on_text: Callable[[str], None] | None = None,
        stop: str | Sequence[str] = (),
        text_limits: bool = DEFAULT_SAMPLING.text_limits,
    ) -> str:
        """Return the seed followed by up to `length` generated characters (see
        SamplingSettings); generation ends early right after any text in `stop`.

        `on_text` is called with the seed, then with the new text as it is made, in pieces
        that end at each newline and hold at most CHUNK (32) characters.
        """
        settings = SamplingSettings(temperature, length, top_k, top_p, rng_seed, skip_unknown,
                                    stop, text_limits)
        return self.sample(seed, settings, on_text)

    def sample(self, seed: str | None, settings: SamplingSettings,
               on_text: Callable[[str], None] | None = None) -> str:
        """`generate` with the settings as one object."""
        return self.sample_with_reason(seed, settings, on_text).text

    def check_fits(self, count: int, length: int, count_field: str | None = None) -> None:
        """`count` samples of `length` characters are generated together: their states,
        probabilities and texts must fit in half the memory available (the rest for the
        model and Python), else a FieldError saying what would fit: fewer samples where the
        caller has a `count_field` (the CLI's num_samples), else a shorter length."""
        from textgen.reading import available_memory, gigabytes

        c = self.stepper.config
        fixed = 4 * (c.layers * c.units * (c.cell.gates + 2) + 2 * c.vocab_size)  # float32
        per_sample = fixed + 8 * length  # 8: a pointer per character kept
        available = available_memory()
        if available is None or count * per_sample <= available / 2:
            return
        size = f"about {gigabytes(count * per_sample)}"
        half = f"more than half the {gigabytes(available)} available"
        fits = int(available / 2 // per_sample)
        if count > 1 and fits >= 1 and count_field is not None:
            raise FieldError(count_field, f"{count:,} of {length:,} characters need {size}, "
                             f"{half}; use {{fix}} or less", fix=(count_field, fits))
        longest = max(1, int((available / 2 / count - fixed) // 8))
        samples = f"{count:,} sample{'s' if count != 1 else ''}"
        raise FieldError("length", f"{length:,} needs {size} for {samples}, {half}; use {{fix}} "
                         "or less", fix=("length", longest))

    def sample_with_reason(self, seed: str | None, settings: SamplingSettings,
                           on_text: Callable[[str], None] | None = None) -> Sample:
        """`sample`, also saying why the text ended."""
        return self.sample_many([seed], [settings], [on_text])[0]

    def sample_many(self, seeds: Sequence[str | None], settings: Sequence[SamplingSettings],
                    on_text: Sequence[Callable[[str], None] | None] | None = None,
                    on_end: Callable[[int], None] | None = None) -> list[Sample]:
        """Several samples generated together, one step for all (GenerationBatch): each the
        text it gets alone with its settings, up to floating-point rounding (NumPy's product
        of one row and of several rows differ in their last bits, and a long sample's
        recurrence can carry that into another draw). `on_text[i]` gets sample i's text as it comes
        (the seed first, then pieces of at most a line: each character as it is drawn, or
        as `generate` says for one sample); `on_end(i)` is called as sample i
        ends. One sample runs alone (`_sample_alone`: the same text, fewer steps of
        bookkeeping)."""
        _check_sequences(seeds=seeds, settings=settings, on_text=on_text)
        check_field(on_end is None or callable(on_end), "on_end",
                    f"must be a function taking the sample's index, or None; got {on_end!r}")
        callbacks = list(on_text) if on_text is not None else [None] * len(seeds)
        _check_samples(seeds, settings, callbacks)
        settings = [self.prepare_settings(s) for s in settings]
        self.check_fits(len(seeds), max((s.length for s in settings), default=0))
        if len(seeds) == 1:
            results = [self._sample_alone(seeds[0], settings[0], callbacks[0])]
            if on_end:
                on_end(0)
            return results
        batch = GenerationBatch(self)
        generations = [batch.join(seed, s, callback)
                       for seed, s, callback in zip(seeds, settings, callbacks, strict=True)]
        index = {id(g): i for i, g in enumerate(generations)}
        while batch.active:
            for ended in batch.step():
                if on_end:
                    on_end(index[id(ended)])
        return [g.result() for g in generations]

    def _sample_alone(self, seed: str | None, settings: SamplingSettings,
                      on_text: Callable[[str], None] | None) -> Sample:
        """One sequence: one step of the recurrence per character and nothing else per
        character (its text goes to `on_text` a line, or CHUNK characters, at a time)."""
        seed = self.prepare_seed(self.default_seed if seed is None else seed,
                                 settings.skip_unknown)
        with blas_threads.one():
            return self._steps_alone(seed, settings, on_text)

    def _steps_alone(self, seed: str, settings: SamplingSettings,
                        on_text: Callable[[str], None] | None) -> Sample:
        ids = self.vocab.encode(seed).astype(np.intp)
        if on_text:
            on_text(seed)
        advance, state = self.stepper.advance, self.stepper.zero_state(1)
        for i in range(len(ids) - 1):
            advance(state, ids[i : i + 1])
        probs = advance(state, ids[-1:])[0]
        draw = row_drawer(Uniforms(settings.rng_seed), settings.temperature, settings.top_k,
                          settings.top_p)
        chars, stops, out = self.vocab.chars, settings.stop, []
        longest = max((len(t) for t in stops), default=0)
        tail = seed[-longest:] if longest else ""  # a stop text may begin in the seed
        index = self.vocab.index
        reason, written = "length", 0
        next_id = np.zeros(1, np.intp)
        limits = self.limits_for(settings)
        if limits is not None:  # TextLimits.limited on one row, at least work per step
            runs, newline = limits.longest_runs, limits.newline
            in_text = (runs > 0).astype(np.float32) if (runs == 0).any() else None
            line_start = limits.allowed_after(newline).astype(np.float32)
            last, repeats, column = int(ids[-1]), trailing_run(ids), line_column(seed)
            longest_line, space, line_end = limits.longest_line, limits.space, limits.line_end
        for n in range(1, settings.length + 1):
            if limits is not None:
                mask = line_start if last == newline else in_text
                allowed = probs if mask is None else probs * mask
                if repeats >= runs[last]:
                    allowed = allowed.copy() if allowed is probs else allowed
                    allowed[last] = 0.0
                if longest_line and column >= longest_line:
                    allowed = allowed.copy() if allowed is probs else allowed
                    if space >= 0:
                        allowed[newline] += allowed[space]
                        allowed[space] = 0.0
                    if column >= line_end:
                        allowed[:] = 0.0
                        allowed[newline] = 1.0
                if allowed is not probs and allowed.max() > 0:
                    probs = allowed
            if n <= longest:  # its first characters: never a stop text that leaves it empty
                banned = ending_empty(tail, stops, n - 1, index)
                if banned:
                    probs = without_ids(probs, banned)
            next_id[0] = draw(probs)
            if limits is not None:
                repeats = repeats + 1 if next_id[0] == last else 1
                last = int(next_id[0])
                column = 0 if last == newline else column + 1
            char = chars[next_id[0]]
            out.append(char)
            if stops:
                tail = (tail + char)[-longest:]
                if any(tail.endswith(t) for t in stops):
                    reason = "stop"
                    break
            if on_text and (char == "\n" or n - written >= CHUNK):
                on_text("".join(out[written:]))
                written = n
            if n < settings.length:  # the last character needs no step after it
                probs = advance(state, next_id)[0]
        if on_text and written < len(out):
            on_text("".join(out[written:]))
        return Sample(seed + "".join(out), reason)


def ending_empty(tail: str, stops: Sequence[str], generated: int, index: dict[str, int]
                 ) -> list[int]:
    """The ids that would complete a stop text with nothing of the sample's own before it:
    one begun in the seed (a seed ending in a line break, a stop at a blank line), or the
    first characters making a whole stop text. Ruled out, so that a sample never ends empty
    (a chat reply would be ''). `tail` is the text so far (the seed's end included)."""
    return [index[t[-1]] for t in stops
            if len(t) > generated and tail.endswith(t[:-1]) and t[-1] in index]


def without_ids(probs: np.ndarray, ids: list[int]) -> np.ndarray:
    """A row of probabilities without `ids`; the row as it was if nothing would be left."""
    kept = probs.copy()
    kept[ids] = 0.0
    return kept if kept.max() > 0 else probs


def load_sampler(model: ModelChoice | RunDir | str | Path | Any | None = None,
                 checkpoint: Checkpoint | str = SAMPLE_CHECKPOINT,
                 checkpoint_dir: str | Path | None = None) -> Sampler:
    """A Sampler for a generator run: a run folder, a run name under `checkpoint_dir`, or a
    `.keras` file inside a run (that file), a ModelChoice or train_generator's result; None is
    the latest generator run. `checkpoint` picks a run's file: last (default) or best."""
    chosen = find_model(model, checkpoint_dir, Mode.generate, checkpoint)
    run, meta = chosen.run, chosen.meta
    config = GeneratorConfig.from_dict(meta["config"], str(run.meta))
    vocab = read_vocabulary(run, config)
    weights = load_generator_weights(chosen.file)
    check_run_weights(config, weights, chosen.file, run)
    stepper = NumpyStepper(config, weights)
    return Sampler(vocab, stepper, meta.get("default_seed", DEFAULT_SEED), run,
                   TextLimits.of_run(vocab, meta))


def line_column(text: str) -> int:
    """How many characters the text's last line has so far."""
    return len(text) - text.rfind("\n") - 1


def trailing_run(ids: Sequence[int]) -> int:
    """How many times the last id repeats at the end of `ids`."""
    count = 1
    while count < len(ids) and ids[-count - 1] == ids[-1]:
        count += 1
    return count
