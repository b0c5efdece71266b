"""What one generation step costs by batch rows: why serving 32 streams is not 32x one stream.

A 2x256 LSTM generator (vocabulary 65, random weights: speed does not depend on them; --units
and --vocab for another size, 512 and 236 for the English base's) is
stepped at 1, 8 and 32 rows by textgen's NumPy stepper (float32; what `textgen serve` and
`sample --num-samples` run), with and without drawing the next characters, and by the same
recurrence as a TensorFlow graph (`tf.function`) in float32 and in bfloat16 (oneDNN computes
bfloat16 products natively on CPUs with AVX512-BF16 or AMX). Also timed: one of the step's
three units x 4-units products alone, in NumPy. The "x one row" column is rows x (one row's step) /
(this step): how many times one stream's rate the batch gives.

    python -m benchmarks.batch_step [--steps 2000] [--quick] [--units 512 --vocab 236]
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    format_table,
    machine_header,
    summary,
)

VOCAB, UNITS, EMBED, LAYERS = 65, 256, 64, 2  # the defaults; --vocab and --units change them
ROWS = (1, 8, 32)


def random_weights(rng: np.random.Generator, units: int, vocab: int) -> list[np.ndarray]:
    """A 2-layer LSTM generator's weights in `model.get_weights()` order."""
    gates = 4 * units
    weights = [rng.standard_normal((vocab, EMBED))]
    inputs = EMBED
    for _ in range(LAYERS):
        weights += [rng.standard_normal((inputs, gates)) * 0.05,
                    rng.standard_normal((units, gates)) * 0.05, np.zeros(gates)]
        inputs = units
    weights += [rng.standard_normal((units, vocab)) * 0.05, np.zeros(vocab)]
    return [w.astype(np.float32) for w in weights]


def microseconds(step: Callable[[], object], steps: int) -> float:
    """Median over 5 rounds of the time per call, after a warm-up."""
    for _ in range(max(20, steps // 20)):
        step()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(steps // 5):
            step()
        rounds.append((time.perf_counter() - started) / (steps // 5) * 1e6)
    return float(np.median(rounds))


def numpy_steps(weights: list[np.ndarray], steps: int) -> dict[str, dict[int, float]]:
    from textgen.generate.config import GeneratorConfig
    from textgen.generate.drawing import choose_next_ids
    from textgen.generate.stepper import NumpyStepper

    vocab, units = weights[-1].shape[0], weights[-2].shape[0]

    stepper = NumpyStepper(GeneratorConfig(vocab_size=vocab, layers=LAYERS, units=units,
                                           embed_dim=EMBED), weights)
    advance: dict[int, float] = {}
    with_draw: dict[int, float] = {}
    product: dict[int, float] = {}
    for rows in ROWS:
        state = stepper.zero_state(rows)
        ids = np.arange(rows) % vocab
        rngs = [np.random.default_rng(i) for i in range(rows)]
        settings = [(0.8, None, None)] * rows
        advance[rows] = microseconds(lambda s=state, i=ids: stepper.advance(s, i), steps)

        def step_and_draw(s=state, i=ids, g=rngs, d=settings) -> object:
            return choose_next_ids(stepper.advance(s, i), g, d)

        with_draw[rows] = microseconds(step_and_draw, steps)
        h, recurrent = state.h[0], stepper.cells[0][1]
        product[rows] = microseconds(lambda a=h, b=recurrent: a @ b, steps)
    return {"NumPy float32 step (serving)": advance,
            "NumPy float32 step + draw": with_draw,
            f"one {units}x{4 * units} product (NumPy)": product}


def tensorflow_steps(weights: list[np.ndarray], steps: int, dtype_name: str) -> dict[int, float]:
    """The same recurrence (the first layer's input projection as a lookup table, as the
    NumPy stepper does) as one graph call per step, products in `dtype_name`."""
    import tensorflow as tf

    dtype = tf.as_dtype(dtype_name)
    vocab, units = weights[-1].shape[0], weights[-2].shape[0]
    embedding, k1, r1, b1, k2, r2, b2, dense_kernel, dense_bias = weights
    table = tf.constant(embedding @ k1 + b1)
    r1, k2, r2 = (tf.constant(w, dtype=dtype) for w in (r1, k2, r2))
    b2, dense_kernel, dense_bias = (tf.constant(w) for w in (b2, dense_kernel, dense_bias))

    def cell(z: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def product(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.matmul(tf.cast(x, dtype), w), tf.float32)

    @tf.function
    def step(ids, h1, c1, h2, c2):  # noqa: ANN001, ANN202
        h1, c1 = cell(tf.gather(table, ids) + product(h1, r1), c1)
        h2, c2 = cell(product(h1, k2) + product(h2, r2) + b2, c2)
        return tf.nn.softmax(h2 @ dense_kernel + dense_bias), h1, c1, h2, c2

    costs = {}
    for rows in ROWS:
        ids = tf.constant(np.arange(rows) % vocab, tf.int32)
        zeros = [tf.zeros((rows, units)) for _ in range(4)]
        costs[rows] = microseconds(lambda i=ids, z=zeros: step(i, *z)[0].numpy(), steps)
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--steps", type=int, default=2000, help="steps per timing")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--units", type=int, default=UNITS, help="units per layer")
    parser.add_argument("--vocab", type=int, default=VOCAB, help="characters in the vocabulary")
    args = parser.parse_args(argv)
    steps = 50 if args.quick else args.steps
    from textgen.tf_setup import cpu_supports_bfloat16, import_tensorflow

    import_tensorflow()
    print(machine_header("textgen: one generation step by batch rows"))
    print(f"model: 2x{args.units} LSTM, vocab {args.vocab}; microseconds per step, median of 5 "
          f"rounds of {steps // 5}")
    weights = random_weights(np.random.default_rng(0), args.units, args.vocab)
    costs = numpy_steps(weights, steps)
    costs["TensorFlow graph step, float32"] = tensorflow_steps(weights, steps, "float32")
    if cpu_supports_bfloat16():
        costs["TensorFlow graph step, bfloat16"] = tensorflow_steps(weights, steps, "bfloat16")
    else:
        print("(no AVX512-BF16/AMX on this CPU: the bfloat16 graph step is skipped)")
    headers = ["step", *(f"{r} row{'s' * (r > 1)} (us)" for r in ROWS),
               *(f"{r} rows: x one row" for r in ROWS[1:])]
    rows = [[name, *(f"{c[r]:,.0f}" for r in ROWS),
             *(f"{r * c[1] / c[r]:.1f}" for r in ROWS[1:])] for name, c in costs.items()]
    print()
    print(format_table(headers, rows))
    serving = costs["NumPy float32 step + draw"]
    print(f"\n32 streams on the NumPy step give at most {32 * serving[1] / serving[32]:.1f}x "
          "one stream (drawing included)")
    bfloat16 = costs.get("TensorFlow graph step, bfloat16")
    if bfloat16:
        print(f"the bfloat16 graph's 32-row step against one NumPy row: "
              f"{32 * serving[1] / bfloat16[32]:.1f}x (its drawing not counted)")

if __name__ == "__main__":
    main()
