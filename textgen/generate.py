"""Generate mode's jobs: train a generator run on a text, and score a text with a run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console

from textgen import distribute
from textgen.corpus import (
    Vocabulary,
    bundled_corpus_path,
    evaluation_dataset,
    read_text,
    split_by_position,
    steps_per_epoch,
    training_dataset,
)
from textgen.errors import TextgenError
from textgen.generator import GeneratorConfig, build_generator, compile_generator
from textgen.runs import RunDir, write_text_atomic
from textgen.sampling import load_keras_model, read_vocabulary
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
    time_schedule_callback,
    writable_run,
)

LN2 = math.log(2)
MAX_VALIDATION_WINDOWS = 2000  # validation cost stays bounded on 100 MB corpora


def bits_metrics(logs: dict[str, float]) -> dict[str, float]:
    """Cross-entropy in bits per character, from Keras' loss in nats."""
    out = {}
    if "loss" in logs:
        out["bits_per_char"] = logs["loss"] / LN2
    if "val_loss" in logs:
        out["val_bits_per_char"] = logs["val_loss"] / LN2
    return out


def describe_epoch(logs: dict[str, float]) -> str:
    text = f"loss {logs['loss']:.4f}"
    if "val_loss" in logs:
        text += f"  val loss {logs['val_loss']:.4f}  val bits/char {logs['val_bits_per_char']:.3f}"
    return text


def train_generator(
    corpus: str | Path | None = None,
    config: GeneratorConfig | None = None,
    options: TrainOptions | None = None,
    console: Console | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train (or resume) a character generator on a UTF-8 text file; returns the run.

    Keyword overrides set fields of GeneratorConfig or TrainOptions, e.g. `epochs=5, units=128`.
    With no corpus, trains on the bundled Othello speech.
    """
    options = options or TrainOptions()
    config_keys = GeneratorConfig.__dataclass_fields__
    option_keys = TrainOptions.__dataclass_fields__
    config_fields = {k: v for k, v in overrides.items() if k in config_keys}
    option_fields = {k: v for k, v in overrides.items() if k in option_keys}
    unknown = set(overrides) - set(config_fields) - set(option_fields)
    if unknown:
        raise TypeError(f"unknown training options: {sorted(unknown)}")
    for key, value in option_fields.items():
        setattr(options, key, value)
    options.__post_init__()
    console = console or Console(stderr=True)

    corpus_path = Path(corpus) if corpus is not None else bundled_corpus_path()
    text = read_text(corpus_path)
    run = RunDir(Path(options.checkpoint_dir) / (options.run_name or corpus_path.stem))
    notes: list[str] = []
    dist = distribute.current()
    check_strategy_options(options, dist.workers)

    with writable_run(run, dist.is_chief, dist.worker_index) as out:
        meta = existing_run(run, options, "generate", dist.is_chief)
        start = resume_point(run, meta)
        if options.resume and meta is None:
            notes.append(f"nothing saved in {run.path} yet; starting from the beginning")
        if meta is not None:
            adopt_saved_options(options, meta, notes)
            vocab = read_vocabulary(run)
            config = GeneratorConfig.from_dict(meta["config"])
            if meta["training"].get("epochs_done", 0) >= options.epochs:
                return finished_result(run, meta)
            if vocab.unknown(text):
                raise TextgenError(f"{corpus_path}: has characters the run's vocabulary lacks; "
                                   "resume with the corpus the run was trained on")
        else:
            vocab = Vocabulary.from_text(text)
            base = config.to_dict() if config else {}
            base.update(config_fields, vocab_size=len(vocab))
            config = GeneratorConfig.from_dict(base)

        global_batch = options.batch_size * dist.replicas
        corpus_facts = {"corpus_chars": len(text),
                        "default_seed": "\n" if "\n" in vocab.chars else text[0]}
        split = split_by_position(vocab.encode(text), config.seq_length, options.val_split)
        del text  # from here on the corpus lives only as ids (1 byte per character, mostly)
        steps = options.steps_per_epoch or steps_per_epoch(
            len(split.train), config.seq_length, global_batch)
        if meta is not None:
            steps = meta["training"].get("steps_per_epoch", steps)

        import keras

        keras.utils.set_random_seed(options.rng_seed)
        time_schedule = options.max_time is not None and config.lr_schedule == "cosine"
        with dist.strategy.scope():
            if meta is None:
                model = build_generator(config)
                compile_generator(model, config,
                                  total_steps=None if time_schedule else options.epochs * steps)
            else:
                model = load_keras_model(start.model_file, compile=True)
        if meta is None:
            write_text_atomic(out.vocab, vocab.to_json())
            meta = new_run_meta("generate", config.to_dict(), options, steps, dist.name,
                                dist.replicas, corpus=str(corpus_path.resolve()),
                                **corpus_facts)
            out.write_meta(meta)
        elif out is not run:
            write_text_atomic(out.vocab, vocab.to_json())

        train_data = training_dataset(split.train, config.seq_length, global_batch,
                                      len(vocab), seed=options.rng_seed,
                                      skip_batches=start.epoch * steps + start.step)
        val_data = None
        if len(split.validation):
            val_data = evaluation_dataset(split.validation, config.seq_length, global_batch,
                                          len(vocab), max_windows=MAX_VALIDATION_WINDOWS)
        del split  # the datasets hold their own copies as tensors
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
        extra_callbacks = []
        scheduled = isinstance(model.optimizer.get_config()["learning_rate"], dict)
        if time_schedule and not scheduled:
            extra_callbacks.append(time_schedule_callback(
                options.max_time, config.learning_rate,
                warmup_steps=0 if start.model_file else config.warmup_steps))
        summary = fit_run(model, out, meta, train_data, val_data, plan, describe_epoch,
                          bits_metrics, console, callbacks=extra_callbacks)
    return TrainResult(run, summary, notes=notes)


def evaluate_text(path: str | Path, run: RunDir, which: str = "best",
                  batch_size: int = 64) -> dict[str, float | int]:
    """Mean cross-entropy of the run's model on a text, in bits and nats per character.

    Characters outside the model's vocabulary are counted and left out.
    """
    text = read_text(path)
    vocab = read_vocabulary(run)
    meta = run.read_meta()
    config = GeneratorConfig.from_dict(meta["config"])
    unknown = set(vocab.unknown(text))
    known_text = "".join(c for c in text if c not in unknown) if unknown else text
    n_unknown = len(text) - len(known_text)
    if len(known_text) < 2:
        raise TextgenError(f"{path}: fewer than 2 characters the model knows; nothing to score")
    model = load_keras_model(run.model_file(which))
    model.compile(loss="categorical_crossentropy")
    ids = vocab.encode(known_text)
    data = evaluation_dataset(ids, config.seq_length, batch_size, len(vocab))
    nats = float(model.evaluate(data, verbose=0))
    return {"bits_per_char": nats / LN2, "nats_per_char": nats, "chars": len(text),
            "unknown_chars": n_unknown}
