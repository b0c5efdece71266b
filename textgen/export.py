"""`textgen export`: a TensorFlow SavedModel that serves without textgen installed.

Generate runs export `generate(seed, length, temperature, rng_seed, top_k, top_p) -> text`
(textgen.generate.exported): the text `textgen sample` writes for the same arguments.
Classify runs export `classify(texts) -> probabilities` (one column per class).
Both signatures are also the SavedModel's `serving_default`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from textgen.errors import TextgenError
from textgen.generate.config import GeneratorConfig
from textgen.generate.sampling import read_vocabulary
from textgen.runs import ModelChoice, load_keras_model
from textgen.tf_setup import import_tensorflow


def _generator_module(model: ModelChoice):
    from textgen.generate.exported import generator_module
    from textgen.generate.stepper import load_generator_weights

    config = GeneratorConfig.from_dict(model.meta["config"], str(model.run.meta))
    module = generator_module(config, read_vocabulary(model.run),
                              load_generator_weights(model.file),
                              model.meta.get("default_seed", "\n"))
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
    tf = import_tensorflow()
    if output.exists():
        if not overwrite:
            raise TextgenError(f"{output} already exists; pass --overwrite or choose another -o")
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    build = _generator_module if model.meta["mode"] == "generate" else _classifier_module
    module, signatures = build(model)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    tmp.rename(output)
    return output
