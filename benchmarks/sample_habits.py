"""What a run's samples hold that its training text never does: runs of spaces or line
breaks longer than the text's, characters the text lacks (a fine-tuned run's vocabulary is
its base's 236), lines that start with a character no line of the text starts with (a
space: the base's indenting), and lines longer than the text's longest (hard-wrapped prose
sampled as its base's paragraph-long lines), with `textgen sample`'s text limits on (the
default) and off.

    python -m benchmarks.sample_habits checkpoints/othello              # the quick start's run
    python -m benchmarks.sample_habits checkpoints/speech --text speech.txt --samples 40

Samples start from the run's default seed, at temperature 0.8, with random seeds 0..N-1.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from benchmarks.common import format_table, machine_header, summary


def longest(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(f"{re.escape(char)}+", text)), default=0)


def odd_line_starts(sample: str, starts: set[str]) -> int:
    """Lines of the sample (after its first line break) that start unlike the text's."""
    return sum(line[:1] not in starts for line in sample.split("\n")[1:] if line)


def line_lengths(samples: list[str]) -> list[int]:
    """The lengths of the samples' lines (a sample starts after a line break, from the
    default seed; its last line may be cut short by its length)."""
    return [len(line) for sample in samples for line in sample.split("\n")]


def habits(run: Path, text: str, samples: int, length: int) -> list[list[str]]:
    from textgen.generate.sampling import SamplingSettings, load_sampler

    sampler = load_sampler(run)
    chars, starts = set(text), {line[:1] for line in text.split("\n")}
    space, newline = longest(text, " "), longest(text, "\n")
    longest_line = max(map(len, text.split("\n")))
    rows = []
    for limits in (True, False):
        texts = [sampler.sample(None, SamplingSettings(length=length, rng_seed=seed,
                                                       text_limits=limits))[1:]
                 for seed in range(samples)]
        spaces = [longest(t, " ") for t in texts]
        lines = line_lengths(texts)
        rows.append(["on" if limits else "off",
                     f"{sum(n > space + 2 for n in spaces)}/{samples}",
                     str(max(spaces)),
                     f"{sum(longest(t, chr(10)) > newline for t in texts)}/{samples}",
                     f"{sum(sum(c not in chars for c in t) for t in texts) / samples:.1f}",
                     f"{sum(odd_line_starts(t, starts) > 0 for t in texts)}/{samples}",
                     f"{sum(n > longest_line for n in lines)}/{len(lines)}",
                     f"{sum(n > longest_line + 10 for n in lines)}/{len(lines)}",
                     str(max(lines))])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("run", type=Path)
    parser.add_argument("--text", type=Path, help="the training text (default: run.json's)")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--length", type=int, default=300)
    args = parser.parse_args()
    from textgen.reading import Decoding, read_text
    from textgen.runs import RunDir

    meta = RunDir(args.run).read_meta()
    text = read_text(args.text or Path(meta["corpus"]), Decoding())
    print(machine_header("sample habits"))
    print(f"run {args.run.name}: {args.samples} samples of {args.length} characters; the "
          f"text's longest runs: {longest(text, ' ')} spaces, {longest(text, chr(10))} line "
          f"breaks; its longest line: {max(map(len, text.split(chr(10))))} characters")
    print(format_table(["text limits", "samples: spaces 3+ past the text's run",
                        "longest space run", "samples: line breaks past it",
                        "characters not in the text per sample",
                        "samples: a line started unlike the text's",
                        "lines longer than the text's longest", "lines 10+ longer",
                        "longest line"],
                       habits(args.run, text, args.samples, args.length)))


if __name__ == "__main__":
    main()
