"""BLAS threads for batched sampling: the default, one, or textgen's choice by timing.

`textgen sample --num-samples N` and `textgen serve` step N sequences together with NumPy
(float32 products through OpenBLAS). OpenBLAS splits a product over its threads (one per core
by default), and a thread that finishes first spins waiting for its partner: when another
program holds a core, the partner runs late and the batch waits. This steps a 2x512 LSTM
(vocabulary 236: the shipped bases' size; random weights, speed does not depend on them) at
1, 8 and 32 rows, drawing included, on the default count, on one thread, and as textgen does
(`textgen.generate.blas_threads`: both timed now and then, the faster run in between), while
0, 1 and 2 other processes spin on the CPU (started here: pure-Python loops, as a training
run or a browser keeps a core busy). Each figure is the mean time per step over the whole
timing (what a user waits), so stalls and trials count.

    python -m benchmarks.blas_threads [--steps 1200] [--quick] [--busy 0 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from benchmarks.batch_step import random_weights
from benchmarks.common import format_table, machine_header, summary

UNITS, VOCAB, LAYERS, EMBED = 512, 236, 2, 64
ROWS = (1, 8, 32)
SPIN = "while True: pass"


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` processes each spinning on a core for as long as the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)  # scheduled before the timing starts
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def mean_microseconds(step, steps: int) -> float:
    """The mean time per call over `steps` calls, after a warm-up of a tenth as many."""
    for _ in range(max(10, steps // 10)):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1e6


def step_costs(steps: int, how: str) -> dict[int, float]:
    """Microseconds per step with drawing, by rows: on NumPy's `default` count, on `one`
    thread, or `timed` as textgen's batches choose."""
    from threadpoolctl import threadpool_limits

    from textgen.generate.blas_threads import BlasThreads
    from textgen.generate.config import GeneratorConfig
    from textgen.generate.drawing import choose_next_ids
    from textgen.generate.stepper import NumpyStepper

    weights = random_weights(np.random.default_rng(0), UNITS, VOCAB)
    stepper = NumpyStepper(GeneratorConfig(vocab_size=VOCAB, layers=LAYERS, units=UNITS,
                                           embed_dim=EMBED), weights)
    costs = {}
    for rows in ROWS:
        state = stepper.zero_state(rows)
        ids = np.arange(rows) % VOCAB
        rngs = [np.random.default_rng(i) for i in range(rows)]
        settings = [(0.8, None, None)] * rows

        chooser = BlasThreads()  # a fresh one per timing (its first trial is in the warm-up)

        def step(s=state, i=ids, g=rngs, d=settings, c=chooser) -> object:
            if how == "timed":
                with c:
                    return choose_next_ids(c.timed(stepper.advance, s, i), g, d)
            return choose_next_ids(stepper.advance(s, i), g, d)

        with (threadpool_limits(limits=1, user_api="blas") if how == "one"
              else contextlib.nullcontext()):
            costs[rows] = mean_microseconds(step, steps)
    return costs


def product_gflops(size: int = 1024, repeats: int = 10) -> float:
    """NumPy's float32 matrix products now, in GFLOP/s (the VM's phase, noted with the figures)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--steps", type=int, default=1200, help="steps per timing (a sample's "
                        "length: trials included)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2],
                        help="counts of busy processes to time beside")
    args = parser.parse_args(argv)
    steps = 20 if args.quick else args.steps
    from threadpoolctl import threadpool_info

    print(machine_header("textgen: BLAS threads for batched sampling, by batch rows and load"))
    blas = [f"{i['internal_api']} {i.get('architecture', '')}, {i['num_threads']} threads"
            for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"NumPy's BLAS: {'; '.join(blas) or 'none found'}; {os.cpu_count()} logical CPUs")
    print(f"NumPy float32 products before the timings: {product_gflops():.0f} GFLOP/s")
    print(f"model: 2x{UNITS} LSTM, vocab {VOCAB}; microseconds per step with drawing, the "
          "mean over each timing")
    table = []
    for busy in args.busy:
        with busy_processes(busy):
            costs = {how: step_costs(steps, how) for how in ("default", "one", "timed")}
        for rows in ROWS:
            default, one, timed = (costs[how][rows] for how in ("default", "one", "timed"))
            table.append([str(busy), str(rows), f"{default:,.0f}", f"{one:,.0f}",
                          f"{timed:,.0f}", f"{default / timed:.2f}",
                          f"{min(default, one) / timed:.2f}"])
    print()
    print(format_table(["busy processes", "rows", "default (us)", "one thread (us)",
                        "timed (us)", "timed: x default", "timed: x the better"], table))
    print("\n(timed: textgen's batches; x above 1: faster than that; 1 row: textgen samples "
          "one sequence on one thread)")


if __name__ == "__main__":
    main()
