"""Classify on the data people have: a ladder of training-set sizes, no flags, fixed seeds.

Each rung is trained exactly as a user types it (`textgen classify train DATA`, no model or
training flag) and scored on a fixed test set:
- imdb-100 ... imdb-25000: balanced subsets of aclImdb/train (nested: each holds the one
  before it), all scored on the same 5,000 aclImdb/test reviews (2,500 of each class);
- 20news: the 20 Newsgroups bydate split as released (`--decode-errors replace`, as its 73
  files that are not UTF-8 need), scored on its 7,532 test posts; 20news-200 and 20news-1000:
  10 and 50 posts of each group (seeded), scored on the same test posts;
- table and table-lstm: a 240-row `text,label` CSV of 8 distinct, trivially separable
  one-liners (30 copies each), scored on itself (no flags, and `--arch lstm`).
Beside each rung, the baseline in the same run: scikit-learn's TF-IDF of words and word pairs
with logistic regression (both at their defaults), trained and scored on the same texts.

Needs ../shared/datasets/imdb.tar.gz and 20news-bydate.tar.gz (rungs whose archive is absent
are skipped, with a line saying so) and, for the baseline, scikit-learn (`pip install -e
".[bench]"`; without it the baseline column is empty).

    python -m benchmarks.ladder                          # every rung (about 15 minutes)
    python -m benchmarks.ladder --rungs imdb-250,table   # some rungs
    python -m benchmarks.ladder --source ../main         # another checkout's textgen (before/after)
    python -m benchmarks.ladder --quick                  # a smoke run: tiny rungs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO_ROOT, SHARED_DATASETS, format_table, machine_header, summary

IMDB_ARCHIVE = SHARED_DATASETS / "imdb.tar.gz"
NEWS_ARCHIVE = SHARED_DATASETS / "20news-bydate.tar.gz"
IMDB_SIZES = (100, 250, 1_000, 5_000, 25_000)
IMDB_TEST_SIZE = 5_000
NEWS_SIZES = (200, 1_000)  # posts, the same number from each of the 20 groups
SEED = 0
# The goals (test accuracy, no flags); the 240-row table is scored on itself.
GOALS = {"imdb-250": 0.79, "imdb-1000": 0.83, "imdb-5000": 0.87, "imdb-25000": 0.89,
         "20news": 0.86, "table": 0.95, "table-lstm": 0.95}
# Published test accuracy on the same data, where one exists: IMDb full split, NBSVM-bigram
# (Wang & Manning 2012, Table 3); 20 Newsgroups bydate, TF-IDF + logistic regression and
# Text GCN (Yao et al. 2019, Table 2).
PUBLISHED = {"imdb-25000": "NBSVM 0.914 (full test set)",
             "20news": "TF-IDF+LR 0.832, Text GCN 0.863"}
TABLE_LINES = {
    "pos": ["I loved this film", "a wonderful, moving story", "great acting and a great plot",
            "the best movie of the year"],
    "neg": ["I hated this film", "a boring, tedious mess", "terrible acting and a dull plot",
            "the worst movie of the year"],
}
TABLE_COPIES = 30


@dataclass
class Rung:
    name: str
    train: Path  # what `classify train` reads
    test: Path  # what `classify evaluate` scores
    flags: tuple[str, ...] = ()  # model flags (none but for table-lstm)
    reading: tuple[str, ...] = ()  # how to read the files (train and evaluate)


def read_imdb(archive: Path) -> dict[str, dict[str, list[str]]]:
    """{split: {class: texts}} of aclImdb, in file-name order, read straight from the archive."""
    found: dict[str, dict[str, list[tuple[str, str]]]] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if len(parts) != 4 or not member.isfile() or parts[2] not in ("pos", "neg"):
                continue
            text = tar.extractfile(member).read().decode("utf-8")
            found.setdefault(parts[1], {}).setdefault(parts[2], []).append((parts[3], text))
    return {split: {c: [t for _, t in sorted(files)] for c, files in classes.items()}
            for split, classes in found.items()}


def write_folder(root: Path, texts: dict[str, list[str]]) -> Path:
    for name, items in texts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(items):
            (root / name / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def seeded_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def imdb_rungs(work: Path, sizes: list[int]) -> list[Rung]:
    """Nested balanced subsets of aclImdb/train and the fixed 5,000 test reviews."""
    imdb = read_imdb(IMDB_ARCHIVE)
    test = {c: [texts[i] for i in seeded_order(len(texts), SEED + 1)[: IMDB_TEST_SIZE // 2]]
            for c, texts in imdb["test"].items()}
    test_dir = write_folder(work / "imdb-test", test)
    rungs = []
    for size in sizes:
        subset = {c: [texts[i] for i in seeded_order(len(texts), SEED)[: size // 2]]
                  for c, texts in imdb["train"].items()}
        rungs.append(Rung(f"imdb-{size}", write_folder(work / f"imdb-{size}", subset), test_dir))
    return rungs


def news_rungs(work: Path, sizes: list[int], whole: bool) -> list[Rung]:
    """Seeded subsets of 20 Newsgroups' training posts (as many from each group) and, with
    `whole`, the split as released; all scored on its test posts."""
    with tarfile.open(NEWS_ARCHIVE) as tar:
        tar.extractall(work, filter="data")
    train, test = work / "20news-bydate-train", work / "20news-bydate-test"
    reading = ("--decode-errors", "replace")
    rungs = [Rung("20news", train, test, reading=reading)] if whole else []
    groups = sorted(p for p in train.iterdir() if p.is_dir())
    for size in sizes:
        subset = work / f"20news-{size}"
        for group in groups:
            posts = sorted(group.iterdir())
            (subset / group.name).mkdir(parents=True)
            for i in seeded_order(len(posts), SEED)[: size // len(groups)]:
                (subset / group.name / posts[i].name).write_bytes(posts[i].read_bytes())
        rungs.append(Rung(f"20news-{size}", subset, test, reading=reading))
    return rungs


def table_rungs(work: Path) -> list[Rung]:
    rows = [(line, label) for label, lines in TABLE_LINES.items() for line in lines]
    rows = rows * TABLE_COPIES
    random.Random(SEED).shuffle(rows)
    path = work / "table.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return [Rung("table", path, path), Rung("table-lstm", path, path, ("--arch", "lstm"))]


def texts_of(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of a class-folder tree or a text,label CSV, for the baseline."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return [r["text"] for r in rows], [r["label"] for r in rows]
    texts, labels = [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        for file in sorted(folder.iterdir()):
            texts.append(file.read_bytes().decode("utf-8", errors="replace"))
            labels.append(folder.name)
    return texts, labels


def baseline(rung: Rung) -> tuple[float, float] | None:
    """(test accuracy, seconds) of TF-IDF (words and word pairs) + logistic regression."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError:
        return None
    train_texts, train_labels = texts_of(rung.train)
    test_texts, test_labels = texts_of(rung.test)
    started = time.monotonic()
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000))
    model.fit(train_texts, train_labels)
    accuracy = model.score(test_texts, test_labels)
    return accuracy, time.monotonic() - started


