"""Classify mode's part of `textgen export`: `classify(texts) -> probabilities, labels` (one
column per class); an empty text fails with InvalidArgumentError."""

from __future__ import annotations

from typing import Any

from textgen.runs import ModelChoice, load_keras_model
from textgen.tf_setup import import_tensorflow

# What Python's str.strip() strips, in RE2: Unicode spaces and separators (\p{Z}) and the
# control characters it counts as space (tf.strings.strip strips ASCII only); NUL, which
# the classifier reads as a space; and invisible format characters (\p{Cf}), as
# tables.is_blank.
BLANK = r"[\p{Z}\p{Cf}\t\n\x0b\f\r\x1c-\x1f\x85\x00]*"


def classifier_module(chosen: ModelChoice) -> tuple[Any, dict[str, Any]]:
    """The tf.Module of a classifier run and its signatures (`classify`, `serving_default`)."""
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
            # An empty (or blank) text has only the prior to give: refused, as `classify
            # predict` and the server refuse it.
            blank = tf.strings.regex_full_match(texts, BLANK)
            check = tf.debugging.Assert(
                ~tf.reduce_any(blank),
                ["texts must not be empty; give each text some words; empty at index",
                 tf.where(blank)[:, 0]])
            with tf.control_dependencies([check]):
                texts = tf.identity(texts)
            def probabilities():
                probs = tf.cast(self.model(texts, training=False), tf.float32)
                if len(class_names) == 2:
                    probs = tf.concat([1.0 - probs, probs], axis=-1)
                return probs

            # no texts, no rows (the n-gram counts refuse an empty batch)
            probs = tf.cond(tf.size(texts) > 0, probabilities,
                            lambda: tf.zeros([0, len(class_names)], tf.float32))
            labels = tf.gather(self.class_names, tf.argmax(probs, axis=-1))
            return {"probabilities": probs, "labels": labels}

    module = Classifier()
    return module, {"serving_default": module.classify, "classify": module.classify}
