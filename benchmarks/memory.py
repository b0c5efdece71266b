"""Peak memory (RSS) of training against corpus size, and against the tutorial way.

Synthetic ASCII corpora (random words from a fixed list, seeded) of each size are written to
a temporary folder, and `textgen train FILE --epochs 1 --steps-per-epoch 20 --units 256` runs
on each in a fresh child process. The child runs textgen's CLI main() in-process and writes
its own peak RSS (getrusage(RUSAGE_SELF).ru_maxrss) when it exits, so every figure belongs to
one process. The largest corpus is also cut into `--folder-files` files (default 1,000: 100 kB
each at 100 MB) and trained on as a folder, to show that reading a collection costs what
reading one file does. The tutorial way is measured the same way: build_dataset on a corpus plus
build_model, in its own child. A bare `import tensorflow, keras` child gives the floor.

    python -m benchmarks.memory [--sizes 1 10 100] [--folder-files 1000] [--skip-tutorial]
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import (  # noqa: E402
    child_env,
    format_table,
    machine_header,
    summary,
    timed_run,
    write_synthetic_corpus,
)

MB = 1_000_000  # corpus sizes and RSS are both in MB (10^6 bytes)

_REPORT_RSS = """
import atexit, os, resource
def _report_rss():
    with open(os.environ["BENCH_RSS_FILE"], "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
atexit.register(_report_rss)
"""

TEXTGEN_CHILD = _REPORT_RSS + """
import sys
sys.argv = ["textgen", *sys.argv[1:]]
from textgen.cli import main
main()
"""

TUTORIAL_CHILD = _REPORT_RSS + """
import sys
from textgen.tf_setup import import_tensorflow
import_tensorflow()
from benchmarks.baselines import tutorial_way
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
X, y, vocab = tutorial_way.build_dataset(text, 100)
model = tutorial_way.build_model(100, len(vocab))
"""

FLOOR_CHILD = _REPORT_RSS + """
from textgen.tf_setup import import_tensorflow
import_tensorflow()
import keras
"""


@dataclass
class ChildResult:
    peak_mb: float
    seconds: float


def peak_rss(code: str, args: list[str], rss_file: Path) -> ChildResult:
    """Run `python -c code args...` in a fresh process; its own peak RSS in MB and wall time."""
    env = child_env()
    env["BENCH_RSS_FILE"] = str(rss_file)
    rss_file.unlink(missing_ok=True)
    seconds, result = timed_run([sys.executable, "-c", code, *args], env=env)
    if result.returncode != 0 or not rss_file.exists():
        raise SystemExit(f"child failed ({result.returncode}) for {args}: "
                         f"{result.stderr.strip()[-800:]}")
    kilobytes = int(rss_file.read_text())  # ru_maxrss is in KiB on Linux
    return ChildResult(kilobytes * 1024 / MB, seconds)


def cut_into_files(corpus: Path, folder: Path, count: int) -> Path:
    """The corpus as `count` files of about equal size, cut at line ends."""
    text = corpus.read_text(encoding="utf-8")
    folder.mkdir()
    start = 0
    for i in range(count):
        end = len(text) if i == count - 1 else text.find("\n", (i + 1) * len(text) // count)
        end = len(text) if end < 0 else end + 1
        (folder / f"part-{i:04d}.txt").write_text(text[start:end], encoding="utf-8")
        start = end
    return folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 100],
                        help="corpus sizes in MB")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="--steps-per-epoch of training")
    parser.add_argument("--folder-files", type=int, default=1000,
                        help="also train on the largest corpus cut into this many files "
                             "(0: skip)")
    parser.add_argument("--tutorial-mb", type=float, default=None,
                        help="corpus size for the tutorial way (default: the smallest size)")
    parser.add_argument("--skip-tutorial", action="store_true",
                        help="do not measure the tutorial way (it needs several GB at 1 MB)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 and 5 MB, a 2x64 model, 3 steps, tutorial on 0.1 MB")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.units, args.steps, args.folder_files = [1, 5], 64, 3, 50
        args.tutorial_mb = args.tutorial_mb or 0.1
    args.sizes = sorted(args.sizes)
    if args.tutorial_mb is None:
        args.tutorial_mb = args.sizes[0]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(machine_header("textgen peak RSS vs corpus size"))
    print(f"training: textgen train FILE --epochs 1 --steps-per-epoch {args.steps} "
          f"--units {args.units} (batch 64, windows of 100); one fresh process per row")
    rows = []
    textgen_mb: dict[float, float] = {}
    tutorial: ChildResult | None = None
    with tempfile.TemporaryDirectory(prefix="textgen-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rss_file = tmp / "rss.txt"
        floor = peak_rss(FLOOR_CHILD, [], rss_file)
        rows.append(["import tensorflow + keras only", "-", f"{floor.peak_mb:,.0f}",
                     f"{floor.seconds:.1f}"])
        for size in args.sizes:
            corpus = write_synthetic_corpus(tmp / f"corpus-{size:g}mb.txt", round(size * MB),
                                            seed=1)
            result = peak_rss(TEXTGEN_CHILD, [
                "train", str(corpus), "--epochs", "1", "--steps-per-epoch", str(args.steps),
                "--checkpoint-dir", str(tmp / "checkpoints"), "--units", str(args.units),
                "--run-name", f"m{size:g}"], rss_file)
            textgen_mb[size] = result.peak_mb
            rows.append([f"textgen train, {size:g} MB corpus", f"{size:g}",
                         f"{result.peak_mb:,.0f}", f"{result.seconds:.1f}"])
            if size == args.sizes[-1] and args.folder_files:
                folder = cut_into_files(corpus, tmp / "folder", args.folder_files)
                as_folder = peak_rss(TEXTGEN_CHILD, [
                    "train", str(folder), "--epochs", "1", "--steps-per-epoch", str(args.steps),
                    "--checkpoint-dir", str(tmp / "checkpoints"), "--units", str(args.units),
                    "--run-name", "folder"], rss_file)
                folder_ratio = as_folder.peak_mb / result.peak_mb
                rows.append([f"textgen train, the same as a folder of {args.folder_files:,} "
                             "files", f"{size:g}", f"{as_folder.peak_mb:,.0f}",
                             f"{as_folder.seconds:.1f}"])
            corpus.unlink()
        if not args.skip_tutorial:
            corpus = write_synthetic_corpus(tmp / "tutorial.txt", round(args.tutorial_mb * MB),
                                            seed=1)
            tutorial = peak_rss(TUTORIAL_CHILD, [str(corpus)], rss_file)
            rows.append([f"tutorial way build_dataset + build_model, {args.tutorial_mb:g} MB",
                         f"{args.tutorial_mb:g}", f"{tutorial.peak_mb:,.0f}",
                         f"{tutorial.seconds:.1f}"])
    print()
    print(format_table(["process", "corpus MB", "peak RSS MB", "wall s"], rows))
    print()
    if len(args.sizes) >= 2:
        low, high = args.sizes[-2], args.sizes[-1]
        slope = (textgen_mb[high] - textgen_mb[low]) / (high - low)
        print(f"slope between {low:g} and {high:g} MB: {slope:.2f} MB of RSS per MB of corpus")
    if args.folder_files:
        print(f"folder of {args.folder_files:,} files / one file, peak RSS at "
              f"{args.sizes[-1]:g} MB: {folder_ratio:.3f}x")
    if tutorial is None:
        print("tutorial way: skipped (--skip-tutorial)")
    elif args.tutorial_mb in textgen_mb:
        ratio = tutorial.peak_mb / textgen_mb[args.tutorial_mb]
        print(f"tutorial / textgen peak RSS at {args.tutorial_mb:g} MB: {ratio:.1f}x")
    else:
        print(f"tutorial / textgen ratio: n/a (the tutorial ran on {args.tutorial_mb:g} MB, "
              "textgen did not)")


if __name__ == "__main__":
    main()
