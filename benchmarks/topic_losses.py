"""Which loss and rate suit the topic model: a probe outside textgen's pipeline.

The topic model's features (sublinear TF-IDF of textgen's words and word pairs, the 300,000
most frequent, made by scikit-learn) into Keras' Dense(softmax), trained with SGD and momentum
for 10 epochs, the rate decaying to a tenth: cross-entropy against textgen's margin loss
(`textgen.classify.losses.MarginLoss`) at several margins and rates, on 20 Newsgroups (all
training posts, or `--per-group N` of each group, seeded). Prints test accuracy, test
log-loss as the probabilities come and at the best of a few temperatures, and the mean top
probability (how sure the model says it is).

    pip install -e ".[bench]"      # scikit-learn
    python -m benchmarks.topic_losses ce:0:10 margin:10:10 margin:1:1
    python -m benchmarks.topic_losses --per-group 10 --batch 8 --steps 1000 margin:10:1.25

Each setup is LOSS:MARGIN:RATE (the margin is ignored for ce). Needs
../shared/datasets/20news-bydate.tar.gz.
"""

from __future__ import annotations

import argparse
import random
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_header, summary
from benchmarks.ladder import NEWS_ARCHIVE

TEMPERATURES = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0)


def read_posts(folder: Path, per_group: int | None) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for label, group in enumerate(sorted(p for p in folder.iterdir() if p.is_dir())):
        posts = sorted(group.iterdir())
        if per_group:
            posts = random.Random(0).sample(posts, per_group)
        texts += [p.read_bytes().decode("utf-8", errors="replace") for p in posts]
        labels += [label] * len(posts)
    return texts, np.array(labels)


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def at_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    scores = np.log(np.clip(probabilities.astype(np.float64), 1e-300, 1.0)) / temperature
    scores -= scores.max(axis=1, keepdims=True)
    return np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("setups", nargs="+", help="LOSS:MARGIN:RATE, LOSS ce or margin")
    parser.add_argument("--per-group", type=int, help="train on this many posts of each group")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, help="steps in all (default: 10 passes)")
    args = parser.parse_args(argv)
    from sklearn.feature_extraction.text import TfidfVectorizer

    from textgen.classify.inference import words
    from textgen.classify.losses import MarginLoss  # imports TensorFlow quietly
    from textgen.tf_setup import import_tensorflow

    tf = import_tensorflow()
    import keras

    print(machine_header("topic model: loss and rate"))
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(NEWS_ARCHIVE) as tar:
        tar.extractall(tmp, filter="data")
        train_texts, y = read_posts(Path(tmp) / "20news-bydate-train", args.per_group)
        test_texts, y_test = read_posts(Path(tmp) / "20news-bydate-test", None)
    vectorizer = TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None,
                                 ngram_range=(1, 2), sublinear_tf=True, max_features=300_000)
    x = vectorizer.fit_transform(train_texts).astype(np.float32)
    x_test = vectorizer.transform(test_texts).astype(np.float32)

    def sparse(matrix):
        coo = matrix.tocoo()
        return tf.sparse.reorder(tf.SparseTensor(
            np.stack([coo.row, coo.col], 1).astype(np.int64), coo.data, coo.shape))

    classes = int(y.max()) + 1
    steps = args.steps or 10 * -(-len(y) // args.batch)
    for setup in args.setups:
        kind, margin, rate = setup.split(":")
        keras.utils.set_random_seed(0)
        inputs = keras.Input(shape=(x.shape[1],), sparse=True)
        model = keras.Model(inputs, keras.layers.Dense(
            classes, activation="softmax", kernel_initializer="zeros")(inputs))
        schedule = keras.optimizers.schedules.ExponentialDecay(
            float(rate), steps // 10, 0.1 ** 0.1)
        loss = ("sparse_categorical_crossentropy" if kind == "ce"
                else MarginLoss(float(margin)))
        model.compile(keras.optimizers.SGD(schedule, momentum=0.9, clipnorm=1.0), loss)
        data = tf.data.Dataset.from_tensor_slices((sparse(x), y)).shuffle(
            20_000, seed=0).repeat().batch(args.batch)
        started = time.monotonic()
        model.fit(data, epochs=10, steps_per_epoch=steps // 10, verbose=0)
        p = model.predict(tf.data.Dataset.from_tensor_slices(sparse(x_test)).batch(512),
                          verbose=0)
        best = min((log_loss(at_temperature(p, t), y_test), t) for t in TEMPERATURES)
        print(f"{setup}: accuracy {np.mean(p.argmax(1) == y_test):.4f}  log-loss "
              f"{log_loss(p, y_test):.3f} ({best[0]:.3f} at T={best[1]:g})  mean top "
              f"probability {p.max(1).mean():.3f}  {time.monotonic() - started:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
