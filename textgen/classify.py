"""Classify mode's jobs: train a classifier run on review folders, evaluate it, predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from textgen import distribute
from textgen.classifier_config import ClassifierConfig
from textgen.errors import TextgenError
from textgen.reviews import check_class_folder, load_all, load_split, locate
from textgen.runs import RunDir
from textgen.sampling import load_keras_model
from textgen.training import (
    TrainingPlan,
    TrainOptions,
    TrainResult,
    adopt_saved_options,
    check_strategy_options,
    existing_run,
    finished_result,
    fit_run,
    new_run_meta,
    resume_point,
    writable_run,
)


def describe_epoch(logs: dict[str, float]) -> str:
    text = f"loss {logs['loss']:.4f}  accuracy {logs.get('accuracy', float('nan')):.3f}"
    if "val_loss" in logs:
        text += f"  val loss {logs['val_loss']:.4f}  val accuracy {logs['val_accuracy']:.3f}"
    return text


def overfitting_note(summary: dict, patience: int = 3) -> str | None:
    """A note when validation loss stopped improving `patience` or more epochs before the end.

    best.keras already keeps the best epoch, but the learning rate decays over the planned
    epochs, so a run planned for fewer usually ends better (IMDb, default LSTM: 0.859 test
    accuracy from 10 planned epochs, best at epoch 2; 0.872 from 2).
    """
    best, done = summary.get("best_epoch"), summary.get("epochs_done", 0)
    if not best or done - best < patience:
        return None
    return (f"validation loss last improved at epoch {best} of {done}: the model overfits after "
            f"that. best.keras keeps epoch {best}; a new run with --epochs {best} decays the "
            "learning rate over the epochs that help and usually ends better")


def train_classifier(
    folder: str | Path | None = None,
    options: TrainOptions | None = None,
    classes: list[str] | None = None,
    console: Console | None = None,
    **config_overrides: Any,
) -> TrainResult:
    """Train (or resume) a review classifier on a folder of class subfolders.

    A folder holding train/ and test/ trains on train/ and is evaluated on test/ at the end
    (in `result.summary["test"]`). With no folder, the bundled review set is used.
    """
    options = options or TrainOptions(epochs=10, val_split=0.2, batch_size=32)
    console = console or Console(stderr=True)
    folders = locate(folder, classes)  # checks the data and options before TensorFlow loads
    new_config = ClassifierConfig(class_names=list(folders.classes), **config_overrides)
    dist = distribute.current()
    import keras

    from textgen.classifier import as_targets, build_classifier

    default_name = (Path(folder).resolve().name if folder is not None else "reviews")
    run = RunDir(Path(options.checkpoint_dir) / (options.run_name or default_name))
    notes: list[str] = []
    check_strategy_options(options, dist.workers)

    with writable_run(run, dist.is_chief, dist.worker_index) as out:
        meta = existing_run(run, options, "classify", dist.is_chief)
        start = resume_point(run, meta)
        if options.resume and meta is None:
            notes.append(f"nothing saved in {run.path} yet; starting from the beginning")
        if meta is not None:
            adopt_saved_options(options, meta, notes)
            config = ClassifierConfig.from_dict(meta["config"])
            if tuple(config.class_names) != folders.classes:
                raise TextgenError(f"{folders.train}: classes {list(folders.classes)} differ "
                                   f"from the run's {config.class_names}")
            if meta["training"].get("epochs_done", 0) >= options.epochs:
                return finished_result(run, meta)
        else:
            config = new_config
        keras.utils.set_random_seed(options.rng_seed)

        train, val = load_split(folders.train, folders.classes, options.val_split,
                                options.rng_seed, options.batch_size * dist.replicas)
        steps = options.steps_per_epoch or int(train.cardinality())
        if meta is not None:
            steps = meta["training"].get("steps_per_epoch", steps)
        with dist.strategy.scope():
            if meta is None:
                model = build_classifier(config, train, total_steps=options.epochs * steps)
            else:
                model = load_keras_model(start.model_file, compile=True)
        if meta is None:
            meta = new_run_meta("classify", config.to_dict(), options, steps, dist.name,
                                dist.replicas, data=str(folders.train.resolve()),
                                examples=folders.counts)
            out.write_meta(meta)

        # An endless stream (reshuffled on every pass), fast-forwarded past the batches done.
        train_data = as_targets(train, config.binary).repeat()
        if start.epoch or start.step:
            train_data = train_data.skip(start.epoch * steps + start.step)
        val_data = as_targets(val, config.binary) if val is not None else None
        if dist.workers > 1:
            distribute.prepare_model(model, dist)
            train_data = distribute.shard_by_data(train_data)
            if val_data is not None:
                val_data = distribute.shard_by_data(val_data)
        plan = TrainingPlan(epochs=options.epochs, steps_per_epoch=steps,
                            initial_epoch=start.epoch, start_step=start.step,
                            max_time_minutes=options.max_time, backup_every=options.backup_every,
                            tensorboard=options.tensorboard)
        meta["training"]["epochs_requested"] = options.epochs
        summary = fit_run(model, out, meta, train_data, val_data, plan, describe_epoch,
                          console=console)
    if not dist.is_chief:
        return TrainResult(run, summary, notes=notes)
    note = overfitting_note(summary)
    if note and config.lr_schedule == "cosine":
        notes.append(note)
    if folders.test is not None:
        metrics = evaluate_folder(folders.test, run)
        summary["test"] = metrics.to_dict()
    return TrainResult(run, summary, notes=notes)


def load_classifier(run: RunDir, which: str):
    meta = run.read_meta()
    if meta["mode"] != "classify":
        raise TextgenError(f"{run.path} is a {meta['mode']} run; textgen classify needs a "
                           "classifier run (textgen classify train)")
    return load_keras_model(run.model_file(which)), ClassifierConfig.from_dict(meta["config"])


def evaluate_folder(folder: str | Path, run: RunDir, which: str = "best"):
    """Metrics of the run's model on a folder of class subfolders (or a root with test/)."""
    from textgen.classifier import Metrics
    from textgen.prediction import class_probabilities

    model, config = load_classifier(run, which)
    folder = Path(folder)
    if (folder / "test").is_dir() and not (folder / config.class_names[0]).is_dir():
        folder = folder / "test"
    check_class_folder(folder, config.class_names)
    texts, labels = [], []
    for batch_texts, batch_labels in load_all(folder, tuple(config.class_names)):
        texts.extend(t.decode("utf-8") for t in batch_texts.numpy())
        labels.extend(batch_labels.numpy().tolist())
    probs = class_probabilities(model, texts)
    return Metrics.from_labels(np.array(labels), probs.argmax(axis=-1), config.class_names)


def predict_texts(texts: list[str], run: RunDir, which: str = "best") -> list[dict[str, Any]]:
    """For each text: its predicted label and that label's probability (batched)."""
    from textgen.prediction import class_probabilities

    model, config = load_classifier(run, which)
    probs = class_probabilities(model, texts)
    out = []
    for text, p in zip(texts, probs, strict=True):
        best = int(np.argmax(p))
        out.append({"text": text, "label": config.class_names[best],
                    "probability": float(p[best]),
                    "probabilities": {c: float(v) for c, v in zip(config.class_names, p,
                                                                   strict=True)}})
    return out
