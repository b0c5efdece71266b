"""Small texts without flags: the fine-tuning rule judged on the rest of each text's source.

Users bring 2 kB speeches, 10 kB scenes and 50 kB of lyrics. Each case below is an excerpt of a
longer text: `textgen train EXCERPT [SETUP]` (the rest chosen as usual: its validation is the
excerpt's own end) is scored with `textgen evaluate --window 100` on the rest of the source,
which it never saw: same author and style, new lines, what a sample should sound like. The
excerpt's own end is printed beside it; on a few hundred characters it is the noisier figure.

Setups: `defaults` (no flags) or options (`--epochs 3`, `--learning-rate 0.0001`), as in
benchmarks/quality.py. Each run is its own process, one after the other.

    python -m benchmarks.small_texts [--setups "defaults,--epochs 3"] [--cases speech,earnest]

A case whose source is absent (../shared) is skipped; the code and pydoc cases read
Python's own library.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    SHARED_CORPORA,
    SHARED_DATASETS,
    append_json_line,
    format_table,
    machine_header,
    summary,
)
from benchmarks.fine_tuning import rest_of_play
from benchmarks.quality import EVAL_WINDOW, textgen

HELD_OUT_CHARS = 100_000  # enough to score a style; more only slows the run
# A drama in prose that neither shipped base trained on (the books' held-out end).
EARNEST = "books/wilde-the-importance-of-being-earnest-a-trivial-comedy-for-serious-people.txt"


@dataclass(frozen=True)
class Case:
    """A training excerpt and the held-out rest of its source."""

    name: str
    excerpt: str
    held_out: str


def _cut(text: str, chars: int) -> int:
    """The end of the line on which character `chars` falls (excerpts end on a whole line)."""
    end = text.find("\n", chars)
    return len(text) if end < 0 else end + 1


def _excerpt_case(name: str, text: str, chars: int) -> Case:
    """The text's first `chars` (to a line's end) against the last HELD_OUT_CHARS of the rest."""
    cut = _cut(text, chars)
    rest = text[cut:]
    return Case(name, text[:cut], rest[max(0, len(rest) - HELD_OUT_CHARS):])


def speech_case() -> Case | None:
    """The quick start: the bundled speech against the whole play without it."""
    from textgen.generate.data import bundled_corpus_path

    play_path = SHARED_CORPORA / "othello.txt"
    if not play_path.is_file():
        return None
    speech = bundled_corpus_path().read_text(encoding="utf-8")
    return Case("the bundled speech / the rest of Othello", speech,
                rest_of_play(play_path.read_text(encoding="utf-8"), speech))


def corpus_case(file: str, chars: int, label: str) -> Callable[[], Case | None]:
    def build() -> Case | None:
        path = SHARED_CORPORA / file
        if not path.is_file():
            return None
        return _excerpt_case(label, path.read_text(encoding="utf-8"), chars)
    return build


def earnest_case() -> Case | None:
    """Wilde's comedy: its first 10 kB against the rest."""
    archive = SHARED_DATASETS / "english-pd.tar.gz"
    if not archive.is_file():
        return None
    with tarfile.open(archive) as tar:
        text = tar.extractfile(EARNEST).read().decode("utf-8")
    return _excerpt_case("Earnest's first 10 kB / the rest of the play", text, 10_000)


def reviews_case() -> Case | None:
    """20 kB of IMDb test reviews, one a line, against 100 kB of others."""
    archive = SHARED_DATASETS / "imdb.tar.gz"
    if not archive.is_file():
        return None
    reviews = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and re.search(r"aclImdb/test/(pos|neg)/", member.name):
                reviews.append(tar.extractfile(member).read().decode("utf-8").replace(
                    "<br />", " ").strip())
                if len(reviews) >= 200:
                    break
    return _excerpt_case("20 kB of IMDb reviews / 100 kB of others", "\n".join(reviews) + "\n",
                         20_000)


