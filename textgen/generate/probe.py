"""A one-second timing probe: how fast this machine runs the LSTM's core operation right now.

The sizing rule (textgen.generate.sizing) turns the probe's rate into training speed with a
ratio measured once per precision (`benchmarks/sizing.py`), so a `--max-time` budget is
planned with the speed this machine has today, whatever its CPU, its core count or its load.
"""

from __future__ import annotations

import statistics
import time

from textgen.tf_setup import import_tensorflow

# One step of a 2x256 LSTM's second layer at batch 128: [128, 512] x [512, 1024].
PROBE_SHAPE = (128, 512, 1024)
REPEATS = 5  # timed runs of about 0.1 s; their median resists a noisy neighbour


def multiply_adds_per_second(precision: str) -> float:
    """Multiply-adds per second of a chain of recurrent-shaped matmuls in `precision`'s
    compute type (bfloat16 for mixed_bfloat16): the median of REPEATS runs of about 0.1 s."""
    tf = import_tensorflow()
    batch, inputs, outputs = PROBE_SHAPE
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    generator = tf.random.Generator.from_seed(0)
    state = tf.cast(generator.normal([batch, inputs]), dtype)
    weights = tf.cast(generator.normal([inputs, outputs]) / inputs**0.5, dtype)

    @tf.function
    def chain(steps: tf.Tensor) -> tf.Tensor:
        def step(i, h):  # each product feeds the next, as in a recurrence
            return i + 1, tf.tanh(tf.matmul(h, weights)[:, :inputs])

        return tf.while_loop(lambda i, h: i < steps, step, (tf.constant(0), state))[1]

    def seconds(steps: int) -> float:
        start = time.perf_counter()
        chain(tf.constant(steps)).numpy()
        return time.perf_counter() - start

    steps = 8
    seconds(steps)  # traces and warms up
    while seconds(steps) < 0.025 and steps < 1 << 16:
        steps *= 4
    return steps * batch * inputs * outputs / statistics.median(
        seconds(steps) for _ in range(REPEATS))
