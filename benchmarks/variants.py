"""Training variants against the model `--max-time` chooses, each for the same wall-clock time.

Issue 15's experiments, in one process so every variant gets the same data pipeline
(textgen.generate.data), the same model (textgen.generate.model.build_generator or the same
layers with one change), the same Adam with gradient clipping and the same warm-up and cosine
over the time budget (textgen.training.schedules). Each variant trains for `--minutes`, then
the held-out last 10% is scored over independent windows of 100 (`textgen evaluate`'s
`bits_per_char`) and with the state carried (`bits_per_char_stateful`).

Variants:
- `baseline`: windows at random offsets, batch 128, windows of 100, Adam 5e-3 (the choice
  `textgen train --max-time 5` makes for tinyshakespeare: a 2x128 LSTM, no dropout);
- `batch64`, `window50`: smaller batches or shorter windows (more updates for the same signal);
- `tbptt`, `tbptt-window50`: consecutive windows with the recurrent state carried from one
  batch to the next (truncated backpropagation through time, char-rnn's and AWD-LSTM's way):
  the text cut into 128 streams read side by side, the state reset at each pass;
- `weight-decay`: AdamW, decay 0.01 on the kernels (not biases or embeddings);
- `layer-norm`, `layer-norm-window50`: LayerNormalization after each recurrent layer
  (`--layer-norm`; Keras has no layer-normalised LSTM cell).

`--throughput` instead times training steps of Keras' LSTM against the same layer with its
input projection computed for the whole window before the recurrent loop (as cuDNN does;
Keras' CPU LSTM multiplies the input at every step).

    python -m benchmarks.variants --minutes 5                       # all, tinyshakespeare
    python -m benchmarks.variants --minutes 5 --variants baseline,tbptt
    python -m benchmarks.variants --throughput
    python -m benchmarks.variants --quick                           # seconds; checks it works
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DEFAULT_CORPUS, format_table, machine_header, summary

VAL_SPLIT = 0.1
BATCH = 128
WINDOW = 100
UNITS = 128
LEARNING_RATE = 5e-3
WEIGHT_DECAY = 0.01
VARIANTS = ("baseline", "batch64", "window50", "tbptt", "tbptt-window50", "weight-decay",
            "layer-norm", "layer-norm-window50")


def settings(variant: str) -> dict:
    """Batch, window and what else the variant changes."""
    batch = 64 if variant == "batch64" else BATCH
    window = 50 if variant.endswith("window50") else WINDOW
    return {"batch": batch, "window": window, "tbptt": variant.startswith("tbptt"),
            "weight_decay": variant == "weight-decay",
            "layer_norm": variant.startswith("layer-norm")}


def stream_batches(ids: np.ndarray, batch: int, window: int):
    """TBPTT batches: the text as `batch` contiguous streams; batch k holds each stream's
    k-th window, so row i of one batch continues row i of the one before. Endless; the
    models' states are reset at each pass (the callback below)."""
    import keras
    import tensorflow as tf

    length = (len(ids) - 1) // batch
    per_pass = length // window
    rows = np.arange(batch)[:, None] * length
    vocab = int(ids.max()) + 1

    def generate():
        while True:
            for k in range(per_pass):
                index = rows + k * window + np.arange(window + 1)[None, :]
                yield ids[index[:, :-1]].astype(np.int32), ids[index[:, 1:]].astype(np.int32)

    data = tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec((batch, window), tf.int32), tf.TensorSpec((batch, window), tf.int32)))
    return data.map(lambda x, y: (x, keras.utils.to_categorical(y, vocab))).prefetch(2), per_pass


def build(config, variant: dict, batch: int):
    """build_generator's model, or the same layers stateful (fixed batch) for TBPTT."""
    import keras

    from textgen.generate.model import build_generator

    if not variant["tbptt"]:
        return build_generator(config)
    dtype = config.precision.value
    inputs = keras.Input(batch_shape=(batch, None), dtype="int32", name="char_ids")
    x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding",
                               dtype=dtype)(inputs)
    for i in range(1, config.layers + 1):
        x = keras.layers.LSTM(config.units, return_sequences=True, stateful=True,
                              name=f"rnn_{i}", dtype=dtype)(x)
    logits = keras.layers.Dense(config.vocab_size, name="logits", dtype=dtype)(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name="next_char")(logits)
    return keras.Model(inputs, probs)