def code_case() -> Case | None:
    """Code, far from the books: the first 50 kB of Python's own `email` and `json` packages
    (present wherever Python is) against the last 100 kB of the rest."""
    import email
    import json as json_package

    files = [path for package in (email, json_package)
             for path in sorted(Path(package.__file__).parent.glob("*.py"))]
    text = "".join(path.read_text(encoding="utf-8") for path in files)
    return _excerpt_case("50 kB of Python (email, json) / 100 kB more", text, 50_000)


def pydoc_case() -> Case | None:
    """English about code, between the two: the first 50 kB of Python's reference topics
    (`pydoc_data`, present wherever Python is) against the last 100 kB."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))
    return _excerpt_case("50 kB of Python's reference topics / 100 kB more", text, 50_000)


CASES: dict[str, Callable[[], Case | None]] = {
    "speech": speech_case,
    "othello10k": corpus_case("othello.txt", 10_000, "Othello's first 10 kB / the rest"),
    "shakespeare5k": corpus_case("tinyshakespeare.txt", 5_000,
                                 "tinyshakespeare's first 5 kB / its last 100 kB"),
    "shakespeare50k": corpus_case("tinyshakespeare.txt", 50_000,
                                  "tinyshakespeare's first 50 kB / its last 100 kB"),
    "earnest": earnest_case,
    "reviews": reviews_case,
    "code": code_case,
    "pydoc": pydoc_case,
}


def run_case(case: Case, setup: str, workdir: Path, name: str) -> dict:
    """Train on the excerpt with `setup`, score its best checkpoint (`evaluate`'s default)."""
    excerpt, held_out = workdir / f"{name}.txt", workdir / f"{name}-held-out.txt"
    excerpt.write_text(case.excerpt, encoding="utf-8")
    held_out.write_text(case.held_out, encoding="utf-8")
    args = ["train", str(excerpt), "--checkpoint-dir", str(workdir), "--run-name", name]
    if setup != "defaults":
        args += setup.split()
    start = time.perf_counter()
    trained = textgen(*args)
    seconds = time.perf_counter() - start
    meta = json.loads((workdir / name / "run.json").read_text())
    score = json.loads(textgen("evaluate", str(held_out), "--model", str(workdir / name),
                               "--json", "--window", str(EVAL_WINDOW)).stdout)
    training = meta["training"]
    base = next((line for line in trained.stderr.splitlines() if "base" in line), "")
    return {"case": case.name, "setup": setup, "seconds": seconds,
            "epochs": f"{training.get('best_epoch')}/{training['epochs_done']}",
            "own_end": training["best_logs"].get("val_bits_per_char", float("nan")),
            "held_out": score["bits_per_char"], "base": meta["config"].get("base"),
            "note": base}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--setups", default="defaults",
                        help="comma-separated: defaults, or options such as '--epochs 3'")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--json-out", type=Path, help="append each result as a JSON line")
    args = parser.parse_args(argv)
    print(machine_header("small texts without flags, scored on the rest of their source"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.cases.split(","):
            case = CASES[key]()
            if case is None:
                print(f"skipped: {key} (its source in ../shared is absent)")
                continue
            print(f"{case.name}: {len(case.excerpt):,} characters to train on, "
                  f"{len(case.held_out):,} held out", flush=True)
            for number, setup in enumerate(args.setups.split(",")):
                result = run_case(case, setup, Path(tmp), f"{key}-{number}")
                print(f"  {setup}: {result['held_out']:.3f} on the rest, "
                      f"{result['own_end']:.3f} on its own end ({result['note']})", flush=True)
                rows.append(result)
                if args.json_out:
                    append_json_line(args.json_out, result)
    print()
    print(format_table(
        ["case", "setup", "base", "seconds", "best/done epochs", "own end", "rest of source"],
        [[r["case"], r["setup"], r["base"], f"{r['seconds']:.0f}", r["epochs"],
          f"{r['own_end']:.3f}", f"{r['held_out']:.3f}"] for r in rows]))


if __name__ == "__main__":
    main()
