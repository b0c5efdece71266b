"""Review classification on the full IMDb split: test accuracy within a CPU time budget, and
prediction throughput.

Trains on aclImdb/train (25,000 reviews) and scores on aclImdb/test (25,000 reviews):
- the no-flags rows: `textgen classify train aclImdb` and `... --arch ngrams`, exactly as a
  user types them (the defaults pick the epochs by early stopping);
- with `--recipes`, also the earlier hand-tuned recipes (LSTM: `--epochs 2 --batch-size 64
  --val-split 0.1`; n-grams: `--epochs 10 --batch-size 64 --val-split 0.1`).
Every run gets `--max-time`. Needs ../shared/datasets/imdb.tar.gz; says so and stops when it
is absent.

    python -m benchmarks.classify                  # the two no-flags rows
    python -m benchmarks.classify --recipes        # and the two recipe rows
    python -m benchmarks.classify --minutes 2 --subset 2000   # a quick look
    python -m benchmarks.classify --predict-only   # prediction speed alone (about 2 minutes)

`--predict-only` trains nothing: each architecture's default model, its vectorizer adapted on
5,000 training reviews and its weights left as initialised (the speed does not depend on
them), predicts 4,000 test reviews with textgen's NumPy classifier and with Keras'
`model.predict`, alternating, median of 3 passes each.
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

from benchmarks.common import SHARED_DATASETS, machine_header, summary

ARCHIVE = SHARED_DATASETS / "imdb.tar.gz"


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


def train_and_score(data: Path, checkpoints: Path, name: str, minutes: float,
                    flags: list[str]) -> dict:
    cmd = [sys.executable, "-m", "textgen", "classify", "train", str(data), *flags,
           "--max-time", str(minutes), "--checkpoint-dir", str(checkpoints), "--run-name", name]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} training failed:\n{proc.stderr[-3000:]}")
    evaluation = subprocess.run(
        [sys.executable, "-m", "textgen", "classify", "evaluate", str(data / "test"),
         "--model", name, "--checkpoint-dir", str(checkpoints), "--json"],
        capture_output=True, text=True)
    metrics = json.loads(evaluation.stdout)
    training = json.loads((checkpoints / name / "run.json").read_text())["training"]
    return {"accuracy": metrics["accuracy"], "seconds": seconds,
            "epochs": f"{training['epochs_done']} (best {training.get('best_epoch')})"}


def prediction_rates(data: Path, checkpoints: Path, name: str, n: int = 10_000,
                     repeats: int = 3) -> tuple[float, float]:
    """Reviews per second of batched prediction on n test reviews, textgen's predictor and
    plain `model.predict` (batches of 512) alternating, model loading and one-off
    compilation excluded: medians of `repeats` passes, as single passes on this VM vary by
    up to 1.7x."""
    import tensorflow as tf

    from textgen.classify.inference import NumpyClassifier
    from textgen.classify.prediction import load_keras_classifier
    from textgen.runs import find_model

    files = sorted((data / "test" / "pos").glob("*.txt"))[: n // 2]
    files += sorted((data / "test" / "neg").glob("*.txt"))[: n // 2]
    texts = [f.read_text(encoding="utf-8") for f in files]
    chosen = find_model(checkpoints / name, checkpoints, "classify")
    model = load_keras_classifier(chosen)
    predictor = NumpyClassifier.read(chosen.file)

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


def untrained_prediction_rates(data: Path, folder: Path, n: int = 4000,
                               repeats: int = 3) -> list[tuple[str, float, float]]:
    """(architecture, NumPy reviews/s, model.predict reviews/s) for each default model."""
    import tensorflow as tf

    from textgen.classify.config import ClassifierConfig
    from textgen.classify.inference import NumpyClassifier
    from textgen.classify.model import build_classifier
    from textgen.classify.prediction import KerasClassifier

    def reviews(split: str, count: int) -> list[str]:
        files = [f for label in ("pos", "neg")
                 for f in sorted((data / split / label).glob("*.txt"))[: count // 2]]
        return [f.read_text(encoding="utf-8") for f in files]

    train, test = reviews("train", 5000), reviews("test", n)
    rows = []
    for arch in ("ngrams", "lstm"):
        labelled = tf.data.Dataset.from_tensor_slices((train, [i % 2 for i in range(len(train))]))
        model = build_classifier(ClassifierConfig(arch=arch), labelled.batch(256))
        model.save(folder / f"{arch}.keras")
        jobs = {"numpy": NumpyClassifier.read(folder / f"{arch}.keras").probabilities,
                "keras": KerasClassifier(model).probabilities}
        rates: dict[str, list[float]] = {name: [] for name in jobs}
        for job in jobs.values():
            job(test[:512])  # warm-up (graph tracing)
        for _ in range(repeats):
            for name, job in jobs.items():
                started = time.monotonic()
                job(test)
                rates[name].append(len(test) / (time.monotonic() - started))
        rows.append((arch, statistics.median(rates["numpy"]), statistics.median(rates["keras"])))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--minutes", type=float, default=15.0, help="budget per model")
    parser.add_argument("--recipes", action="store_true",
                        help="also the hand-tuned recipes the defaults replace")
    parser.add_argument("--subset", type=int, default=None, help="files per folder")
    parser.add_argument("--predict-only", action="store_true",
                        help="prediction speed of untrained default models, no training")
    args = parser.parse_args(argv)
    if not ARCHIVE.exists():
        print(f"skipped: {ARCHIVE} is absent (the IMDb data set lives in ../shared)")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from textgen.tf_setup import import_tensorflow

    import_tensorflow()
    print(machine_header("review classification"))
    if args.predict_only:
        with tempfile.TemporaryDirectory() as tmp:
            data = extract(ARCHIVE, Path(tmp) / "aclImdb", 2500)
            print(f"{'model':<8}{'NumPy reviews/s':>17}{'model.predict/s':>17}{'ratio':>8}")
            for arch, numpy_rate, keras_rate in untrained_prediction_rates(data, Path(tmp)):
                print(f"{arch:<8}{numpy_rate:>17,.0f}{keras_rate:>17,.0f}"
                      f"{numpy_rate / keras_rate:>7.2f}x")
        return
    print("IMDb "
          f"{'full split' if args.subset is None else f'{args.subset} files per folder'}, "
          f"--max-time {args.minutes:g} per model\n")
    with tempfile.TemporaryDirectory() as tmp:
        data = extract(ARCHIVE, Path(tmp) / "aclImdb", args.subset)
        checkpoints = Path(tmp) / "checkpoints"
        setups = [("lstm", "LSTM, no flags", []),
                  ("ngrams", "n-grams, --arch ngrams", ["--arch", "ngrams"])]
        if args.recipes:
            recipe = ["--batch-size", "64", "--val-split", "0.1", "--lr-schedule", "cosine"]
            setups += [("lstm-recipe", "LSTM, 2-epoch recipe", [*recipe, "--epochs", "2"]),
                       ("ngrams-recipe", "n-grams, 10-epoch recipe",
                        ["--arch", "ngrams", *recipe, "--epochs", "10"])]
        rows = []
        for name, label, flags in setups:
            result = train_and_score(data, checkpoints, name, args.minutes, flags)
            result["rate"], result["keras_rate"] = prediction_rates(data, checkpoints, name)
            rows.append((label, result))
    print(f"{'setup':<26}{'test accuracy':>14}{'epochs':>13}{'wall s':>8}{'predict/s':>11}"
          f"{'model.predict/s':>17}{'ratio':>7}")
    for label, r in rows:
        print(f"{label:<26}{r['accuracy']:>14.4f}{r['epochs']:>13}{r['seconds']:>8.0f}"
              f"{r['rate']:>11,.0f}{r['keras_rate']:>17,.0f}{r['rate'] / r['keras_rate']:>6.2f}x")
    print("targets: no flags >= 0.875 (LSTM) and >= 0.915 (n-grams) in under 5 minutes of "
          "training; >= 2,000 reviews/s predicted")


if __name__ == "__main__":
    main()
