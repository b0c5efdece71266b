"""Review classification on the full IMDb split: test accuracy within a CPU time budget, and
prediction throughput.

Trains textgen's default LSTM classifier (2 epochs) and the `--arch ngrams` bag-of-n-grams
baseline (words and word pairs, naive-Bayes weighted, linear; 10 epochs) on aclImdb/train
(25,000 reviews; 10% held out for validation), each with `--max-time`, and scores both on
aclImdb/test (25,000 reviews). Needs
../shared/datasets/imdb.tar.gz; says so and stops when it is absent.

    python -m benchmarks.classify                  # up to 15 + 15 minutes
    python -m benchmarks.classify --minutes 2 --subset 2000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_header

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "datasets" / "imdb.tar.gz"


def extract(archive: Path, dest: Path, per_folder: int | None) -> Path:
    """Unpack aclImdb train/test pos/neg (optionally only the first N files of each folder)."""
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if len(parts) != 4 or not member.isfile() or parts[2] not in ("pos", "neg"):
                continue
            key = (parts[1], parts[2])
            if per_folder is not None and counts.get(key, 0) >= per_folder:
                continue
            counts[key] = counts.get(key, 0) + 1
            target = dest / parts[1] / parts[2] / parts[3]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return dest


def train_and_score(data: Path, checkpoints: Path, arch: str, minutes: float, epochs: int,
                    val_split: float) -> dict:
    cmd = [sys.executable, "-m", "textgen", "classify", "train", str(data), "--arch", arch,
           "--max-time", str(minutes), "--epochs", str(epochs), "--batch-size", "64",
           "--val-split", str(val_split),
           "--checkpoint-dir", str(checkpoints), "--run-name", arch]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{arch} training failed:\n{proc.stderr[-3000:]}")
    evaluation = subprocess.run(
        [sys.executable, "-m", "textgen", "classify", "evaluate", str(data / "test"),
         "--model", arch, "--checkpoint-dir", str(checkpoints), "--json"],
        capture_output=True, text=True)
    metrics = json.loads(evaluation.stdout)
    return {"accuracy": metrics["accuracy"], "seconds": seconds,
            "epochs": json.loads((checkpoints / arch / "run.json").read_text())
            ["training"]["epochs_done"]}


def prediction_rates(data: Path, checkpoints: Path, arch: str, n: int = 10_000,
                     repeats: int = 3) -> tuple[float, float]:
    """Reviews per second of batched prediction on n test reviews, textgen's predictor and
    plain `model.predict` (batches of 512) alternating, model loading and one-off
    compilation excluded: medians of `repeats` passes, as single passes on this VM vary by
    up to 1.7x."""
    import tensorflow as tf

    from textgen.classify.prediction import ReviewPredictor, load_classifier
    from textgen.runs import find_model

    files = sorted((data / "test" / "pos").glob("*.txt"))[: n // 2]
    files += sorted((data / "test" / "neg").glob("*.txt"))[: n // 2]
    texts = [f.read_text(encoding="utf-8") for f in files]
    model, _ = load_classifier(find_model(checkpoints / arch, checkpoints, "classify"))
    predictor = ReviewPredictor(model)

    def keras_predict() -> None:
        model.predict(tf.data.Dataset.from_tensor_slices(texts).batch(512), verbose=0)

    jobs = {"textgen": lambda: predictor.probabilities(texts), "model.predict": keras_predict}
    rates: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():
        job()  # warm-up: trace (and for the LSTM, compile) once
    for _ in range(repeats):
        for name, job in jobs.items():
            started = time.monotonic()
            job()
            rates[name].append(len(texts) / (time.monotonic() - started))
    return statistics.median(rates["textgen"]), statistics.median(rates["model.predict"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="budget per model")
    parser.add_argument("--lstm-epochs", type=int, default=2,
                        help="the LSTM overfits IMDb after about two epochs")
    parser.add_argument("--ngrams-epochs", type=int, default=10)
    parser.add_argument("--val-split", type=float, default=0.1,
                        help="share of aclImdb/train held out to pick the best epoch")
    parser.add_argument("--subset", type=int, default=None, help="files per folder")
    args = parser.parse_args(argv)
    if not ARCHIVE.exists():
        print(f"skipped: {ARCHIVE} is absent (the IMDb data set lives in ../shared)")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    print(machine_header("review classification"))
    print("IMDb "
          f"{'full split' if args.subset is None else f'{args.subset} files per folder'}, "
          f"--max-time {args.minutes:g} per model\n")
    with tempfile.TemporaryDirectory() as tmp:
        data = extract(ARCHIVE, Path(tmp) / "aclImdb", args.subset)
        checkpoints = Path(tmp) / "checkpoints"
        rows = []
        for arch, label in (("lstm", "LSTM (default)"), ("ngrams", "n-grams (--arch ngrams)")):
            epochs = args.lstm_epochs if arch == "lstm" else args.ngrams_epochs
            result = train_and_score(data, checkpoints, arch, args.minutes, epochs,
                                     args.val_split)
            result["rate"], result["keras_rate"] = prediction_rates(data, checkpoints, arch)
            rows.append((label, result))
    print(f"{'model':<26}{'test accuracy':>14}{'epochs':>8}{'train s':>9}{'predict/s':>11}"
          f"{'model.predict/s':>17}{'ratio':>7}")
    for label, r in rows:
        print(f"{label:<26}{r['accuracy']:>14.4f}{r['epochs']:>8}{r['seconds']:>9.0f}"
              f"{r['rate']:>11,.0f}{r['keras_rate']:>17,.0f}{r['rate'] / r['keras_rate']:>6.2f}x")
    print("targets: >= 0.90 within 15 minutes (best model), LSTM >= 0.87, "
          ">= 2,000 reviews/s predicted")


if __name__ == "__main__":
    main()