def train_variant(name: str, ids: np.ndarray, held_out: np.ndarray, vocab_size: int,
                  minutes: float) -> dict:
    import keras

    from textgen.generate.config import GeneratorConfig, Precision
    from textgen.generate.data import evaluation_dataset, training_dataset
    from textgen.generate.evaluate import stateful_nats
    from textgen.generate.model import LOSS, build_generator, machine_precision
    from textgen.generate.train import LN2
    from textgen.training.schedules import time_budget_cosine

    variant = settings(name)
    batch, window = variant["batch"], variant["window"]
    keras.utils.set_random_seed(0)
    config = GeneratorConfig(vocab_size=vocab_size, units=UNITS, dropout=0.0,
                             seq_length=window, learning_rate=LEARNING_RATE,
                             layer_norm=variant["layer_norm"],
                             precision=machine_precision(Precision.auto))
    model = build(config, variant, batch)
    if variant["weight_decay"]:
        optimizer = keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY,
                                           clipnorm=config.clipnorm)
        optimizer.exclude_from_weight_decay(var_names=["bias", "embeddings", "gamma", "beta"])
    else:
        optimizer = keras.optimizers.Adam(LEARNING_RATE, clipnorm=config.clipnorm)
    model.compile(optimizer=optimizer, loss=LOSS)
    stop = stop_after(minutes)
    callbacks = [time_budget_cosine(minutes, LEARNING_RATE, config.warmup_steps), stop]
    if variant["tbptt"]:
        data, per_pass = stream_batches(ids, batch, window)
        callbacks.append(reset_each_pass(per_pass))
    else:
        data = training_dataset(ids, window, batch, vocab_size, seed=0)
    start = time.monotonic()
    model.fit(data, epochs=100_000, steps_per_epoch=50, callbacks=callbacks, verbose=0)
    seconds = time.monotonic() - start
    steps = stop.steps
    scored = model
    if variant["tbptt"]:  # the same weights in the windowed model, for scoring
        scored = build_generator(config)
        for layer in scored.layers:
            if not layer.weights:
                continue
            source = model.get_layer(layer.name)
            if hasattr(layer, "cell"):
                layer.cell.set_weights(source.cell.get_weights())
            else:
                layer.set_weights(source.get_weights())
    scored.compile(loss=LOSS)
    nats = float(scored.evaluate(evaluation_dataset(held_out, WINDOW, 64, vocab_size),
                                 verbose=0))
    stateful = stateful_nats(config, scored, held_out) / LN2
    return {"variant": name, "bits_per_char": nats / LN2, "bits_per_char_stateful": stateful,
            "steps": steps, "passes": steps * batch * window / len(ids),
            "chars_per_second": steps * batch * window / seconds}


def stop_after(minutes: float):
    """A callback: stops fit() after `minutes` of training steps; counts the steps."""
    import keras

    class StopAfter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.start, self.steps = time.monotonic(), 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.steps += 1
            if time.monotonic() - self.start > minutes * 60:
                self.model.stop_training = True

    return StopAfter()


def reset_each_pass(per_pass: int):
    """A callback: resets the stateful layers' state at the start of each pass."""
    import keras

    class ResetEachPass(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.steps % per_pass == 0:
                for layer in self.model.layers:
                    if getattr(layer, "stateful", False):
                        layer.reset_state()
            self.steps += 1

    return ResetEachPass()


def throughput(units_list: list[int], steps: int) -> list[dict]:
    """Training step time of Keras' LSTM against the whole-window input projection."""
    import keras
    from keras import ops
    from keras.src import backend as keras_backend  # the loop Keras' own RNN layers run

    class WindowProjectedLSTM(keras.layers.LSTM):
        def inner_loop(self, sequences, initial_state, mask, training=False):
            cell = self.cell
            projected = ops.matmul(sequences, cell.kernel) + cell.bias  # every step at once

            def step(z, states):
                h, c = states
                z = z + ops.matmul(h, cell.recurrent_kernel)
                i, f, g, o = ops.split(z, 4, axis=1)
                c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
                h = ops.sigmoid(o) * ops.tanh(c)
                return h, [h, c]

            return keras_backend.rnn(step, projected, list(initial_state),
                                     return_all_outputs=self.return_sequences,
                                     input_length=sequences.shape[1])

    rng = np.random.default_rng(0)
    x = rng.integers(0, 65, (BATCH, WINDOW)).astype("int32")
    y = rng.integers(0, 65, (BATCH, WINDOW))
    rows = []
    for units in units_list:
        times = {}
        for label, layer in (("keras", keras.layers.LSTM), ("projected", WindowProjectedLSTM)):
            keras.utils.set_random_seed(0)
            inputs = keras.Input((None,), dtype="int32")
            h = keras.layers.Embedding(65, 64, dtype="mixed_bfloat16")(inputs)
            for _ in range(2):
                h = layer(units, return_sequences=True, dtype="mixed_bfloat16")(h)
            h = keras.layers.Dense(65, dtype="mixed_bfloat16")(h)
            model = keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32")(h))
            model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
            for _ in range(2):
                model.train_on_batch(x, y)
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            times[label] = (time.perf_counter() - start) / steps
        rows.append({"model": f"2x{units} LSTM, bfloat16, batch {BATCH} x {WINDOW}",
                     "keras_ms": times["keras"] * 1e3, "projected_ms": times["projected"] * 1e3,
                     "speed-up": times["keras"] / times["projected"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny run: checks the script")
    args = parser.parse_args()
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    if args.throughput:
        print(machine_header("training step: Keras' LSTM against the whole-window projection"))
        rows = throughput([64] if args.quick else [128, 256], 2 if args.quick else 15)
        print(table(rows))
        return
    from textgen.generate.data import Vocabulary

    text = args.corpus.read_text(encoding="utf-8")
    if args.quick:
        text, args.minutes = text[:60_000], 0.1
    print(machine_header(f"training variants, {args.minutes:g} minutes each"))
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = len(ids) - math.floor(len(ids) * VAL_SPLIT)
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        rows.append(train_variant(name, ids[:cut], ids[cut:], len(vocab), args.minutes))
        print(table(rows[-1:]), flush=True)
    print(f"\n{args.corpus.name}, {args.minutes:g} minutes each:")
    print(table(rows))


def table(rows: list[dict]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:,.3f}" if isinstance(value, float) else str(value)

    return format_table(list(rows[0]), [[cell(v) for v in row.values()] for row in rows])


if __name__ == "__main__":
    main()
