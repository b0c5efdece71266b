"""Time to answer small questions: commands that need no TensorFlow, or little of it.

Each command runs as a new process, as a user types it, `--repeats` times (the median is
printed):

- `textgen train CORPUS` on a run that exists (refused: "already holds a run");
- `textgen info` with no argument (a usage error);
- `textgen classify predict good` with a tiny n-gram classifier;
- `textgen serve` of that classifier, and of a tiny generator: seconds until the
  "serving ... on http://" line (then the server is stopped).

With `--before TREE` (a checkout of an earlier version, e.g. `git worktree add /tmp/before
main`) the same commands also run with TREE first on PYTHONPATH, and a ratio column says how
many times faster this tree answers. The runs are trained once, by this tree, in a temporary
folder.

    python -m benchmarks.quick_answers                      # about 2 minutes
    python -m benchmarks.quick_answers --before /tmp/before --repeats 5
    python -m benchmarks.quick_answers --quick
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    REPO_ROOT,
    child_env,
    format_table,
    machine_header,
    median,
    summary,
)

SETUP = """
import sys
from pathlib import Path
from tests.conftest import write_reviews
from textgen.classify.train import train_classifier
from textgen.generate.train import train_generator
root = Path(sys.argv[1])
(root / "tiny.txt").write_text("To be, or not to be, that is the question:\\n" * 40)
train_generator(root / "tiny.txt", checkpoint_dir=root / "ck", epochs=1, steps_per_epoch=2,
                batch_size=4, seq_length=16, units=16, embed_dim=8)
write_reviews(root / "reviews", {"neg": 20, "pos": 20}, seed=1)
train_classifier(root / "reviews", arch="ngrams", epochs=1, batch_size=8,
                 checkpoint_dir=root / "ck", run_name="moods")
"""


def _env(tree: Path) -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    return env


def _timed(args: list[str], tree: Path, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "textgen", *args], cwd=cwd, env=_env(tree),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_ready(args: list[str], tree: Path, cwd: Path) -> float:
    """Seconds until `textgen serve` says it is serving."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "textgen", "serve", *args, "--port",
                             str(_free_port())], cwd=cwd, env=_env(tree),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "serving" in line and "http://" in line:
                return time.perf_counter() - start
        raise RuntimeError(f"textgen serve {' '.join(args)} ended without serving")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--before", type=Path, help="an earlier source tree to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat: checks the script")
    options = parser.parse_args()
    repeats = 1 if options.quick else options.repeats
    print(machine_header("quick answers: seconds to answer, median of "
                         f"{repeats} (new process each)"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run([sys.executable, "-c", SETUP, str(root)], cwd=REPO_ROOT,
                       env=_env(REPO_ROOT), check=True, capture_output=True, timeout=900)
        ck = ["--checkpoint-dir", str(root / "ck")]
        cases = [
            ("train on an existing run", lambda t: _timed(["train", "tiny.txt", *ck], t, root)),
            ("info with no argument", lambda t: _timed(["info", *ck], t, root)),
            ("classify predict good", lambda t: _timed(
                ["classify", "predict", "good", "--model", "moods", *ck], t, root)),
            ("serve a classifier (ready)", lambda t: _serve_ready(["moods", *ck], t, root)),
            ("serve a generator (ready)", lambda t: _serve_ready(["tiny", *ck], t, root)),
        ]
        trees = [("this tree", REPO_ROOT)]
        if options.before:
            trees.insert(0, ("before", options.before.resolve()))
        rows = []
        for name, measure in cases:
            figures = {label: median([measure(tree) for _ in range(repeats)])
                       for label, tree in trees}
            row = [name, *(f"{figures[label]:.2f}" for label, _ in trees)]
            if options.before:
                row.append(f"{figures['before'] / figures['this tree']:.1f}x")
            rows.append(row)
            print(f"  {name}: " + ", ".join(f"{label} {figures[label]:.2f} s"
                                            for label, _ in trees), flush=True)
    headers = ["command", *(label for label, _ in trees)] + (
        ["faster"] if options.before else [])
    print(format_table(headers, rows))


if __name__ == "__main__":
    main()
