"""Quality per CPU-minute: validation bits/char after the same wall-clock budget.

textgen (`textgen train --preset cpu-10min --max-time M`, or the plain defaults with
`--preset none`) and the tutorial way (benchmarks/baselines/tutorial_way.py) each train for M
minutes on the first 90% of tinyshakespeare and are scored on the last 10% (nanoGPT's split).
Each runs in its own process, one after the other, so they do not share the two cores.

    python -m benchmarks.quality                 # 10 + 10 minutes
    python -m benchmarks.quality --minutes 1 --skip-tutorial   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine_header

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPUS = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def run_textgen(corpus: Path, minutes: float, preset: str | None, workdir: Path) -> dict:
    """Train with the CLI in a child process; read the figures back from run.json."""
    cmd = [sys.executable, "-m", "textgen", "train", str(corpus), "--max-time", str(minutes),
           "--checkpoint-dir", str(workdir), "--run-name", "quality"]
    if preset:
        cmd += ["--preset", preset]
    else:
        cmd += ["--epochs", "100000"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"textgen train failed:\n{proc.stderr[-3000:]}")
    meta = json.loads((workdir / "quality" / "run.json").read_text())
    training, config = meta["training"], meta["config"]
    history = (workdir / "quality" / "history.csv").read_text().splitlines()
    seconds = sum(float(line.split(",")[-1]) for line in history[1:])
    steps = training["epochs_done"] * training["steps_per_epoch"]
    return {
        "val_bits_per_char": training["best_logs"]["val_bits_per_char"],
        "signals_per_second": steps * training["batch_size"] * config["seq_length"] / seconds,
        "model": f"{config['layers']}x{config['units']} {config['cell'].upper()} "
                 f"{config['precision']}, batch {training['batch_size']}",
    }


def run_tutorial(corpus: Path, minutes: float) -> dict:
    code = ("import json, sys; from benchmarks.baselines.tutorial_way import main; "
            f"r = main(['--corpus', {str(corpus)!r}, '--seconds', '{minutes * 60}']); "
            "print('RESULT ' + json.dumps(r))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"tutorial way failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED_CORPUS)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--preset", default="cpu-10min", help="textgen preset, or 'none'")
    parser.add_argument("--skip-tutorial", action="store_true")
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"skipped: {args.corpus} is absent (tinyshakespeare lives in ../shared)")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(machine_header("quality per CPU-minute"))
    print(f"corpus {args.corpus.name}: first 90% train, last 10% validation; "
          f"{args.minutes:g} minutes each\n")
    with tempfile.TemporaryDirectory() as tmp:
        preset = None if args.preset == "none" else args.preset
        ours = run_textgen(args.corpus, args.minutes, preset, Path(tmp))
    rows = [("textgen " + (preset or "defaults"), ours["model"], ours["val_bits_per_char"],
             ours["signals_per_second"])]
    if not args.skip_tutorial:
        theirs = run_tutorial(args.corpus, args.minutes)
        rows.append(("tutorial way", "2x256 LSTM float32, batch 64, last char only",
                     theirs["val_bits_per_char"], theirs["signals_per_second"]))
    print(f"{'setup':<24}{'model':<44}{'val bits/char':>14}{'signals/s':>12}")
    for name, model, bpc, speed in rows:
        print(f"{name:<24}{model:<44}{bpc:>14.3f}{speed:>12,.0f}")
    if len(rows) == 2:
        print(f"\nthroughput ratio textgen / tutorial: {rows[0][3] / rows[1][3]:.0f}x; "
              f"bits/char {rows[0][2]:.3f} vs {rows[1][2]:.3f}")
    print("target: textgen <= 2.20 bits/char after 10 minutes (nanoGPT CPU config: 2.24-2.27)")


if __name__ == "__main__":
    main()
