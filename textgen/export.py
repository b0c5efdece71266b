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
from textgen.generate.config import GeneratorConfig
from textgen.generate.model import STATES_PER_LAYER, build_step_model
from textgen.generate.sampling import read_vocabulary
from textgen.runs import ModelChoice, load_keras_model
from textgen.tf_setup import import_tensorflow


def _generator_module(model: ModelChoice):
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


def _classifier_module(chosen: ModelChoice):
    import textgen.classify.model  # noqa: F401  (registers its layers for loading)

    tf = import_tensorflow()
    class_names = chosen.meta["config"]["class_names"]
    model = load_keras_model(chosen.file)

    class Classifier(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.class_names = tf.constant(class_names)
            # Keras' recurrent layers draw their dropout masks even when not training, so the
            # traced function reads the cells' seed states: track them, or saving refuses.
            self.seed_states = [v for v in model.variables
                                if v.path.endswith("seed_generator_state")]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        def classify(self, texts):
            probs = self.model(texts, training=False)
            if len(class_names) == 2:
                probs = tf.concat([1.0 - probs, probs], axis=-1)
            labels = tf.gather(self.class_names, tf.argmax(probs, axis=-1))
            return {"probabilities": probs, "labels": labels}

    module = Classifier()
    return module, {"serving_default": module.classify, "classify": module.classify}


def export_savedmodel(model: ModelChoice, output: Path, overwrite: bool = False) -> Path:
    """Write the chosen model of a run as a SavedModel folder at `output`."""
    check_export_target(output, overwrite)
    tf = import_tensorflow()
    build = _generator_module if model.meta["mode"] == "generate" else _classifier_module
    module, signatures = build(model)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:  # written beside the target and renamed: a failure leaves neither half
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if output.exists():  # --overwrite: the old export goes only once the new one is whole
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def check_export_target(output: Path, overwrite: bool) -> None:
    """-o names a folder to create: one-line errors before TensorFlow loads for a missing
    parent, an existing target without --overwrite, and a device or pipe (never replaced)."""
    from textgen.runs import is_special_file

    if is_special_file(output):
        raise TextgenError(f"-o {output}: is a device or pipe; a SavedModel is a folder, give "
                           "a folder name")
    if not output.parent.is_dir():
        raise TextgenError(f"-o {output}: the folder {output.parent} does not exist")
    if output.exists() and not overwrite:
        raise TextgenError(f"{output} already exists; pass --overwrite or choose another -o")
