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


def next_char_distribution(probs: np.ndarray, temperature: float, top_k: int | None = None,
                           top_p: float | None = None) -> np.ndarray:
    """Reshape a next-character distribution: temperature, then top-k, then top-p (nucleus).

    Temperature 0 puts all mass on the argmax (greedy) instead of dividing by zero.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if temperature == 0:
        out = np.zeros_like(probs)
        out[int(np.argmax(probs))] = 1.0
        return out
    # p ** (1/T), scaled by the largest first so that nothing overflows or vanishes
    out = probs.copy() if temperature == 1 else (probs / probs.max()) ** (1.0 / temperature)
    if top_k is not None and top_k < len(out):
        cutoff = np.partition(out, -top_k)[-top_k]
        out[out < cutoff] = 0.0
    out /= out.sum()
    if top_p is not None and top_p < 1:
        order = np.argsort(-out, kind="stable")
        cumulative = np.cumsum(out[order])
        keep = int(np.searchsorted(cumulative, top_p)) + 1  # smallest prefix reaching top_p
        mask = np.zeros_like(out, dtype=bool)
        mask[order[:keep]] = True
        out[~mask] = 0.0
        out /= out.sum()
    return out


def choose_next(probs: np.ndarray, rng: np.random.Generator, temperature: float,
                top_k: int | None = None, top_p: float | None = None) -> int:
    """Draw the next character id (inverse-CDF sampling: one uniform draw per character)."""
    if temperature == 0:
        return int(np.argmax(probs))
    dist = next_char_distribution(probs, temperature, top_k, top_p)
    cumulative = np.cumsum(dist)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(dist) - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # exact and overflow-free


class NumpyStepper:
    """The generator's one-step recurrence in NumPy: feed one id, get next-char probabilities.

    float32 like Keras. The first layer's input projection is precomputed for every character
    (embedding @ kernel + bias is a vocab x gates table), so a step costs one matrix-vector
    product per layer plus the output layer.
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

    def reset(self) -> None:
        units = self.config.units
        self.h = [np.zeros(units, np.float32) for _ in self.cells]
        self.c = [np.zeros(units, np.float32) for _ in self.cells]

    def step(self, char_id: int) -> np.ndarray:
        """Advance the state by one character; return the next-character probabilities."""
        u = self.config.units
        x = None
        for i, (kernel, recurrent, bias) in enumerate(self.cells):
            h = self.h[i]
            if self.cell == Cell.simplernn:
                z = self.first_input[char_id] if i == 0 else x @ kernel + bias
                self.h[i] = np.tanh(z + h @ recurrent)
            elif self.cell == Cell.lstm:  # gates i, f, c, o
                z = self.first_input[char_id] if i == 0 else x @ kernel + bias
                z = z + h @ recurrent
                ifo = _sigmoid(z[: 2 * u]), _sigmoid(z[3 * u :])
                self.c[i] = ifo[0][u:] * self.c[i] + ifo[0][:u] * np.tanh(z[2 * u : 3 * u])
                self.h[i] = ifo[1] * np.tanh(self.c[i])
            else:  # GRU, Keras default reset_after=True: bias rows are (input, recurrent)
                xs = self.first_input[char_id] if i == 0 else x @ kernel + bias[0]
                hs = h @ recurrent + bias[1]
                zr = _sigmoid(xs[: 2 * u] + hs[: 2 * u])
                candidate = np.tanh(xs[2 * u :] + zr[u:] * hs[2 * u :])
                self.h[i] = zr[:u] * h + (1 - zr[:u]) * candidate
            x = self.h[i]
        logits = x @ self.dense_kernel + self.dense_bias
        e = np.exp(logits - logits.max())
        return e / e.sum()


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
        s = settings
        seed = self.prepare_seed(self.default_seed if seed is None else seed, s.skip_unknown)
        rng = np.random.default_rng(s.rng_seed)
        self.stepper.reset()
        probs = None
        for char_id in self.vocab.encode(seed):
            probs = self.stepper.step(int(char_id))
        if on_text:
            on_text(seed)
        out = [seed]
        longest_stop = max((len(t) for t in s.stop), default=0)
        tail = ""  # the end of the generated part (never the seed), as long as a stop text
        for _ in range(s.length):
            next_id = choose_next(probs, rng, s.temperature, s.top_k, s.top_p)
            char = self.vocab.chars[next_id]
            out.append(char)
            if on_text:
                on_text(char)
            if longest_stop:
                tail = (tail + char)[-longest_stop:]
                if any(tail.endswith(t) for t in s.stop):
                    return Sample("".join(out), "stop")
            probs = self.stepper.step(next_id)
        return Sample("".join(out), "length")


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
