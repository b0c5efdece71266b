"""Training throughput in characters of training signal per second, against the tutorial way.

textgen's model predicts the next character at every position of a window, so one step of
batch B and windows of L characters gives B * L training signals. The tutorial way predicts
one character per window: B signals per step. Each variant is timed with
`model.fit(ds, epochs=1, steps_per_epoch=N)` after a warm-up fit (tracing excluded), with N
chosen from a short calibration fit so that the timed fit lasts about `--seconds`.

    python -m benchmarks.throughput [--seconds 60] [--corpus PATH] [--quick]
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import (  # noqa: E402
    format_table,
    load_corpus,
    machine_header,
    summary,  # noqa: E402
)

TUTORIAL_CHARS = 200_000
TUTORIAL_BATCH = 64
MIN_VOCAB = 65  # tinyshakespeare's vocabulary; smaller texts are padded to it


@dataclass(frozen=True)
class Variant:
    name: str
    cell: str
    precision: str
    batch_size: int


VARIANTS = (
    Variant("LSTM float32 batch 64", "lstm", "float32", 64),
    Variant("LSTM float32 batch 256", "lstm", "float32", 256),
    Variant("LSTM mixed_bfloat16 batch 256", "lstm", "mixed_bfloat16", 256),
    Variant("GRU mixed_bfloat16 batch 256", "gru", "mixed_bfloat16", 256),
)


@dataclass
class Measurement:
    steps: int
    seconds: float

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds


def time_fit(fit: Callable[[int], None], seconds: float, warmup_steps: int,
             calibration_steps: int) -> Measurement:
    """Warm up (tracing), calibrate the step time, then time a fit of about `seconds`."""
    fit(warmup_steps)
    start = time.perf_counter()
    fit(calibration_steps)
    step_time = (time.perf_counter() - start) / calibration_steps
    steps = max(calibration_steps, round(seconds / step_time))
    start = time.perf_counter()
    fit(steps)
    return Measurement(steps, time.perf_counter() - start)


def measure_textgen(variant: Variant, ids, vocab_size: int, args: argparse.Namespace
                    ) -> Measurement:
    """Steps/s of textgen's generator on textgen's training_dataset."""
    import keras

    from textgen.generate.config import GeneratorConfig
    from textgen.generate.data import training_dataset
    from textgen.generate.model import LOSS, build_generator
    from textgen.training.schedules import make_optimizer

    keras.utils.set_random_seed(0)
    config = GeneratorConfig(vocab_size=vocab_size, seq_length=args.seq_length, layers=2,
                             units=args.units, cell=variant.cell, precision=variant.precision)
    model = build_generator(config)
    model.compile(optimizer=make_optimizer(config.learning_rate, config.clipnorm), loss=LOSS)
    data = training_dataset(ids, args.seq_length, variant.batch_size, vocab_size, seed=0)

    def fit(steps: int) -> None:
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)

    result = time_fit(fit, args.seconds, args.warmup_steps, args.calibration_steps)
    keras.backend.clear_session()
    return result


def measure_tutorial(text: str, args: argparse.Namespace) -> tuple[Measurement, int]:
    """Steps/s of the tutorial way (batches of 64 windows); returns it and the window count."""
    import keras

    from benchmarks.baselines import tutorial_way

    keras.utils.set_random_seed(0)
    X, y, vocab = tutorial_way.build_dataset(text[: args.tutorial_chars], args.seq_length)
    model = tutorial_way.build_model(args.seq_length, len(vocab), units=args.units)
    windows = len(X)

    def fit(steps: int) -> None:
        n = min(windows, steps * TUTORIAL_BATCH)
        model.fit(X[:n], y[:n], batch_size=TUTORIAL_BATCH, epochs=1, shuffle=False, verbose=0)

    max_steps = windows // TUTORIAL_BATCH
    result = time_fit(fit, args.seconds, min(args.warmup_steps, max_steps),
                      min(args.calibration_steps, max_steps))
    # A fit is capped at one pass over the windows; count the steps actually run.
    result.steps = min(result.steps, max_steps)
    keras.backend.clear_session()
    return result, windows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--corpus", type=Path, default=None,
                        help="UTF-8 text (default: ../shared/corpora/tinyshakespeare.txt, "
                             "else a synthetic text)")
    parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds per variant")
    parser.add_argument("--seq-length", type=int, default=100)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--calibration-steps", type=int, default=5)
    parser.add_argument("--tutorial-chars", type=int, default=TUTORIAL_CHARS,
                        help="characters the tutorial way builds its windows from")
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run: tiny model and windows, 1 s per variant")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.seq_length, args.units = 1.0, 20, 32
        args.warmup_steps, args.calibration_steps, args.tutorial_chars = 2, 2, 5_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    from textgen.generate.data import Vocabulary
    from textgen.tf_setup import cpu_supports_bfloat16

    print(machine_header("textgen training throughput"))
    text, note = load_corpus(args.corpus, min_chars=1_000_000)
    print(note)
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    vocab_size = max(MIN_VOCAB, len(vocab))
    print(f"model: 2x{args.units}, embed 64, vocab {vocab_size}, windows of {args.seq_length}; "
          f"about {args.seconds:g} s timed per variant")
    bf16 = cpu_supports_bfloat16()
    if not bf16:
        print("note: this CPU has no AVX512-BF16/AMX; mixed_bfloat16 variants are skipped")

    tutorial, windows = measure_tutorial(text, args)
    tutorial_rate = tutorial.steps_per_second * TUTORIAL_BATCH
    rows = [[f"tutorial way (baseline, {windows:,} windows)", TUTORIAL_BATCH, TUTORIAL_BATCH,
             tutorial.steps, f"{tutorial.steps_per_second:.2f}", f"{tutorial_rate:,.0f}",
             "1.00"]]
    for variant in VARIANTS:
        if variant.precision == "mixed_bfloat16" and not bf16:
            rows.append([variant.name, variant.batch_size, "-", "-", "-", "skipped", "-"])
            continue
        measured = measure_textgen(variant, ids, vocab_size, args)
        per_step = variant.batch_size * args.seq_length
        rate = measured.steps_per_second * per_step
        rows.append([f"textgen {variant.name}", variant.batch_size, per_step, measured.steps,
                     f"{measured.steps_per_second:.2f}", f"{rate:,.0f}",
                     f"{rate / tutorial_rate:.1f}"])
    print()
    print(format_table(["variant", "batch", "signals/step", "steps", "steps/s", "chars/s",
                        "x tutorial"], rows))


if __name__ == "__main__":
    main()
