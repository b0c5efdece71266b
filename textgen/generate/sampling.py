"""Choosing the next character (temperature, top-k, top-p) and the generation loop.

Sampling runs the recurrence one character at a time in NumPy from the weights in the saved
`.keras` file, carrying the recurrent state between steps: no TensorFlow import, so a cold
`textgen sample` starts in well under a second and each character costs one step.
tests/test_sampling.py checks that it matches the Keras model's probabilities.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.errors import TextgenError, check
from textgen.generate.config import Cell, GeneratorConfig
from textgen.generate.data import Vocabulary, describe_chars
from textgen.runs import Checkpoint, RunDir, find_model, load_keras_model


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

    RANGES = {"temperature": "a number >= 0 (0 = greedy)", "length": "a whole number >= 1",
              "top_k": "a whole number >= 1, or off", "top_p": "a number in (0, 1], or off",
              "rng_seed": "a whole number, or off", "skip_unknown": "on or off"}

    def __post_init__(self) -> None:
        t, k, p = self.temperature, self.top_k, self.top_p
        check(isinstance(t, int | float) and math.isfinite(t) and t >= 0,
              f"--temperature must be {self.RANGES['temperature']}, got {t}")
        check(k is None or k >= 1, f"--top-k must be >= 1, got {k}")
        check(p is None or 0 < p <= 1, f"--top-p must be in (0, 1], got {p}")
        check(self.length >= 1, f"--length must be >= 1, got {self.length}")
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", stops)  # frozen: set once, normalised
        check(all(isinstance(t, str) and t for t in self.stop),
              "--stop needs a non-empty text, e.g. --stop '\\n\\n'")


@dataclass(frozen=True)
class Sample:
    """A generated text (the seed first) and why it ended: "stop" (a stop text was generated)
    or "length" (--length characters were generated)."""

    text: str
    finish_reason: str


DEFAULT_SAMPLING = SamplingSettings()
# Sampling uses the latest epoch by default: on a short text the validation loss (on its
# unseen end) is lowest early, long before the model has learnt the text.
SAMPLE_CHECKPOINT = Checkpoint.last


DrawSettings = tuple[float, int | None, float | None]  # (temperature, top_k, top_p) of a row


def next_char_distributions(probs: np.ndarray, settings: Sequence[DrawSettings]) -> np.ndarray:
    """Reshape rows of next-character distributions, each with its own (temperature, top_k,
    top_p): temperature, then top-k, then top-p (nucleus); None is off.

    Every operation is row by row, so a row's result does not depend on the other rows (a
    request's text is the same alone and in a batch). Temperature 0 puts all mass on the
    argmax (greedy) instead of dividing by zero.
    """
    rows, vocab = probs.shape
    # p ** (1/T), scaled by each row's largest first so that nothing overflows or vanishes
    out = np.asarray(probs, dtype=np.float64) / probs.max(axis=1, keepdims=True)
    out **= np.array([[1.0 / (t or 1.0)] for t, _, _ in settings])
    top_k = [vocab if k is None else min(k, vocab) for _, k, _ in settings]
    if min(top_k) < vocab:
        cutoff = -np.sort(-out, axis=1)[np.arange(rows), np.array(top_k) - 1]
        out[out < cutoff[:, None]] = 0.0
    out /= np.cumsum(out, axis=1)[:, -1:]
    nucleus = [i for i, (_, _, p) in enumerate(settings) if p is not None and p < 1]
    if nucleus:
        top_p = np.array([[settings[i][2]] for i in nucleus])
        some = out[nucleus]
        order = np.argsort(-some, axis=1, kind="stable")
        cumulative = np.cumsum(np.take_along_axis(some, order, axis=1), axis=1)
        keep = (cumulative < top_p).sum(axis=1, keepdims=True) + 1  # smallest prefix >= p
        kept = np.zeros_like(some, dtype=bool)
        np.put_along_axis(kept, order, np.arange(vocab) < keep, axis=1)
        some[~kept] = 0.0
        out[nucleus] = some / np.cumsum(some, axis=1)[:, -1:]
    greedy = [i for i, (t, _, _) in enumerate(settings) if t == 0]
    if greedy:
        out[greedy] = 0.0
        out[greedy, probs[greedy].argmax(axis=1)] = 1.0
    return out


def choose_next_ids(probs: np.ndarray, rngs: Sequence[np.random.Generator],
                    settings: Sequence[DrawSettings]) -> list[int]:
    """Draw each row's next character id with its own generator and settings (inverse-CDF
    sampling: one uniform draw per non-greedy row, none for a greedy one)."""
    cumulative = np.cumsum(next_char_distributions(probs, settings), axis=1)
    draws = np.array([0.0 if t == 0 else rng.random()
                      for rng, (t, _, _) in zip(rngs, settings, strict=True)])
    # the greedy rows' distributions are one-hot: a draw of 0 picks the argmax
    chosen = (cumulative <= (draws * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(chosen, probs.shape[1] - 1).tolist()


def next_char_distribution(probs: np.ndarray, temperature: float, top_k: int | None = None,
                           top_p: float | None = None) -> np.ndarray:
    """One distribution reshaped (see next_char_distributions)."""
    return next_char_distributions(np.asarray(probs)[None, :],
                                   [(temperature, top_k, top_p)])[0]


def choose_next(probs: np.ndarray, rng: np.random.Generator, temperature: float,
                top_k: int | None = None, top_p: float | None = None) -> int:
    """Draw one next character id (see choose_next_ids)."""
    return choose_next_ids(np.asarray(probs)[None, :], [rng],
                           [(temperature, top_k, top_p)])[0]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # exact and overflow-free


@dataclass
class RecurrentState:
    """The recurrent state of a batch of sequences: per layer, h (and c for an LSTM) with one
    row per sequence. Rows join and leave as sequences start and end."""

    h: list[np.ndarray]  # per layer (rows, units)
    c: list[np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.h[0])

    def keep(self, rows: np.ndarray | list[int]) -> None:
        """Keep only these rows, in this order."""
        self.h = [h[rows] for h in self.h]
        self.c = [c[rows] for c in self.c]

    def extend(self, other: RecurrentState) -> None:
        """Add the other state's rows after these."""
        self.h = [np.concatenate([a, b]) for a, b in zip(self.h, other.h, strict=True)]
        self.c = [np.concatenate([a, b]) for a, b in zip(self.c, other.c, strict=True)]


