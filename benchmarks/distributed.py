"""Steps per second of one worker versus two local workers (MultiWorkerMirroredStrategy).

Both setups train the same model with the same per-replica batch on the bundled speech
repeated into a small corpus. On one 2-core machine the two workers share the cores, so the
ratio measures the strategy's overhead (gradient all-reduce over gRPC on 127.0.0.1), not a
speed-up: on separate machines each worker has its own cores.

    python -m benchmarks.distributed            # default model (2x256 LSTM)
    python -m benchmarks.distributed --quick    # 2x64, few steps
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine_header, summary


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def steps_per_second(run: Path, steps: int) -> float:
    """From history.csv: steps of the epochs after the first (which includes tracing)."""
    rows = list(csv.DictReader((run / "history.csv").open()))
    seconds = sum(float(r["seconds"]) for r in rows[1:])
    return steps * (len(rows) - 1) / seconds


def train_command(corpus: Path, ckpt: Path, name: str, args, strategy: str) -> list[str]:
    return [sys.executable, "-m", "textgen", "train", str(corpus), "--checkpoint-dir", str(ckpt),
            "--run-name", name, "--strategy", strategy, "--units", str(args.units),
            "--batch-size", str(args.batch_size), "--steps-per-epoch", str(args.steps),
            "--epochs", str(args.epochs), "--val-split", "0.05"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64, help="per replica")
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.steps, args.epochs = 64, 8, 2
    from textgen.generate.data import bundled_corpus_path

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "speech.txt"
        corpus.write_text(bundled_corpus_path().read_text(encoding="utf-8") * 40,
                          encoding="utf-8")
        ckpt = Path(tmp) / "ck"
        single = subprocess.run(train_command(corpus, ckpt, "one", args, "default"),
                                capture_output=True, text=True)
        if single.returncode != 0:
            raise SystemExit(single.stderr[-3000:])
        one = steps_per_second(ckpt / "one", args.steps)

        workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
        procs = []
        for index in range(2):
            env = {**os.environ, "TF_CONFIG": json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
            procs.append(subprocess.Popen(train_command(corpus, ckpt, "two", args,
                                                        "multi-worker"),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=env))
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(err[-3000:])
        two = steps_per_second(ckpt / "two", args.steps)

    print(machine_header("distributed training overhead"))
    print(f"2x{args.units} LSTM, {args.batch_size} windows per replica")
    print(f"{'setup':<28}{'steps/s':>10}{'windows/s':>12}")
    print(f"{'1 worker (default)':<28}{one:>10.2f}{one * args.batch_size:>12.0f}")
    print(f"{'2 local workers':<28}{two:>10.2f}{two * 2 * args.batch_size:>12.0f}")
    print(f"ratio of windows/s, 2 workers / 1: {2 * two / one:.2f}")
    print("note: both workers share this machine's cores, so this ratio measures the "
          "strategy's overhead, not the speed-up of two machines.")


if __name__ == "__main__":
    main()
