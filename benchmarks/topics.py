"""Topic classification on 20 Newsgroups as released: both architectures on the full bydate
split, trained and evaluated exactly as the README's commands do.

    textgen classify train 20news-bydate-train --decode-errors replace [--arch ngrams]
    textgen classify evaluate 20news-bydate-test

Prints test accuracy, macro-F1, training time and predictions per second (textgen classify
predict's batched path on the 7,532 test posts, model loading excluded), next to the figures
published for this split. Every training run gets `--max-time` (default 10 minutes). Needs
../shared/datasets/20news-bydate.tar.gz; says so and stops when it is absent.

    python -m benchmarks.topics                 # both architectures, 10 minutes each
    python -m benchmarks.topics --arch ngrams --minutes 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_DATASETS, machine_header, summary

ARCHIVE = SHARED_DATASETS / "20news-bydate.tar.gz"
# Test accuracy on this split (Yao et al., AAAI 2019, Table 2), and the goals.
PUBLISHED = {"TF-IDF + logistic regression": 0.832, "SWEM": 0.852, "Text GCN": 0.863,
             "LSTM": 0.657}
GOALS = {"ngrams": 0.86, "lstm": 0.75}


def textgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgen", *args], capture_output=True,
                          text=True)


def train_and_evaluate(root: Path, checkpoints: Path, arch: str, minutes: float) -> dict:
    started = time.monotonic()
    trained = textgen("classify", "train", str(root / "20news-bydate-train"), "--decode-errors",
                      "replace", "--arch", arch, "--max-time", str(minutes), "--run-name", arch,
                      "--checkpoint-dir", str(checkpoints))
    seconds = time.monotonic() - started
    if trained.returncode != 0:
        raise SystemExit(f"{arch} training failed:\n{trained.stderr[-3000:]}")
    evaluated = textgen("classify", "evaluate", str(root / "20news-bydate-test"), "--json",
                        "--model", arch, "--checkpoint-dir", str(checkpoints))
    if evaluated.returncode != 0:
        raise SystemExit(f"{arch} evaluation failed:\n{evaluated.stderr[-3000:]}")
    metrics = json.loads(evaluated.stdout)
    meta = json.loads((checkpoints / arch / "run.json").read_text(encoding="utf-8"))
    training = meta["training"]
    return {"arch": arch, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "seconds": seconds, "epochs": training["epochs_done"],
            "best_epoch": training.get("best_epoch"), "most_confused": metrics["most_confused"],
            "predictions_per_s": prediction_rate(root, checkpoints, arch)}


def prediction_rate(root: Path, checkpoints: Path, arch: str) -> float:
    """Test posts per second through textgen's batched predictor (one warm-up pass first)."""
    from textgen.classify.data import read_class_folders
    from textgen.classify.prediction import load_predictor
    from textgen.reading import Decoding
    from textgen.runs import find_model

    texts = read_class_folders(root / "20news-bydate-test",
                               decoding=Decoding(errors="replace")).texts
    predictor = load_predictor(find_model(checkpoints / arch, checkpoints, "classify"))
    predictor.probabilities(texts)
    started = time.monotonic()
    predictor.probabilities(texts)
    return len(texts) / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    parser.add_argument("--arch", action="append", choices=sorted(GOALS),
                        help="architectures to run (repeatable; default: both)")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--keep", type=Path,
                        help="keep the trained runs in this checkpoint folder")
    args = parser.parse_args(argv)
    if not ARCHIVE.exists():
        print(f"skipped: {ARCHIVE} is absent (the 20 Newsgroups data set lives in ../shared)")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    print(machine_header("topic classification (20 Newsgroups, bydate split)"))
    print(f"11,314 training and 7,532 test posts, 20 classes, --max-time {args.minutes:g} per "
          "model, --decode-errors replace\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(root, filter="data")
        for arch in args.arch or ["ngrams", "lstm"]:
            rows.append(train_and_evaluate(root, args.keep or root / "checkpoints", arch,
                                           args.minutes))
    print(f"{'arch':<8}{'test accuracy':>14}{'macro-F1':>10}{'goal':>7}{'epochs':>12}"
          f"{'train s':>9}{'predict/s':>11}")
    for r in rows:
        epochs = f"{r['epochs']} (best {r['best_epoch']})"
        print(f"{r['arch']:<8}{r['accuracy']:>14.4f}{r['macro_f1']:>10.4f}"
              f"{GOALS[r['arch']]:>7.2f}{epochs:>12}{r['seconds']:>9.0f}"
              f"{r['predictions_per_s']:>11,.0f}")
    print("\npublished on this split: " + ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED.items()))
    for r in rows:
        pairs = "; ".join(f"{p['true']} -> {p['predicted']} {p['count']}/{p['of']}"
                          for p in r["most_confused"][:3])
        print(f"{r['arch']} most confused: {pairs}")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
