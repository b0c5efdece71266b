"""Helpers shared by the benchmark scripts: machine header, tables, corpora, child processes.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the repository: read-only texts and data sets; benchmarks skip what is absent.
SHARED = REPO_ROOT.parent / "shared"
SHARED_CORPORA = SHARED / "corpora"
SHARED_DATASETS = SHARED / "datasets"
DEFAULT_CORPUS = SHARED_CORPORA / "tinyshakespeare.txt"

# A fixed list of common English words: synthetic corpora are made of these.
_WORD_TEXT = (
    "the of and to in a is that for it as was with be by on not he i this are or his from at "
    "which but have an they you were her she there been one all we their has would when if so "
    "no will my more out up what about who can said them some could him into its then two time "
    "only do like other than first new very after made may also any where how our did most well "
    "good through over even much before great must people such back those years just man being "
    "same under never day still while last own might house world here long should because each "
    "these life both between work down come without three again know old place little found "
    "left night thought think fire heart love king lord queen sword ship river stone light dark"
)
WORDS = tuple(_WORD_TEXT.split())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's description)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(dist: str) -> str:
    """The installed version of a distribution, without importing it."""
    module = sys.modules.get(dist)
    if module is not None and hasattr(module, "__version__"):
        return str(module.__version__)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def summary(doc: str | None) -> str:
    """A script's --help description: its docstring's first paragraph, on one line (its
    first line alone stopped mid-sentence)."""
    return " ".join((doc or "").split("\n\n")[0].split())


def machine_header(title: str) -> str:
    """One line: what was measured and on what (cores, CPU model, TensorFlow and Keras)."""
    return (f"{title} | cores: {os.cpu_count()} | CPU: {cpu_model()} | "
            f"TensorFlow {_version('tensorflow')} | Keras {_version('keras')}")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def synthetic_text(n_chars: int, seed: int = 0) -> str:
    """`n_chars` of ASCII text: random words from WORDS, spaces, a newline every ~12 words."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    pieces: list[str] = []
    total = 0
    while total < n_chars:
        n = min(1 << 18, max(64, (n_chars - total) // 4 + 64))
        chosen = words[rng.integers(len(words), size=n)]
        seps = np.where(rng.random(n) < 1 / 12, "\n", " ")
        chunk = "".join(np.char.add(chosen, seps).tolist())
        pieces.append(chunk)
        total += len(chunk)
    return "".join(pieces)[:n_chars]


def write_synthetic_corpus(path: Path, n_bytes: int, seed: int = 0) -> Path:
    """Write `n_bytes` of synthetic ASCII text to `path` in chunks (bounded memory)."""
    chunk = 1 << 22
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for i, start in enumerate(range(0, n_bytes, chunk)):
            f.write(synthetic_text(min(chunk, n_bytes - start), seed=seed * 100_003 + i))
    return path


def load_corpus(path: Path | None, min_chars: int) -> tuple[str, str]:
    """The text to benchmark on and a note on where it came from.

    Uses `path` (default: the shared tinyshakespeare corpus) when it exists, else a synthetic
    random-word text of `min_chars` characters.
    """
    path = path or DEFAULT_CORPUS
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        return text, f"corpus: {path} ({len(text):,} chars)"
    text = synthetic_text(min_chars)
    return text, f"note: {path} not found; using a synthetic random-word text ({len(text):,} chars)"


def timed_run(cmd: Sequence[str], cwd: Path = REPO_ROOT, env: dict[str, str] | None = None,
              ) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command to completion; return its wall time in seconds and the result."""
    start = time.perf_counter()
    result = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, result


def append_json_line(path: Path, record: dict) -> None:
    """Append one result to a JSON-lines file (a benchmark's --json-out)."""
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def child_env() -> dict[str, str]:
    """The environment for child Python processes: quiet TensorFlow, repo importable."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env
