"""Sampling speed: textgen's one-step NumPy sampler against the tutorial's predict-per-char loop.

An untrained 2x256 LSTM generator (random weights: speed does not depend on them) is saved as
a real run folder, loaded with textgen.generate.sampling.load_sampler and timed at batch 1. textgen
carries the recurrent state, so a character costs one step whatever the window length; the
tutorial way re-runs the whole window through `model.predict` for every character. Then the
cost of one character at batch 1 beside the bare NumPy step (what `textgen sample` adds to the
step, and what the batching path would). Also timed:
the cold start of `python -m textgen sample` in a new process, next to a bare
`python -c "import tensorflow"`.

    python -m benchmarks.sampling [--chars 5000] [--quick]
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    child_env,
    format_table,
    machine_header,
    median,
    summary,
    timed_run,
)

VOCAB_SIZE = 65
# 65 sorted characters: newline, space and printable ASCII up to '_'.
VOCAB_CHARS = tuple(sorted(["\n", *(chr(c) for c in range(32, 96))]))


def save_untrained_run(folder: Path, seq_length: int, units: int) -> Path:
    """Build an untrained 2-layer LSTM generator and save it as a complete run folder."""
    import keras

    from textgen.generate.config import GeneratorConfig
    from textgen.generate.data import Vocabulary
    from textgen.generate.model import build_generator
    from textgen.runs import RunDir

    keras.utils.set_random_seed(0)
    config = GeneratorConfig(vocab_size=VOCAB_SIZE, seq_length=seq_length, layers=2,
                             units=units)
    model = build_generator(config)
    run = RunDir(folder)
    run.path.mkdir(parents=True, exist_ok=True)
    run.vocab.write_text(Vocabulary(VOCAB_CHARS).to_json(), encoding="utf-8")
    # a trained run records its text's runs: sampling keeps to them (its per-step cost timed)
    run.write_meta({"mode": "generate", "config": config.to_dict(),
                    # as a fine-tuned run's: a quarter of the vocabulary not in the text
                    "text_runs": dict.fromkeys(VOCAB_CHARS[: 3 * VOCAB_SIZE // 4], 3),
                    # and its lines start with a third of them (the rule after a line break)
                    "line_starts": "".join(VOCAB_CHARS[: VOCAB_SIZE // 3]),
                    # and lines of at most 60, words of 12 (the rule on long lines)
                    "longest_line": 60, "longest_word": 12,
                    "training": {"epochs_done": 1, "steps_per_epoch": 1, "batch_size": 1}})
    model.save(run.best)
    model.save(run.last)
    keras.backend.clear_session()
    return run.path


def textgen_chars_per_second(run_path: Path, chars: int, repeats: int) -> float:
    """Median chars/s of Sampler.generate (batch 1, temperature 0.8) over `repeats` runs."""
    from textgen.generate.sampling import load_sampler

    sampler = load_sampler(run_path)
    sampler.generate(length=10, rng_seed=0)  # first-call costs (imports, caches) excluded
    rates = []
    for i in range(repeats):
        start = time.perf_counter()
        sampler.generate(length=chars, temperature=0.8, rng_seed=i)
        rates.append(chars / (time.perf_counter() - start))
    return median(rates)


def one_row_costs(run_path: Path, chars: int, repeats: int) -> dict[str, float]:
    """Chars/s at batch 1 three ways, alternating: the bare NumPy step (the bound: one step a
    character and nothing else), Sampler.generate (the one-sequence path `textgen sample`
    takes), and the same sample through GenerationBatch with one row (the batching path)."""
    from textgen.generate.sampling import GenerationBatch, SamplingSettings, load_sampler

    sampler = load_sampler(run_path)
    settings = SamplingSettings(temperature=0.8, length=chars, rng_seed=0)

    def bare() -> None:
        state, ids = sampler.stepper.zero_state(1), np.zeros(1, np.intp)
        for _ in range(chars):
            sampler.stepper.advance(state, ids)

    def alone() -> None:
        sampler.sample(None, settings)

    def batched() -> None:
        batch = GenerationBatch(sampler)
        batch.join(None, settings)
        batch.run()

    ways = {"bare NumPy step": bare, "textgen sample (one sequence)": alone,
            "GenerationBatch, one row": batched}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            rates[name].append(chars / (time.perf_counter() - start))
    return {name: median(values) for name, values in rates.items()}


def tutorial_chars_per_second(seq_length: int, units: int, chars: int) -> float:
    """chars/s of the tutorial way's greedy loop (one model.predict per character)."""
    import keras

    from benchmarks.baselines import tutorial_way

    keras.utils.set_random_seed(0)
    model = tutorial_way.build_model(seq_length, VOCAB_SIZE, units=units)
    seed_ids = np.random.default_rng(0).integers(VOCAB_SIZE, size=seq_length)
    rate = tutorial_way.sample_chars_per_second(model, seed_ids, VOCAB_SIZE, n_chars=chars)
    keras.backend.clear_session()
    return rate


def cold_start_seconds(cmd: list[str], repeats: int) -> float:
    """Median wall time of a command in a fresh process; fails loudly if it fails."""
    times = []
    for _ in range(repeats):
        seconds, result = timed_run(cmd, env=child_env())
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): "
                             f"{result.stderr.strip()[-500:]}")
        times.append(seconds)
    return median(times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--chars", type=int, default=5000, help="characters per textgen timing")
    parser.add_argument("--tutorial-chars", type=int, default=30,
                        help="characters per tutorial timing")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats of each timing (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.chars, args.tutorial_chars, args.repeats = 500, 5, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    print(machine_header("textgen sampling speed"))
    print(f"model: untrained 2x{args.units} LSTM, vocab {VOCAB_SIZE}, batch 1; textgen "
          f"{args.chars} chars, tutorial {args.tutorial_chars} chars per timing, "
          f"median of {args.repeats}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="textgen-bench-") as tmp:
        runs = {L: save_untrained_run(Path(tmp) / f"seq{L}", L, args.units) for L in (100, 400)}
        for seq_length, run_path in runs.items():
            ours = textgen_chars_per_second(run_path, args.chars, args.repeats)
            theirs = tutorial_chars_per_second(seq_length, args.units, args.tutorial_chars)
            rows.append([f"seq_length {seq_length}", f"{ours:,.0f}", f"{1000 / ours:.3f}",
                         f"{theirs:,.1f}", f"{1000 / theirs:.1f}", f"{ours / theirs:,.0f}"])
        print()
        print(format_table(["window", "textgen chars/s", "textgen ms/char",
                            "tutorial chars/s", "tutorial ms/char", "x tutorial"], rows))

        costs = one_row_costs(runs[100], args.chars, args.repeats)
        bound = costs["bare NumPy step"]
        print()
        print(format_table(["batch 1, the same model", "chars/s", "x the bare step"],
                           [[name, f"{rate:,.0f}", f"{rate / bound:.2f}"]
                            for name, rate in costs.items()]))

        sample_cmd = [sys.executable, "-m", "textgen", "sample", "--model", str(runs[100]),
                      "--length", "500", "--rng-seed", "0"]
        sample_s = cold_start_seconds(sample_cmd, args.repeats)
        tf_s = cold_start_seconds([sys.executable, "-c", "import tensorflow"], args.repeats)
    print()
    print(format_table(
        ["cold start (new process, wall time)", "seconds"],
        [["python -m textgen sample --length 500", f"{sample_s:.2f}"],
         ['python -c "import tensorflow"', f"{tf_s:.2f}"]],
    ))


if __name__ == "__main__":
    main()
