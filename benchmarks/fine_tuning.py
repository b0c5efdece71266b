"""The quick start from the base against from scratch: the bundled speech, scored on the rest of
*Othello*, with a sample of each.

`textgen train` with no flags trains on the bundled 1.8 kB speech (Othello's Act I, Scene III
reply). Each way (`--base auto`, the default, and `--base none`) is trained in its own
process, then scored on the whole play with the speech cut out (`textgen evaluate --window
100`, the best checkpoint), and sampled from the seed the README uses. The budgeted texts
(Othello, tinyshakespeare, Botchan) are measured by benchmarks/quality.py with
`--setups "defaults,--base none"`.

    python -m benchmarks.fine_tuning [--play ../shared/corpora/othello.txt] [--bases auto,none]

`--bases` compares other starting points in the same run: a shipped base's name, a run folder
(an earlier base kept as a run, say), or none.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_CORPORA, format_table, machine_header, summary
from benchmarks.quality import EVAL_WINDOW, textgen

SEED = "Her father loved me"
DEFAULT_PLAY = SHARED_CORPORA / "othello.txt"
DEFAULT_BASES = "auto,none"  # the default (no flags) against from scratch


def rest_of_play(play: str, speech: str) -> str:
    """The play with the bundled speech cut out: what the quick start's model never saw."""
    if speech.strip() not in play:
        raise SystemExit("the bundled speech is not in the play: wrong file?")
    return play.replace(speech.strip(), "")


def way_name(base: str) -> str:
    """How the table names a starting point."""
    if base == "auto":
        return "from the base (no flags)"
    return "from scratch (--base none)" if base == "none" else f"--base {base}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--play", type=Path, default=DEFAULT_PLAY)
    parser.add_argument("--sample-chars", type=int, default=300)
    parser.add_argument("--bases", default=DEFAULT_BASES,
                        help="comma-separated --base values to train from, each in turn")
    args = parser.parse_args(argv)
    if not args.play.is_file():
        print(f"skipped: {args.play} absent (the whole play lives in ../shared)")
        return
    from textgen.generate.data import bundled_corpus_path

    held_out = rest_of_play(args.play.read_text(encoding="utf-8"),
                            bundled_corpus_path().read_text(encoding="utf-8"))
    print(machine_header("the quick start, from the base and from scratch"))
    rows, samples = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rest = work / "othello-without-the-speech.txt"
        rest.write_text(held_out, encoding="utf-8")
        for number, base in enumerate(args.bases.split(",")):
            way, name = way_name(base), f"way-{number}"
            start = time.perf_counter()
            textgen("train", "--base", base, "--checkpoint-dir", str(work), "--run-name", name)
            seconds = time.perf_counter() - start
            meta = json.loads((work / name / "run.json").read_text())
            scores = {which: json.loads(textgen(
                "evaluate", str(rest), "--model", str(work / name), "--checkpoint", which,
                "--json", "--window", str(EVAL_WINDOW)).stdout) for which in ("best", "last")}
            training = meta["training"]
            rows.append([way, f"{seconds:.0f}", str(training.get("best_epoch")),
                         f"{training['best_logs'].get('val_bits_per_char', float('nan')):.3f}",
                         f"{scores['best']['bits_per_char']:.3f}",
                         f"{scores['best']['bits_per_char_stateful']:.3f}",
                         f"{scores['last']['bits_per_char']:.3f}"])
            samples[way] = {which: json.loads(textgen(
                "sample", "--model", str(work / name), "--checkpoint", which, "--seed", SEED,
                "--length", str(args.sample_chars), "--temperature", "0.8", "--rng-seed", "0",
                "--json").stdout)["samples"][0] for which in ("best", "last")}
    print(format_table(["way", "seconds", "best epoch", "val bits/char (speech's end)",
                        "rest of play: best", "best, stateful", "last"], rows))
    for way, by_checkpoint in samples.items():
        for which, text in by_checkpoint.items():
            print(f"\n--- {way}, {which}.keras, temperature 0.8, --rng-seed 0 ---\n{text}")


if __name__ == "__main__":
    main()
