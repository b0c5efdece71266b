"""Crash safety: kill -9 training at random moments, resume, and check nothing is lost or corrupt.

A small generator is trained on the bundled Othello speech (repeated into a temporary file)
with mid-epoch backups every `--backup-every` steps. Each cycle starts
`textgen train ... [--resume]`, kills it with SIGKILL after a seeded random delay, then checks
that every file under its final name in the run folder loads (.keras with
keras.saving.load_model(safe_mode=True), .json, .csv; names starting with '.' are temporaries
and ignored). After the cycles the run is resumed to the end, and the same training is run
without interruption for comparison.

Work lost per kill is measured, not assumed: the child runs textgen's CLI main() in-process with
one extra passive Keras callback that appends a byte to a log file after every training step,
so the steps a killed process had completed are known. Steps saved come from the run folder as
a resume sees them: run.json's epochs_done x steps per epoch, plus the step of the newest
backup/epoch-EEEEEE-step-SSSSSSSSS.keras of the unfinished epoch.

    python -m benchmarks.kill_resume [--cycles 10] [--quick]
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.common import (  # noqa: E402
    REPO_ROOT,
    child_env,
    format_table,
    machine_header,
    summary,
)

BACKUP_NAME = re.compile(r"^epoch-(\d{6})-step-(\d{9})\.keras$")

# textgen's CLI, plus a callback that logs one byte per finished training step.
CHILD = """
import os, sys
_fd = os.open(os.environ["BENCH_STEP_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
import textgen.training.lifecycle as _lifecycle
_fit_run = _lifecycle.fit_run
def _fit_run_logging_steps(*args, callbacks=None, **kwargs):
    import keras
    class StepLog(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            os.write(_fd, b".")
    return _fit_run(*args, callbacks=[*(callbacks or []), StepLog()], **kwargs)
_lifecycle.fit_run = _fit_run_logging_steps
sys.argv = ["textgen", *sys.argv[1:]]
from textgen.cli import main
main()
"""


@dataclass
class Cycle:
    delay: float
    start_steps: int  # the resume point the process started from
    completed_steps: int  # steps done when it was killed (start + steps it ran)
    saved_steps: int  # steps a resume continues from after the kill
    corrupt: list[str] = field(default_factory=list)
    finished: bool = False  # the process ended by itself before the kill

    @property
    def lost(self) -> int:
        """Steps done but not saved. A kill between a backup's save and the step log's byte
        reads as -1; that is 0 steps lost (the log has a resolution of one step)."""
        return max(0, self.completed_steps - self.saved_steps)


def steps_saved(run: Path, steps_per_epoch: int) -> int:
    """Steps a resume continues from: finished epochs plus the newest backup past them."""
    try:
        meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 0
    done = int(meta.get("training", {}).get("epochs_done", 0))
    step = 0
    backup_dir = run / "backup"
    if backup_dir.is_dir():
        for path in backup_dir.iterdir():
            match = BACKUP_NAME.match(path.name)
            if match and int(match[1]) == done:
                step = max(step, int(match[2]))
    return done * steps_per_epoch + step


def check_files(run: Path) -> tuple[list[str], int]:
    """Files under their final names that do not load, and the number of files checked."""
    import keras

    corrupt, checked = [], 0
    if not run.is_dir():
        return corrupt, checked
    for path in sorted(run.rglob("*")):
        relative = path.relative_to(run)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix not in (".keras", ".json", ".csv"):
            continue
        checked += 1
        try:
            if path.suffix == ".keras":
                keras.saving.load_model(path, safe_mode=True, compile=False)
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            else:
                with open(path, newline="", encoding="utf-8") as f:
                    rows = list(csv.reader(f))
                if not rows or any(len(row) != len(rows[0]) for row in rows):
                    raise ValueError("ragged or empty CSV")
        except Exception as exc:  # any failure to load counts as corrupt
            corrupt.append(f"{relative} ({type(exc).__name__})")
    return corrupt, checked


def start_child(args: list[str], step_log: Path, log: Path) -> subprocess.Popen:
    env = child_env()
    env["BENCH_STEP_LOG"] = str(step_log)
    step_log.write_bytes(b"")
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=REPO_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def run_to_end(args: list[str], step_log: Path, log: Path) -> float:
    """Run a training child to completion; its wall time. Exits with its log if it fails."""
    start = time.perf_counter()
    code = start_child(args, step_log, log).wait()
    if code != 0:
        raise SystemExit(f"training failed ({code}):\n{log.read_text()[-1500:]}")
    return time.perf_counter() - start


def final_val_loss(run: Path) -> float:
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    return float(meta["training"]["last_logs"]["val_loss"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--cycles", type=int, default=10, help="kill/resume cycles")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--steps-per-epoch", type=int, default=20)
    parser.add_argument("--backup-every", type=int, default=5)
    parser.add_argument("--min-delay", type=float, default=4.0,
                        help="shortest time from a process's start to its kill, seconds")
    parser.add_argument("--max-delay", type=float, default=14.0,
                        help="longest time from a process's start to its kill, seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--repeat", type=int, default=20,
                        help="copies of the bundled corpus in the training text")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 cycle, 5 epochs, a short delay")
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles, args.epochs, args.min_delay, args.max_delay = 1, 5, 6.0, 7.0
    if not 0 < args.min_delay <= args.max_delay:
        parser.error("need 0 < --min-delay <= --max-delay")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    from textgen.generate.data import bundled_corpus_path

    print(machine_header("textgen kill -9 / resume"))
    spe = args.steps_per_epoch
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="textgen-bench-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus.txt"
        corpus.write_text(bundled_corpus_path().read_text(encoding="utf-8") * args.repeat,
                          encoding="utf-8")
        checkpoints = tmp / "checkpoints"

        def train_args(run_name: str) -> list[str]:
            return ["train", str(corpus), "--checkpoint-dir", str(checkpoints),
                    "--epochs", str(args.epochs), "--units", "32", "--embed-dim", "16",
                    "--seq-length", "32", "--batch-size", "16", "--steps-per-epoch", str(spe),
                    "--backup-every", str(args.backup_every), "--rng-seed", "1",
                    "--run-name", run_name]

        print(f"training: {args.epochs} epochs x {spe} steps, backup every "
              f"{args.backup_every} steps, 2x32 LSTM on {corpus.stat().st_size:,} chars; "
              f"kills after {args.min_delay:g}-{args.max_delay:g} s (seed {args.seed})")
        run = checkpoints / "killed"
        cycles: list[Cycle] = []
        saved = 0
        for i in range(args.cycles):
            step_log, log = tmp / f"steps-{i}.log", tmp / f"cycle-{i}.log"
            child = start_child(train_args("killed") + (["--resume"] if i else []), step_log,
                                log)
            delay = rng.uniform(args.min_delay, args.max_delay)
            finished = False
            try:
                code = child.wait(timeout=delay)
                finished = True
                if code != 0:
                    raise SystemExit(f"training failed ({code}):\n{log.read_text()[-1500:]}")
            except subprocess.TimeoutExpired:
                child.kill()  # SIGKILL
                child.wait()
            cycle = Cycle(delay, saved, saved + step_log.stat().st_size, steps_saved(run, spe),
                          check_files(run)[0], finished)
            cycles.append(cycle)
            saved = cycle.saved_steps
            if finished:
                print(f"note: training finished by itself in cycle {i + 1}; raise --epochs "
                      "for more kills")
                break

        resumed_s = run_to_end(train_args("killed") + ["--resume"], tmp / "steps-end.log",
                               tmp / "end.log")
        end_corrupt, end_checked = check_files(run)
        straight_s = run_to_end(train_args("straight"), tmp / "steps-straight.log",
                                tmp / "straight.log")
        interrupted, uninterrupted = final_val_loss(run), final_val_loss(checkpoints / "straight")

    rows = [[i + 1, f"{c.delay:.1f}", c.start_steps, c.completed_steps, c.saved_steps,
             c.saved_steps - c.start_steps, c.lost, len(c.corrupt),
             "finished" if c.finished else "killed"] for i, c in enumerate(cycles)]
    print()
    print(format_table(["cycle", "kill after s", "start step", "steps done", "steps saved",
                        "saved this cycle", "lost", "corrupt", "end"], rows))
    killed = [c for c in cycles if not c.finished]
    corrupt = [name for c in cycles for name in c.corrupt] + end_corrupt
    for name in corrupt:
        print(f"corrupt: {name}")
    for i, c in enumerate(cycles):
        if c.completed_steps - c.saved_steps < -1:
            print(f"warning: cycle {i + 1} saved {c.saved_steps} steps but only "
                  f"{c.completed_steps} were done; the resume point is inconsistent")
    lost = [c.lost for c in killed]
    gained = [c.saved_steps - c.start_steps for c in cycles]
    summary = [
        ["cycles run (kills)", f"{len(cycles)} ({len(killed)})"],
        ["corrupt files found (all checks)", f"{len(corrupt)} (after the final resume: "
                                            f"{end_checked} files checked, "
                                            f"{len(end_corrupt)} corrupt)"],
        ["mean steps saved per cycle", f"{statistics.mean(gained):.1f}" if gained else "-"],
        ["work lost per kill, mean / max (steps)",
         f"{statistics.mean(lost):.1f} / {max(lost)}" if lost else "-"],
        ["bound on work lost per kill (--backup-every)", f"{args.backup_every}"],
        ["final val loss, interrupted run", f"{interrupted:.4f} (final resume {resumed_s:.1f} s)"],
        ["final val loss, uninterrupted run", f"{uninterrupted:.4f} ({straight_s:.1f} s)"],
        ["difference (interrupted - uninterrupted)", f"{interrupted - uninterrupted:+.4f}"],
    ]
    print()
    print(format_table(["figure", "value"], summary))


if __name__ == "__main__":
    main()
