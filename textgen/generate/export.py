"""Generate mode's part of `textgen export`: a TensorFlow module whose `generate(seed, length,
temperature, rng_seed, top_k, top_p) -> text` writes the same text `textgen sample` writes for
the same arguments (keeping to the training text's characters, runs and lines, as sample does
by default).

It runs the Keras model (built with its state as input and output, in float32 as the NumPy
sampler computes) one character at a time, and draws as textgen.generate.drawing does: the
same reshaping (temperature, top-k, top-p, in float64) and the same counter-based uniforms
(splitmix64), so the two agree character for character.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from textgen.generate.config import GeneratorConfig, Precision
from textgen.generate.data import Vocabulary
from textgen.generate.drawing import GOLDEN_GAMMA, MIX_1, MIX_2, UNIFORM_BITS
from textgen.generate.limits import TextLimits
from textgen.generate.model import build_generator
from textgen.generate.sampling import DEFAULT_SEED, read_vocabulary
from textgen.generate.stepper import check_run_weights, load_generator_weights
from textgen.runs import ModelChoice
from textgen.tf_setup import import_tensorflow

# The most characters one `generate` call writes: the text is built in an array of one
# string per character, allocated up front, so a length of 2**31 would abort the process.
MAX_LENGTH = 1_000_000


def generator_module(model: ModelChoice) -> tuple[Any, dict[str, Any]]:
    """The tf.Module of a generator run and its signatures (`generate`, `serving_default`)."""
    config = GeneratorConfig.from_dict(model.meta["config"], str(model.run.meta))
    vocab = read_vocabulary(model.run, config)
    weights = load_generator_weights(model.file)
    check_run_weights(config, weights, model.file, model.run)
    module = sampling_module(config, vocab, weights,
                             model.meta.get("default_seed", DEFAULT_SEED),
                             TextLimits.of_run(vocab, model.meta))
    return module, {"serving_default": module.generate, "generate": module.generate}


def sampling_module(config: GeneratorConfig, vocab: Vocabulary, weights: list,
                    default_seed: str, text_limits: TextLimits | None = None) -> Any:
    """A tf.Module whose `generate` signature samples from the model with these weights (and,
    given the text's limits, keeps to them: TextLimits.limited)."""
    tf = import_tensorflow()
    stream = build_generator(config, with_states=True, precision=Precision.float32)
    stream.set_weights(weights)
    size = len(vocab)
    limits = tf.constant([2**62] * size if text_limits is None else  # None: no limits
                         [int(n) for n in text_limits.longest_runs], tf.int64)
    in_text = tf.cast(limits > 0, tf.float32)
    newline = -1 if text_limits is None else text_limits.newline
    line_start = in_text if text_limits is None else tf.constant(
        text_limits.allowed_after(newline), tf.float32)
    lines = TextLimits(np.zeros(0)) if text_limits is None else text_limits  # 0: no line rule
    to_newline = tf.one_hot(newline, size)  # all zeros where there is no "\n"
    space_to_newline = to_newline - tf.one_hot(lines.space, size)

    def limited(probs, last, repeats, column):
        """TextLimits.limited for one row: no character the text lacks, a line started as
        the text's lines start, not the last character once its run is as long as the
        text's longest, a line ended past the text's longest; all of it if nothing is
        left."""
        allowed = probs * tf.where(last == newline, line_start, in_text)
        allowed = tf.where((tf.range(size) == last) & (repeats >= limits[last]),
                           tf.zeros_like(allowed), allowed)
        if lines.longest_line:
            if lines.space >= 0:  # exact: adds the space's share to "\n" and 0 elsewhere
                moved = tf.where(column >= lines.longest_line, allowed[lines.space], 0.0)
                allowed = allowed + moved * space_to_newline
            allowed = tf.where(column >= lines.line_end, to_newline, allowed)
        return tf.where(tf.reduce_max(allowed) > 0, allowed, probs)

    def uniform(seed, count):
        """Draw `count` (1-based) of the stream seeded `seed` (uint64): drawing.Uniforms."""
        def mix(z, shift):  # z ^ (z >> shift), in uint64
            return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(shift,
                                                                                tf.uint64)))

        z = seed + count * tf.constant(GOLDEN_GAMMA, tf.uint64)
        z = mix(z, 30) * tf.constant(MIX_1, tf.uint64)
        z = mix(z, 27) * tf.constant(MIX_2, tf.uint64)
        z = mix(z, 31)
        bits = tf.bitwise.right_shift(z, tf.constant(64 - UNIFORM_BITS, tf.uint64))
        return tf.cast(bits, tf.float64) / float(1 << UNIFORM_BITS)

    def distribution(probs, temperature, top_k, top_p):
        """drawing.next_char_distributions for one row (float64)."""
        out = tf.cast(probs, tf.float64) / tf.cast(tf.reduce_max(probs), tf.float64)
        power = tf.where(temperature > 0, 1.0 / temperature, tf.constant(1.0, tf.float64))
        # a character the limits ruled out stays out: past 1e308 the power is a subnormal,
        # flushed to 0 on CPUs, and 0 ** 0 is 1
        out = tf.where(out > 0, out ** power, tf.zeros_like(out))
        k = tf.clip_by_value(top_k, 1, size)
        cutoff = tf.math.top_k(out, k=k).values[k - 1]
        out = tf.where((top_k > 0) & (top_k < size) & (out < cutoff), tf.zeros_like(out), out)
        out = out / tf.cumsum(out)[-1]
        order = tf.argsort(-out, stable=True)
        cumulative = tf.cumsum(tf.gather(out, order))
        keep = tf.reduce_sum(tf.cast(cumulative < top_p, tf.int32)) + 1
        kept = tf.scatter_nd(order[:, None], tf.range(size) < keep, [size])
        nucleus = tf.where(kept, out, tf.zeros_like(out))
        nucleus = nucleus / tf.cumsum(nucleus)[-1]
        out = tf.where((top_p > 0) & (top_p < 1), nucleus, out)
        greedy = tf.one_hot(tf.argmax(probs), size, dtype=tf.float64)
        return tf.where(temperature > 0, out, greedy)

    def _checked(length, temperature, top_k, top_p):
        """The arguments, once checked: every op that uses them waits for the checks."""
        checks = ((length >= 1, "length must be >= 1"),
                  (length <= MAX_LENGTH, f"length must be <= {MAX_LENGTH} (call again with "
                                         "the text's end as the seed for more)"),
                  ((temperature >= 0) & tf.math.is_finite(temperature),
                   "temperature must be a finite number >= 0 (0 = greedy)"),
                  (top_k >= 0, "top_k must be >= 1, or 0 for off"),
                  ((top_p >= 0) & (top_p <= 1), "top_p must be in (0, 1], or 0 for off"))
        # NaN compares false: refused too.
        asserts = [tf.debugging.Assert(ok, [message]) for ok, message in checks]
        with tf.control_dependencies(asserts):
            return [tf.identity(a) for a in (length, temperature, top_k, top_p)]

    class Generator(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stream = stream
            self.chars = tf.constant(list(vocab.chars))
            self.default_seed = tf.constant(default_seed)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(self.chars, tf.range(size)),
                default_value=-1)

        def _advance(self, char_id, states):
            outputs = self.stream([tf.reshape(char_id, [1, 1]), *states])
            return outputs[0][0, 0], list(outputs[1:])

        @tf.function(input_signature=[
            tf.TensorSpec([], tf.string, name="seed"),
            tf.TensorSpec([], tf.int32, name="length"),
            tf.TensorSpec([], tf.float64, name="temperature"),
            tf.TensorSpec([], tf.int64, name="rng_seed"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float64, name="top_p")])
        def generate(self, seed, length, temperature, rng_seed, top_k, top_p):
            """The seed (its unknown characters dropped; empty: the run's default seed) and
            `length` characters after it. top_k 0 and top_p 0 or 1 are off; temperature 0 is
            greedy; rng_seed is any integer. Other values fail with InvalidArgumentError
            naming the argument, as `textgen sample` refuses them."""
            length, temperature, top_k, top_p = _checked(length, temperature, top_k, top_p)
            if "\r" not in vocab.chars:  # line ends read as the training text's were
                seed = tf.strings.regex_replace(seed, "\r\n?", "\n")
            ids = self.table.lookup(tf.strings.unicode_split(seed, "UTF-8"))
            ids = tf.boolean_mask(ids, ids >= 0)
            if tf.size(ids) == 0:
                ids = self.table.lookup(tf.strings.unicode_split(self.default_seed, "UTF-8"))
            known_seed = tf.strings.reduce_join(tf.gather(self.chars, ids))
            states = [tf.zeros([1, s.shape[-1]]) for s in self.stream.inputs[1:]]
            probs = tf.zeros([size])
            last, repeats = ids[0], tf.constant(0, tf.int64)  # the seed's last run
            column = tf.constant(0, tf.int64)  # and its last line's length
            for i in tf.range(tf.size(ids)):
                probs, states = self._advance(ids[i], states)
                repeats = tf.where(ids[i] == last, repeats + 1, tf.constant(1, tf.int64))
                column = tf.where(ids[i] == newline, tf.constant(0, tf.int64), column + 1)
                last = ids[i]
            stream_seed = tf.bitcast(rng_seed, tf.uint64)  # two's complement: seed mod 2**64
            cumulative = tf.zeros([size], tf.float64)
            out = tf.TensorArray(tf.string, size=length)
            for i in tf.range(length):
                probs = limited(probs, last, repeats, column)
                cumulative = tf.cumsum(distribution(probs, temperature, top_k, top_p))
                draw = tf.where(temperature > 0,
                                uniform(stream_seed, tf.cast(i + 1, tf.uint64)),
                                tf.constant(0.0, tf.float64))
                next_id = tf.minimum(
                    tf.reduce_sum(tf.cast(cumulative <= draw * cumulative[-1], tf.int32)),
                    size - 1)
                out = out.write(i, self.chars[next_id])
                repeats = tf.where(next_id == last, repeats + 1, tf.constant(1, tf.int64))
                column = tf.where(next_id == newline, tf.constant(0, tf.int64), column + 1)
                last = next_id
                probs, states = self._advance(next_id, states)
            return {"text": known_seed + tf.strings.reduce_join(out.stack())}

    return Generator()
