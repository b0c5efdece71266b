"""Generate mode's part of `textgen export`: `generate(seed, length, temperature) -> text`,
running the one-step model inside a `tf.function` (unknown seed characters are dropped;
temperature 0 is greedy)."""

from __future__ import annotations

from typing import Any

from textgen.generate.config import GeneratorConfig
from textgen.generate.model import STATES_PER_LAYER, build_step_model
from textgen.generate.sampling import read_vocabulary
from textgen.runs import ModelChoice, load_keras_model
from textgen.tf_setup import import_tensorflow


def generator_module(model: ModelChoice) -> tuple[Any, dict[str, Any]]:
    """The tf.Module of a generator run and its signatures (`generate`, `serving_default`)."""
    tf = import_tensorflow()
    config = GeneratorConfig.from_dict(model.meta["config"], str(model.run.meta))
    vocab = read_vocabulary(model.run)
    step = build_step_model(config, load_keras_model(model.file))
    n_states = STATES_PER_LAYER[config.cell] * config.layers

    class Generator(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.step = step
            self.chars = tf.constant(list(vocab.chars))
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(self.chars, tf.range(len(vocab.chars))),
                default_value=-1)

        def _advance(self, char_id, states):
            outputs = self.step([tf.reshape(char_id, [1, 1]), *states])
            return outputs[0][0], list(outputs[1:])

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="seed"),
                                      tf.TensorSpec([], tf.int32, name="length"),
                                      tf.TensorSpec([], tf.float32, name="temperature")])
        def generate(self, seed, length, temperature):
            ids = self.table.lookup(tf.strings.unicode_split(seed, "UTF-8"))
            ids = tf.boolean_mask(ids, ids >= 0)
            known_seed = tf.strings.reduce_join(tf.gather(self.chars, ids))
            states = [tf.zeros([1, config.units]) for _ in range(n_states)]
            probs = tf.fill([len(vocab.chars)], 1.0 / len(vocab.chars))
            for i in tf.range(tf.size(ids)):
                probs, states = self._advance(ids[i], states)
            out = tf.TensorArray(tf.string, size=length)
            for i in tf.range(length):
                logits = tf.math.log(tf.maximum(probs, 1e-30))
                next_id = tf.cond(
                    temperature > 0,
                    lambda: tf.cast(tf.random.categorical(
                        logits[None, :] / temperature, 1)[0, 0], tf.int32),  # noqa: B023
                    lambda: tf.cast(tf.argmax(logits), tf.int32))  # noqa: B023
                out = out.write(i, self.chars[next_id])
                probs, states = self._advance(next_id, states)
            return {"text": known_seed + tf.strings.reduce_join(out.stack())}

    module = Generator()
    return module, {"serving_default": module.generate, "generate": module.generate}
