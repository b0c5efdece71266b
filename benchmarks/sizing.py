"""Where the sizing rule's speed figures come from: the probe's rate against real training.

For each size on textgen.generate.sizing.LADDER, in the precision `--precision auto` picks
here (or both with --both-precisions): the probe's multiply-adds per second
(textgen.generate.probe), then the training speed of that LSTM at the batch and window a
budget trains with (sizing.BUDGET_BATCH_SIZE, BUDGET_WINDOW) on textgen's own pipeline
(warm-up excluded), then fits the line

    probe rate / training signals per second = (multiply-adds per char + overhead) / share

over the sizes (least squares): `sizing.TRAINING_SHARE` and `sizing.OVERHEAD_MULTIPLY_ADDS`
hold the fitted share and overhead. The probe runs right before each timing so both see the
machine in the same state.

    python -m benchmarks.sizing                     # about 2 minutes per precision
    python -m benchmarks.sizing --both-precisions
    python -m benchmarks.sizing --quick
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    format_table,
    load_corpus,
    machine_header,
    summary,
)
from benchmarks.throughput import time_fit  # noqa: E402


def measure(layers: int, units: int, precision: str, ids, vocab_size: int, seconds: float
            ) -> float:
    """Training signals per second of a `layers` x `units` LSTM at batch 128."""
    import keras

    from textgen.generate.config import GeneratorConfig
    from textgen.generate.data import training_dataset
    from textgen.generate.model import LOSS, build_generator
    from textgen.generate.sizing import BUDGET_BATCH_SIZE, BUDGET_WINDOW
    from textgen.training.schedules import make_optimizer

    keras.utils.set_random_seed(0)
    config = GeneratorConfig(vocab_size=vocab_size, layers=layers, units=units,
                             seq_length=BUDGET_WINDOW, precision=precision)
    model = build_generator(config)
    model.compile(optimizer=make_optimizer(config.learning_rate, config.clipnorm), loss=LOSS)
    data = training_dataset(ids, config.seq_length, BUDGET_BATCH_SIZE, vocab_size, seed=0)

    def fit(steps: int) -> None:
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)

    result = time_fit(fit, seconds, warmup_steps=3, calibration_steps=3)
    keras.backend.clear_session()
    return result.steps_per_second * BUDGET_BATCH_SIZE * config.seq_length


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--seconds", type=float, default=20.0, help="timed training per size")
    parser.add_argument("--both-precisions", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2x128 only, 2 s: checks it works")
    args = parser.parse_args(argv)

    from textgen.generate.data import Vocabulary
    from textgen.generate.probe import multiply_adds_per_second
    from textgen.generate.sizing import (
        LADDER,
        OVERHEAD_MULTIPLY_ADDS,
        TRAINING_SHARE,
        Machine,
        multiply_adds_per_char,
    )
    from textgen.tf_setup import cpu_supports_bfloat16

    print(machine_header("sizing: probe rate against training speed"))
    text, note = load_corpus(None, 2_000_000)
    print(note)
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    auto = "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
    precisions = ["mixed_bfloat16", "float32"] if args.both_precisions else [auto]
    sizes = LADDER[:2] if args.quick else LADDER[:-1]
    seconds = 2.0 if args.quick else args.seconds
    for precision in precisions:
        rows, work, cost = [], [], []
        for layers, units in sizes:
            rate = multiply_adds_per_second(precision)
            signals = measure(layers, units, precision, ids, len(vocab), seconds)
            macs = multiply_adds_per_char(layers, units, len(vocab))
            predicted = Machine(precision, rate).chars_per_second(macs)
            work.append(macs)
            cost.append(rate / signals)
            rows.append([f"{layers}x{units}", f"{rate / 1e9:.2f}", f"{signals:,.0f}",
                         f"{predicted:,.0f}"])
        slope, intercept = np.polyfit(work, cost, 1)
        print(f"\n{precision}")
        print(format_table(["LSTM", "probe GMAC/s", "training signals/s",
                            "sizing's estimate"], rows))
        print(f"fitted: share {1 / slope:.2f}, overhead {intercept / slope / 1e6:.2f}M "
              f"multiply-adds per char (sizing.py now: {TRAINING_SHARE[precision]}, "
              f"{OVERHEAD_MULTIPLY_ADDS[precision] / 1e6:.2f}M)")


if __name__ == "__main__":
    main()
