"""The topic model's margin loss: its values, its gradient however sure the model is, and a
topics run that learns, saves, resumes and predicts with it."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tests.conftest import write_reviews
from textgen.tf_setup import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

from textgen.classify.losses import MarginLoss  # noqa: E402

# Row 2's second class has a softmax probability of e^-110: zero in float32.
LOGITS = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 9.0], [50.0, -60.0, 0.0]], "float32")
LABELS = np.array([0, 0, 1])
# max(0, 10 + the best other class's score - the true class's score), by hand
EXPECTED = np.array([10 + 0.5 - 2.0, 10 + 9.0 - 0.0, 10 + 50.0 + 60.0])


def test_the_margin_is_taken_on_the_scores_under_the_softmax():
    loss = MarginLoss(margin=10.0, reduction=None)
    probabilities = keras.activations.softmax(tf.constant(LOGITS))
    np.testing.assert_allclose(loss(LABELS, probabilities), EXPECTED, rtol=1e-5)
    # traced, as Keras trains (the scores travel on the softmax's output there too)
    traced = tf.function(lambda y, z: loss(y, keras.activations.softmax(z)))
    np.testing.assert_allclose(traced(LABELS, tf.constant(LOGITS)), EXPECTED, rtol=1e-5)
    # a text far enough ahead costs nothing; the mean is the default reduction
    assert float(MarginLoss(10.0)(np.array([2]), keras.activations.softmax(
        tf.constant([[0.0, 0.0, 10.5]])))) == 0.0
    assert float(MarginLoss(10.0)(LABELS, probabilities)) == pytest.approx(EXPECTED.mean())


def test_a_text_the_model_is_sure_of_and_wrong_about_still_moves_the_weights():
    scores = tf.Variable(LOGITS)
    with tf.GradientTape() as tape:
        value = MarginLoss(10.0, reduction=None)(LABELS, keras.activations.softmax(scores))[2]
    gradient = tape.gradient(value, scores).numpy()[2]
    np.testing.assert_allclose(gradient, [1.0, -1.0, 0.0])  # up the true class, down its rival


def test_probabilities_without_the_scores_fall_back_to_their_logarithm():
    probabilities = tf.constant(keras.activations.softmax(tf.constant(LOGITS[:2])).numpy())
    assert not hasattr(probabilities, "_keras_logits")
    np.testing.assert_allclose(MarginLoss(10.0, reduction=None)(LABELS[:2], probabilities),
                               EXPECTED[:2], rtol=1e-4)


def test_the_loss_saves_with_its_margin():
    loss = keras.losses.deserialize(keras.losses.serialize(MarginLoss(7.5)))
    assert isinstance(loss, MarginLoss) and loss.margin == 7.5


TOPIC_WORDS = {"sport": ["goal", "match", "team", "referee"],
               "music": ["guitar", "chorus", "album", "drummer"],
               "food": ["recipe", "oven", "flavour", "spice"]}


def test_a_topics_run_learns_resumes_and_predicts_with_the_margin(cli, tmp_path):
    data = write_reviews(tmp_path / "topics", {name: 12 for name in TOPIC_WORDS}, seed=3,
                         words=TOPIC_WORDS)
    ckpt = tmp_path / "ckpt"
    train = cli("classify", "train", str(data), "--checkpoint-dir", str(ckpt), "--epochs", "2")
    assert train.exit_code == 0, train.stderr
    assert "36 examples in 3 classes: the model trains on all of them" in train.stderr
    run = ckpt / "topics"
    with zipfile.ZipFile(run / "last.keras") as saved:
        compiled = json.loads(saved.read("config.json"))["compile_config"]
    assert compiled["loss"]["class_name"] == "MarginLoss"
    assert compiled["loss"]["config"]["margin"] == 10.0
    resumed = cli("classify", "train", str(data), "--checkpoint-dir", str(ckpt),
                  "--run-name", "topics", "--resume", "--epochs", "3")
    assert resumed.exit_code == 0, resumed.stderr
    meta = json.loads((run / "run.json").read_text())
    assert meta["training"]["epochs_done"] == 3
    assert meta["chosen"]["val_split"] == 0
    predicted = cli("classify", "predict", "the drummer played the chorus from the album",
                    "the referee stopped the match", "--checkpoint-dir", str(ckpt),
                    "--model", "topics", "--json")
    assert predicted.exit_code == 0, predicted.stderr
    labels = [row["label"] for row in json.loads(predicted.stdout)]
    assert labels == ["music", "sport"]


def test_only_the_topic_model_trains_to_the_margin():
    from textgen.classify.config import ClassifierConfig
    from textgen.classify.model import compile_args

    assert compile_args(ClassifierConfig(class_names=["a", "b", "c"]))["loss"].margin == 10.0
    for config in (ClassifierConfig(class_names=["neg", "pos"]),
                   ClassifierConfig(class_names=["a", "b", "c"], arch="lstm")):
        assert isinstance(compile_args(config)["loss"], str)
