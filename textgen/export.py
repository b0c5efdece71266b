"""`textgen export`: a TensorFlow SavedModel that serves without textgen installed.

Generate runs export `generate(seed, length, temperature) -> text`, running the one-step model
inside a `tf.function` (unknown seed characters are dropped; temperature 0 is greedy).
Classify runs export `classify(texts) -> probabilities` (one column per class).
Both signatures are also the SavedModel's `serving_default`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textgen.errors import TextgenError
from textgen.generator import GeneratorConfig, build_step_model
from textgen.runs import RunDir
from textgen.sampling import load_keras_model, read_vocabulary
from textgen.tf_setup import import_tensorflow


def _generator_module(run: RunDir, which: str):
    tf = import_tensorflow()
    meta = run.read_meta()
    config = GeneratorConfig.from_dict(meta["config"])
    vocab = read_vocabulary(run)
    trained = load_keras_model(run.model_file(which))
    step = build_step_model(config, trained)
    n_states = (2 if config.cell == "lstm" else 1) * config.layers

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


def _classifier_module(run: RunDir, which: str):
    tf = import_tensorflow()
    meta = run.read_meta()
    class_names = meta["config"]["class_names"]
    model = load_keras_model(run.model_file(which))

    class Classifier(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.class_names = tf.constant(class_names)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        def classify(self, texts):
            probs = self.model(texts)
            if len(class_names) == 2:
                probs = tf.concat([1.0 - probs, probs], axis=-1)
            labels = tf.gather(self.class_names, tf.argmax(probs, axis=-1))
            return {"probabilities": probs, "labels": labels}

    module = Classifier()
    return module, {"serving_default": module.classify, "classify": module.classify}


def export_savedmodel(run: RunDir, output: Path, which: str = "best",
                      overwrite: bool = False) -> Path:
    """Write the run's model as a SavedModel folder at `output`."""
    tf = import_tensorflow()
    if output.exists():
        if not overwrite:
            raise TextgenError(f"{output} already exists; pass --overwrite or choose another -o")
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    mode = run.read_meta()["mode"]
    build = _generator_module if mode == "generate" else _classifier_module
    module, signatures = build(run, which)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    tmp.rename(output)
    return output
