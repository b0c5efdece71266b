"""Samples that share a prompt: `n` samples of one long seed read it in one row, against each
reading it in its own row (as textgen did before), on the shipped `verse` base (the 2x512 every
fine-tuned run has).

For n = 1, 4 and 16 samples of a 2,000-character seed (the bundled speech, and its start
again) and 100 generated characters each, prints the seconds to read the seed (to the first
generated character), the seconds in all, and the ratio of the old way's time to the new.
The old way is the same GenerationBatch with its seed sharing turned off, in the same run.
The samples' texts are checked to be the same both ways.

    python -m benchmarks.shared_prompt [--seed-chars 2000] [--length 100]   # about a minute
    python -m benchmarks.shared_prompt --quick
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import format_table, machine_header, summary
from textgen.generate.base import load_base
from textgen.generate.sampling import GenerationBatch, Sampler, SamplingSettings
from textgen.generate.stepper import NumpyStepper

CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "othello.txt"


class NeverShared(dict):
    """GenerationBatch's seeds of this step, never holding one: every sequence reads alone."""

    def setdefault(self, key: object, default: object = None) -> object:
        return default


def timed(sampler: Sampler, seed: str, n: int, length: int, shared: bool
          ) -> tuple[float, float, list[str]]:
    """(seconds to the first generated character, seconds in all, the texts)."""
    batch = GenerationBatch(sampler)
    if not shared:
        batch._joined = NeverShared()
    started = time.perf_counter()
    rows = [batch.join(seed, SamplingSettings(temperature=0.8, length=length, rng_seed=i))
            for i in range(n)]
    first = None
    while batch.active:
        batch.step()
        if first is None and rows[0].generated:
            first = time.perf_counter() - started
    return first, time.perf_counter() - started, ["".join(g.text) for g in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--seed-chars", type=int, default=2000)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.seed_chars, args.length = 100, 5
    base = load_base("verse")
    sampler = Sampler(base.vocab, NumpyStepper(base.config, base.weights))
    speech = CORPUS.read_text(encoding="utf-8")
    seed = (speech * (args.seed_chars // len(speech) + 1))[:args.seed_chars]
    print(machine_header(f"shared prompt: {len(seed):,}-character seed, {args.length} "
                         f"characters per sample, the verse base ({base.config.layers}x"
                         f"{base.config.units})"))
    rows = []
    for n in (1, 4, 16):
        old_first, old_total, old_texts = timed(sampler, seed, n, args.length, shared=False)
        new_first, new_total, new_texts = timed(sampler, seed, n, args.length, shared=True)
        assert new_texts == old_texts, "sharing the seed changed a sample"
        rows.append([n, f"{old_first:.2f}", f"{new_first:.2f}", f"{old_first / new_first:.2f}x",
                     f"{old_total:.2f}", f"{new_total:.2f}", f"{old_total / new_total:.2f}x"])
    print(format_table(["samples", "seed read alone each (s)", "shared (s)", "ratio",
                        "all alone each (s)", "shared (s)", "ratio"], rows))


if __name__ == "__main__":
    main()