class NumpyStepper:
    """The generator's one-step recurrence in NumPy: feed one id per sequence, get each one's
    next-character probabilities.

    float32 like Keras. The first layer's input projection is precomputed for every character
    (embedding @ kernel + bias is a vocab x gates table), so a step costs one matrix product
    per layer plus the output layer, for one sequence or for a batch of them (`advance`: the
    batch shares the weight reads, which is what makes serving many sequences at once cheap).
    """

    def __init__(self, config: GeneratorConfig, weights: list[np.ndarray]):
        per_layer = 3
        expected = 1 + per_layer * config.layers + 2
        if len(weights) != expected:
            raise ValueError(f"expected {expected} weight arrays, got {len(weights)}")
        w = [np.asarray(a, dtype=np.float32) for a in weights]
        self.config = config
        self.cell = Cell(config.cell)
        embedding = w[0]
        self.cells = [tuple(w[1 + per_layer * i : 1 + per_layer * (i + 1)])
                      for i in range(config.layers)]
        self.dense_kernel, self.dense_bias = w[-2], w[-1]
        self._check_shapes(embedding)
        kernel, _, bias = self.cells[0]
        input_bias = bias[0] if self.cell == Cell.gru else bias
        self.first_input = embedding @ kernel + input_bias  # (vocab, gates * units)
        self.reset()

    def _check_shapes(self, embedding: np.ndarray) -> None:
        c = self.config
        gates = self.cell.gates
        ok = embedding.shape == (c.vocab_size, c.embed_dim)
        ok &= self.dense_kernel.shape == (c.units, c.vocab_size)
        for i, (kernel, recurrent, _bias) in enumerate(self.cells):
            ok &= kernel.shape == (c.embed_dim if i == 0 else c.units, gates * c.units)
            ok &= recurrent.shape == (c.units, gates * c.units)
        if not ok:
            raise ValueError("weight shapes do not match the run's hyper-parameters")

    def zero_state(self, rows: int = 1) -> RecurrentState:
        units = self.config.units
        return RecurrentState([np.zeros((rows, units), np.float32) for _ in self.cells],
                              [np.zeros((rows, units), np.float32) for _ in self.cells])

    def reset(self) -> None:
        """Start the one-sequence state of `step` again."""
        self.state = self.zero_state(1)

    def step(self, char_id: int) -> np.ndarray:
        """One sequence: advance by one character; return the next-character probabilities."""
        return self.advance(self.state, np.array([char_id]))[0]

    def advance(self, state: RecurrentState, char_ids: np.ndarray) -> np.ndarray:
        """Advance each row of `state` by its character (in place); (rows, vocab)
        next-character probabilities."""
        u = self.config.units
        x = None
        for i, (kernel, recurrent, bias) in enumerate(self.cells):
            h = state.h[i]
            if self.cell == Cell.simplernn:
                z = self.first_input[char_ids] if i == 0 else x @ kernel + bias
                state.h[i] = np.tanh(z + h @ recurrent)
            elif self.cell == Cell.lstm:  # gates i, f, c, o
                z = self.first_input[char_ids] if i == 0 else x @ kernel + bias
                z = z + h @ recurrent
                in_forget, out = _sigmoid(z[:, : 2 * u]), _sigmoid(z[:, 3 * u :])
                state.c[i] = (in_forget[:, u:] * state.c[i]
                              + in_forget[:, :u] * np.tanh(z[:, 2 * u : 3 * u]))
                state.h[i] = out * np.tanh(state.c[i])
            else:  # GRU, Keras default reset_after=True: bias rows are (input, recurrent)
                xs = self.first_input[char_ids] if i == 0 else x @ kernel + bias[0]
                hs = h @ recurrent + bias[1]
                zr = _sigmoid(xs[:, : 2 * u] + hs[:, : 2 * u])
                candidate = np.tanh(xs[:, 2 * u :] + zr[:, u:] * hs[:, 2 * u :])
                state.h[i] = zr[:, :u] * h + (1 - zr[:, :u]) * candidate
            x = state.h[i]
        logits = x @ self.dense_kernel + self.dense_bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _snake_case(name: str) -> str:
    """Keras' HDF5 group name for a layer class: LSTM -> lstm, InputLayer -> input_layer."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras_weights(path: Path) -> list[np.ndarray]:
    """The generator's weights from a `.keras` file, in `model.get_weights()` order.

    Reads the zip's config.json for the layer order and model.weights.h5 for the arrays (Keras
    names a layer's HDF5 group after its class, numbered when repeated). No code is run.
    """
    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights_h5 = io.BytesIO(archive.read("model.weights.h5"))
    seen: dict[str, int] = {}
    arrays: list[np.ndarray] = []
    with h5py.File(weights_h5, "r") as h5:
        for layer in config["config"]["layers"]:
            base = _snake_case(layer["class_name"])
            key = base if base not in seen else f"{base}_{seen[base]}"
            seen[base] = seen.get(base, 0) + 1
            group = h5["layers"][key]
            if "cell" in group:
                group = group["cell"]
            variables = group["vars"]
            arrays.extend(np.array(variables[str(i)]) for i in range(len(variables)))
    return arrays


def load_generator_weights(path: Path) -> list[np.ndarray]:
    """Weights for sampling: read directly when possible, else through Keras (safe mode)."""
    if not path.is_file():
        raise TextgenError(f"{path}: missing model file; train or resume the run to write it")
    try:
        return read_keras_weights(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError):
        return load_keras_model(path).get_weights()


def read_vocabulary(run: RunDir) -> Vocabulary:
    try:
        return Vocabulary.from_json(run.vocab.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TextgenError(f"{run.vocab}: missing; the run cannot be used without its "
                           "vocabulary (retrain it)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TextgenError(f"{run.vocab}: not a valid vocabulary file ({exc})") from exc


@dataclass(eq=False)
class Generation:
    """One sequence being generated: its settings, its own random generator, what it still
    has to read (the seed, then each character it draws) and what it has written."""

    settings: SamplingSettings
    feed: list[int]  # ids to read before the next draw, last first (a stack): the seed at first
    text: list[str]
    on_text: Callable[[str], None] | None = None
    rng: np.random.Generator = None
    finish_reason: str | None = None  # "stop" or "length" once ended, "cancelled"
    generated: int = 0
    tail: str = ""  # the end of the generated part (never the seed), as long as a stop text

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.settings.rng_seed)
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
        return self.finish_reason is not None


class GenerationBatch:
    """Sequences generated together (continuous batching): one NumPy step advances every
    active sequence, each with its own settings and random generator, so a sequence's text
    does not depend on what else is in the batch. Sequences join at any step (`join`) and
    leave when they end or are cancelled; a joining sequence reads its seed one character a
    step beside the others' generation.
    """

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.stepper = sampler.stepper
        self.state = self.stepper.zero_state(0)
        self.active: list[Generation] = []
        self._ended = False  # some active sequence has ended: drop it before the next step

    def join(self, seed: str | None, settings: SamplingSettings,
             on_text: Callable[[str], None] | None = None) -> Generation:
        """Add a sequence; its seed is checked (a TextgenError for unknown characters) and
        handed to `on_text` at once."""
        seed = self.sampler.prepare_seed(self.sampler.default_seed if seed is None else seed,
                                         settings.skip_unknown)
        ids = [int(i) for i in self.sampler.vocab.encode(seed)]
        generation = Generation(settings, ids[::-1], [seed], on_text)
        if on_text:
            on_text(seed)
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
        if self._ended:
            self._drop_finished()
        active = self.active
        if not active:
            return []
        ids = np.fromiter((g.feed.pop() for g in active), dtype=np.intp, count=len(active))
        probs = self.stepper.advance(self.state, ids)
        drawing = [i for i, g in enumerate(active) if not g.reading]
        if not drawing:
            return []
        chosen = self._draw(probs[drawing], [active[i] for i in drawing])
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

    def _drop_finished(self) -> None:
        keep = [i for i, g in enumerate(self.active) if not g.done]
        if len(keep) < len(self.active):
            self.state.keep(keep)
            self.active = [self.active[i] for i in keep]
        self._ended = False

    def run(self) -> None:
        """Step until every sequence has ended (and has left the batch)."""
        while self.active:
            self.step()


@dataclass
class Sampler:
    """Generates text from a trained generator run."""

    vocab: Vocabulary
    stepper: NumpyStepper
    default_seed: str = "\n"
    run: RunDir | None = None

    def prepare_seed(self, seed: str, skip_unknown: bool = False) -> str:
        unknown = self.vocab.unknown(seed)
        if unknown and not skip_unknown:
            raise TextgenError(
                f"the seed has characters the model never saw: {describe_chars(unknown)}; "
                "change the seed or pass --skip-unknown to drop them"
            )
        if unknown:
            seed = "".join(c for c in seed if c not in set(unknown))
        if not seed:
            raise TextgenError("the seed is empty (after dropping unknown characters); "
                               "give a seed with characters from the training text")
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
    ) -> str:
        """Return the seed followed by up to `length` generated characters (see
        SamplingSettings); generation ends early right after any text in `stop`.

        `on_text` is called with the seed and then with each new character as it is made.
        """
        settings = SamplingSettings(temperature, length, top_k, top_p, rng_seed, skip_unknown,
                                    stop)
        return self.sample(seed, settings, on_text)

    def sample(self, seed: str | None, settings: SamplingSettings,
               on_text: Callable[[str], None] | None = None) -> str:
        """`generate` with the settings as one object."""
        return self.sample_with_reason(seed, settings, on_text).text

    def sample_with_reason(self, seed: str | None, settings: SamplingSettings,
                           on_text: Callable[[str], None] | None = None) -> Sample:
        """`sample`, also saying why the text ended."""
        return self.sample_many([seed], [settings], [on_text])[0]

    def sample_many(self, seeds: Sequence[str | None], settings: Sequence[SamplingSettings],
                    on_text: Sequence[Callable[[str], None] | None] | None = None
                    ) -> list[Sample]:
        """Several samples generated together, one step for all (GenerationBatch): each the
        same text as alone with its settings. `on_text[i]` gets sample i's text as it comes."""
        batch = GenerationBatch(self)
        callbacks = list(on_text) if on_text is not None else [None] * len(seeds)
        generations = [batch.join(seed, s, callback)
                       for seed, s, callback in zip(seeds, settings, callbacks, strict=True)]
        batch.run()
        return [g.result() for g in generations]


def load_sampler(model: RunDir | str | Path | None = None,
                 which: Checkpoint | str = SAMPLE_CHECKPOINT,
                 checkpoint_dir: Path | None = None) -> Sampler:
    """A Sampler for a generator run: a run folder, a run name under `checkpoint_dir`, or a
    `.keras` file inside a run (that file); None is the latest generator run."""
    if isinstance(model, RunDir):
        model = model.path
    chosen = find_model(model, checkpoint_dir, "generate", which)
    run, meta = chosen.run, chosen.meta
    vocab = read_vocabulary(run)
    config = GeneratorConfig.from_dict(meta["config"], str(run.meta))
    if config.vocab_size != len(vocab):
        raise TextgenError(f"{run.vocab}: has {len(vocab)} characters but the model expects "
                           f"{config.vocab_size}; the run folder is inconsistent")
    try:
        stepper = NumpyStepper(config, load_generator_weights(chosen.file))
    except ValueError as exc:
        raise TextgenError(f"{chosen.file}: does not match {run.meta.name} ({exc})") from exc
    return Sampler(vocab, stepper, meta.get("default_seed", "\n"), run)