def textgen(source: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(source),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "textgen", *args], cwd=source, env=env,
                          capture_output=True, text=True)


def run_rung(rung: Rung, source: Path, checkpoints: Path) -> dict:
    """Train with no flags (but the rung's), score on its test set; seconds of training."""
    started = time.monotonic()
    trained = textgen(source, "classify", "train", str(rung.train), *rung.flags, *rung.reading,
                      "--checkpoint-dir", str(checkpoints), "--run-name", rung.name)
    seconds = time.monotonic() - started
    if trained.returncode != 0:
        return {"error": trained.stderr.strip().splitlines()[-1:] or ["failed"]}
    evaluated = textgen(source, "classify", "evaluate", str(rung.test), *rung.reading, "--json",
                        "--model", rung.name, "--checkpoint-dir", str(checkpoints))
    if evaluated.returncode != 0:
        return {"error": evaluated.stderr.strip().splitlines()[-1:] or ["failed"]}
    meta = json.loads((checkpoints / rung.name / "run.json").read_text(encoding="utf-8"))
    training = meta["training"]
    size = sum(f.stat().st_size for f in (checkpoints / rung.name).rglob("*") if f.is_file())
    chosen = [line for line in trained.stderr.splitlines() if line.startswith("note: chose")]
    return {"accuracy": json.loads(evaluated.stdout)["accuracy"], "seconds": seconds,
            "epochs": f"{training['epochs_done']} ({training.get('best_epoch')})",
            "arch": meta["config"]["arch"], "megabytes": size / 1e6,
            "chosen": chosen[0][len("note: "):] if chosen else ""}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--rungs", help="comma-separated rung names (default: all)")
    parser.add_argument("--source", type=Path, default=REPO_ROOT,
                        help="the checkout whose textgen runs (default: this one)")
    parser.add_argument("--no-baseline", action="store_true", help="skip scikit-learn's rows")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: imdb-100 and the table only")
    args = parser.parse_args(argv)
    wanted = (set(args.rungs.split(",")) if args.rungs else
              {"imdb-100", "table"} if args.quick else None)
    print(machine_header("classify ladder (no flags)"))
    print(f"textgen from {args.source.resolve()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rungs: list[Rung] = []
        sizes = [s for s in IMDB_SIZES if wanted is None or f"imdb-{s}" in wanted]
        if sizes and IMDB_ARCHIVE.exists():
            rungs += imdb_rungs(work, sizes)
        elif sizes:
            print(f"skipped the IMDb rungs: {IMDB_ARCHIVE} is absent")
        news = [s for s in NEWS_SIZES if wanted is None or f"20news-{s}" in wanted]
        whole = wanted is None or "20news" in wanted
        if (news or whole) and NEWS_ARCHIVE.exists():
            rungs += news_rungs(work, news, whole)
        elif news or whole:
            print(f"skipped the 20news rungs: {NEWS_ARCHIVE} is absent")
        rungs += [r for r in table_rungs(work) if wanted is None or r.name in wanted]
        for rung in rungs:
            result = run_rung(rung, args.source, work / "checkpoints")
            base = None if args.no_baseline else baseline(rung)
            row = {"rung": rung.name, **result,
                   "baseline": base[0] if base else None,
                   "baseline_seconds": base[1] if base else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = [[r["rung"], f"{r['accuracy']:.4f}" if "accuracy" in r else "failed",
              f"{GOALS[r['rung']]:.2f}" if r["rung"] in GOALS else "",
              f"{r['baseline']:.4f}" if r.get("baseline") is not None else "",
              f"{r['seconds']:.0f}" if "seconds" in r else "",
              f"{r['baseline_seconds']:.1f}" if r.get("baseline_seconds") is not None else "",
              r.get("arch", ""), r.get("epochs", ""),
              f"{r['megabytes']:.1f}" if "megabytes" in r else "",
              PUBLISHED.get(r["rung"], "")] for r in rows]
    print()
    print(format_table(["rung", "accuracy", "goal", "TF-IDF+LR", "train s", "LR s", "arch",
                        "epochs (best)", "run MB", "published"], table))
    for r in rows:
        print(f"{r['rung']}: {r.get('chosen') or r.get('error', '')}")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
