"""The `textgen` command line: argument parsing, rich output, errors to exit codes; no ML logic.

TensorFlow is imported only inside the commands that need it, so `textgen --help` and argument
errors answer at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from textgen.errors import TextgenError
from textgen.runs import DEFAULT_CHECKPOINT_DIR
from textgen.training import DEFAULT_BACKUP_EVERY

app = typer.Typer(
    help="Character-level text generation and review classification with Keras LSTMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

CheckpointDir = Annotated[
    Path,
    typer.Option("--checkpoint-dir", envvar="TEXTGEN_CHECKPOINT_DIR",
                 help="Folder holding run folders (env TEXTGEN_CHECKPOINT_DIR)."),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Run name under --checkpoint-dir, a run folder, or a .keras "
                 "file. Default: the most recently trained run."),
]
BackupEvery = Annotated[int, typer.Option(
    help="Save a mid-epoch backup every N steps (a crash loses at most N steps).")]
StrategyOption = Annotated[str, typer.Option(
    help="auto, default, mirrored (local GPUs, or --devices N CPU devices) or multi-worker "
         "(configured by TF_CONFIG). --batch-size stays per replica.")]
DevicesOption = Annotated[str | None, typer.Option(
    help="For mirrored: a count of logical CPU devices (2), or device names (GPU:0,GPU:1).")]
TensorBoardOption = Annotated[bool, typer.Option(
    help="Write TensorBoard logs into the run folder (tensorboard --logdir checkpoints).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, nothing else.")]


@app.callback()
def _global(
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show TensorFlow's start-up log messages.")] = False,
) -> None:
    from textgen.tf_setup import set_verbose

    set_verbose(verbose)


def _print_train_summary(result, metric_label: str, metric_key: str) -> None:
    summary, run = result.summary, result.run
    table = Table(title=f"run {run.name}", show_header=False)
    table.add_row("epochs done", str(summary["epochs_done"]))
    if summary.get("stopped_by_time"):
        table.add_row("stopped", "time budget (--max-time) reached")
    best = summary.get("best_logs") or {}
    if summary.get("best_epoch"):
        table.add_row("best epoch", str(summary["best_epoch"]))
    if metric_key in best:
        table.add_row(metric_label, f"{best[metric_key]:.3f}")
    table.add_row("steps this session", str(summary.get("steps_run", 0)))
    table.add_row("training time", f"{summary['seconds']:.0f} s")
    table.add_row("best model", str(run.best))
    table.add_row("last model", str(run.last))
    table.add_row("history", str(run.history))
    err.print(table)


def _apply_preset(ctx: typer.Context, name: str | None, values: dict) -> dict:
    """Fill in the preset's options that the user left at their defaults."""
    from textgen.presets import preset_values

    for key, value in preset_values(name).items():
        source = ctx.get_parameter_source(key)
        if source is None or source.name == "DEFAULT":
            values[key] = value
    return values


@app.command()
def train(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(
        help="UTF-8 text file to train on. Default: the bundled Othello speech.")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs to train (in total, when resuming).")] = 20,
    batch_size: Annotated[int, typer.Option(help="Windows per batch.")] = 64,
    seq_length: Annotated[int, typer.Option(help="Characters per training window.")] = 100,
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = 2,
    units: Annotated[int, typer.Option(help="Units per recurrent layer.")] = 256,
    embed_dim: Annotated[int, typer.Option(help="Size of the character embedding.")] = 64,
    dropout: Annotated[float, typer.Option(help="Dropout after each recurrent layer.")] = 0.2,
    cell: Annotated[str, typer.Option(help="Recurrent cell: lstm or gru.")] = "lstm",
    learning_rate: Annotated[float, typer.Option(help="Adam's peak learning rate.")] = 5e-3,
    lr_schedule: Annotated[str, typer.Option(
        help="cosine (warm-up, then decay to 10%) or constant.")] = "cosine",
    val_split: Annotated[float, typer.Option(
        help="Fraction at the end of the text kept for validation.")] = 0.1,
    steps_per_epoch: Annotated[int | None, typer.Option(
        help="Batches per epoch. Default: one pass over the text (at least 10).")] = None,
    max_time: Annotated[float | None, typer.Option(
        help="Stop cleanly after this many minutes, keeping the best model.")] = None,
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    run_name: Annotated[str | None, typer.Option(
        help="Run folder name. Default: the corpus file's name without extension.")] = None,
    rng_seed: Annotated[int, typer.Option(help="Seed for everything random.")] = 42,
    resume: Annotated[bool, typer.Option(help="Continue the run from its last saved epoch.")
                      ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run of the same name.")
                         ] = False,
    backup_every: BackupEvery = DEFAULT_BACKUP_EVERY,
    tensorboard: TensorBoardOption = False,
    strategy: StrategyOption = "default",
    devices: DevicesOption = None,
    precision: Annotated[str, typer.Option(
        help="float32, or mixed_bfloat16 (faster on CPUs with AVX512-BF16/AMX).")] = "float32",
    preset: Annotated[str | None, typer.Option(
        help="Named option set; options you give explicitly win. cpu-10min: the best model "
             "we measured in 10 minutes on a 2-core CPU (2x384 GRU, bfloat16, time-based "
             "cosine schedule).")] = None,
) -> None:
    """Train a stacked-LSTM character model on a text and save it under checkpoints/."""
    from textgen import distribute
    from textgen.generate import TrainOptions, train_generator
    from textgen.generator import GeneratorConfig

    distribute.request(strategy, devices)

    v = _apply_preset(ctx, preset, dict(
        epochs=epochs, batch_size=batch_size, seq_length=seq_length, layers=layers, units=units,
        dropout=dropout, cell=cell, learning_rate=learning_rate, lr_schedule=lr_schedule,
        max_time=max_time, precision=precision))
    options = TrainOptions(epochs=v["epochs"], batch_size=v["batch_size"], val_split=val_split,
                           steps_per_epoch=steps_per_epoch, checkpoint_dir=checkpoint_dir,
                           run_name=run_name, rng_seed=rng_seed, resume=resume,
                           overwrite=overwrite, max_time=v["max_time"],
                           backup_every=backup_every, tensorboard=tensorboard)
    config = GeneratorConfig(vocab_size=1, seq_length=v["seq_length"], layers=v["layers"],
                             units=v["units"], dropout=v["dropout"], cell=v["cell"],
                             embed_dim=embed_dim, learning_rate=v["learning_rate"],
                             lr_schedule=v["lr_schedule"], precision=v["precision"])
    result = _run_training(lambda: train_generator(file, config, options, console=err))
    if _report_training(result, "best val bits/char", "val_bits_per_char"):
        err.print("[dim]bits/char guide for English: ~4.7 = guessing letters, 3 = letter "
                  "frequencies, 2 = words forming, < 1.6 = good prose. Tiny texts memorise: "
                  "their validation figure stays high.[/dim]")


def _report_training(result, metric_label: str, metric_key: str) -> bool:
    """Notes and the summary table; False when a resumed run had nothing left to do."""
    for note in result.notes:
        err.print(f"note: {note}")
    if result.already_finished:
        err.print(f"{result.run.path} has already finished {result.summary['epochs_done']} "
                  f"epoch(s); pass a larger --epochs to train it further")
        return False
    _print_train_summary(result, metric_label, metric_key)
    return True


def _run_training(job):
    from textgen.training import TrainingInterrupted

    try:
        return job()
    except TrainingInterrupted as stop:
        err.print(f"interrupted in epoch {stop.epoch + 1} after step {stop.step}; everything up "
                  f"to there is saved in {stop.run.path}; run the same command with --resume "
                  "to continue")
        raise typer.Exit(130) from None


@app.command()
def sample(
    seed: Annotated[str | None, typer.Option(
        help="Text to start from; it is printed first. Default: a newline.")] = None,
    temperature: Annotated[float, typer.Option(
        help="Randomness: 0 = always the likeliest character, 1 = the model's own odds.")] = 0.8,
    length: Annotated[int, typer.Option(help="Characters to generate after the seed.")] = 500,
    top_k: Annotated[int | None, typer.Option(help="Sample only from the k likeliest.")] = None,
    top_p: Annotated[float | None, typer.Option(
        help="Sample only from the smallest set with this much probability (0, 1].")] = None,
    num_samples: Annotated[int, typer.Option(help="How many samples to print.")] = 1,
    rng_seed: Annotated[int | None, typer.Option(help="Seed: the same seed gives the same text."
                                                 )] = None,
    skip_unknown: Annotated[bool, typer.Option(
        help="Drop seed characters the model never saw instead of failing.")] = False,
    checkpoint: Annotated[str, typer.Option(
        help="Which model of the run: last (the latest epoch) or best (lowest validation loss)."
    )] = "last",
    model: ModelOption = None,
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    as_json: JsonOption = False,
    interactive: Annotated[bool, typer.Option(
        "--interactive", "-i", help="Load the model once, then sample from seeds typed at "
        "the prompt until EOF (Ctrl-D); :temperature 0.5 style commands change settings."
    )] = False,
) -> None:
    """Generate text from a trained model, starting with --seed."""
    from textgen.runs import find_run
    from textgen.sampling import load_sampler, validate_sampling_options

    validate_sampling_options(temperature, top_k, top_p, length)
    if num_samples < 1:
        raise TextgenError(f"--num-samples must be >= 1, got {num_samples}")
    if checkpoint not in ("best", "last"):
        raise TextgenError(f"--checkpoint must be best or last, got {checkpoint!r}")
    run = find_run(model, checkpoint_dir, "generate")
    sampler = load_sampler(Path(model) if model and model.endswith(".keras") else run, checkpoint)
    if interactive:
        _interactive_session(sampler, temperature, length, top_k, top_p, rng_seed, skip_unknown)
        return
    live = sys.stdout.isatty() and not as_json
    results = []
    try:
        for i in range(num_samples):
            write = (lambda s: (sys.stdout.write(s), sys.stdout.flush())) if live else None
            text = sampler.generate(seed, length, temperature, top_k, top_p,
                                    None if rng_seed is None else rng_seed + i, skip_unknown,
                                    on_text=write)
            results.append(text)
            if live:
                sys.stdout.write("\n" if text.endswith("\n") else "\n\n")
            elif not as_json:
                sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
                if i + 1 < num_samples:
                    sys.stdout.write("\n")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps({"run": str(run.path), "samples": results}, ensure_ascii=False))


def _interactive_session(sampler, temperature, length, top_k, top_p, rng_seed, skip_unknown
                         ) -> None:
    from textgen.interactive import HELP, SampleSettings, run_session

    settings = SampleSettings(temperature, length, top_k, top_p, rng_seed, skip_unknown)
    on_terminal = sys.stdin.isatty()
    if on_terminal:
        err.print(f"type a seed and Enter to sample; Ctrl-D to quit\n{HELP}", markup=False)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def prompt() -> None:
        if on_terminal:
            err.print("seed> ", end="", markup=False)

    try:
        run_session(sampler, settings, iter(sys.stdin.readline, ""), write,
                    lambda message: err.print(message, markup=False, soft_wrap=True), prompt)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(help="UTF-8 text to score.")],
    model: ModelOption = None,
    checkpoint: Annotated[str, typer.Option(help="Which model of the run: best or last.")
                          ] = "best",
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    as_json: JsonOption = False,
) -> None:
    """Score a text with a trained model: cross-entropy in bits (and nats) per character."""
    from textgen.generate import evaluate_text
    from textgen.runs import find_run

    run = find_run(model, checkpoint_dir, "generate")
    scores = evaluate_text(file, run, checkpoint)
    if as_json:
        print(json.dumps(scores))
        return
    table = Table(title=f"{file} scored by {run.name}", show_header=False)
    table.add_row("bits per character", f"{scores['bits_per_char']:.4f}")
    table.add_row("nats per character", f"{scores['nats_per_char']:.4f}")
    table.add_row("characters", str(scores["chars"]))
    table.add_row("outside the vocabulary (skipped)", str(scores["unknown_chars"]))
    Console().print(table)


classify_app = typer.Typer(
    help="Review classifier: train, evaluate and predict (e.g. sentiment on aclImdb folders).",
    no_args_is_help=True,
)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
def classify_train(
    folder: Annotated[Path | None, typer.Argument(
        help="Folder of class subfolders of .txt files, or a root holding train/ and test/. "
             "Default: the bundled review set.")] = None,
    classes: Annotated[str | None, typer.Option(
        help="Comma-separated class folders to use, e.g. neg,pos. Default: all subfolders "
             "(aclImdb's unsup/ is ignored).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs to train (in total, when resuming).")] = 10,
    batch_size: Annotated[int, typer.Option(help="Reviews per batch.")] = 32,
    max_tokens: Annotated[int | None, typer.Option(
        help="Vocabulary size of the vectorizer. Default: 20000 words (lstm), 100000 words "
             "and word pairs (ngrams).")] = None,
    seq_length: Annotated[int, typer.Option(help="Tokens kept per review.")] = 200,
    embed_dim: Annotated[int, typer.Option(help="Word embedding size.")] = 128,
    units: Annotated[int, typer.Option(help="LSTM units.")] = 64,
    bidirectional: Annotated[bool, typer.Option(help="Read reviews in both directions.")] = False,
    arch: Annotated[str, typer.Option(
        help="lstm (the sequence model) or ngrams (a linear model of which words and word "
             "pairs a review holds, naive-Bayes weighted: fast and strong).")] = "lstm",
    dropout: Annotated[float, typer.Option(
        help="Dropout before the output layer (ngrams: on the n-gram features).")] = 0.5,
    learning_rate: Annotated[float | None, typer.Option(
        help="Adam's peak learning rate. Default: 0.002 (lstm), 0.001 (ngrams).")] = None,
    lr_schedule: Annotated[str, typer.Option(
        help="cosine (decay to 10% over the planned epochs) or constant.")] = "cosine",
    val_split: Annotated[float, typer.Option(
        help="Fraction of the training reviews held out for validation (seeded).")] = 0.2,
    steps_per_epoch: Annotated[int | None, typer.Option(
        help="Batches per epoch. Default: one pass over the training reviews.")] = None,
    max_time: Annotated[float | None, typer.Option(
        help="Stop cleanly after this many minutes, keeping the best model.")] = None,
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    run_name: Annotated[str | None, typer.Option(
        help="Run folder name. Default: the data folder's name.")] = None,
    rng_seed: Annotated[int, typer.Option(help="Seed for everything random.")] = 42,
    resume: Annotated[bool, typer.Option(help="Continue the run from its last saved epoch.")
                      ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run of the same name.")
                         ] = False,
    backup_every: BackupEvery = DEFAULT_BACKUP_EVERY,
    tensorboard: TensorBoardOption = False,
    strategy: StrategyOption = "default",
    devices: DevicesOption = None,
) -> None:
    """Train a review classifier (TextVectorization, Embedding, LSTM, Dense)."""
    from textgen import distribute
    from textgen.reviews import parse_classes
    from textgen.training import TrainOptions

    distribute.request(strategy, devices)

    options = TrainOptions(epochs=epochs, batch_size=batch_size, val_split=val_split,
                           steps_per_epoch=steps_per_epoch, checkpoint_dir=checkpoint_dir,
                           run_name=run_name, rng_seed=rng_seed, resume=resume,
                           overwrite=overwrite, max_time=max_time, backup_every=backup_every,
                           tensorboard=tensorboard)
    class_list = parse_classes(classes)

    def job():
        from textgen.classify import train_classifier

        return train_classifier(folder, options, class_list, console=err,
                                max_tokens=max_tokens, seq_length=seq_length,
                                embed_dim=embed_dim, units=units, bidirectional=bidirectional,
                                dropout=dropout, learning_rate=learning_rate, arch=arch,
                                lr_schedule=lr_schedule)

    result = _run_training(job)
    if _report_training(result, "best val accuracy", "val_accuracy") and (
            "test" in result.summary):
        err.print(f"test accuracy: {result.summary['test']['accuracy']:.4f} "
                  f"on {result.summary['test']['examples']} reviews")


def _metrics_tables(metrics: dict) -> list[Table]:
    names = metrics["class_names"]
    per_class = Table(title=f"accuracy {metrics['accuracy']:.4f} on {metrics['examples']} examples")
    for column in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name in names:
        c = metrics["classes"][name]
        per_class.add_row(name, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
                          str(c["support"]))
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for name in names:
        confusion.add_column(name, justify="right")
    for name, row in zip(names, metrics["confusion_matrix"], strict=True):
        confusion.add_row(name, *map(str, row))
    return [per_class, confusion]


@classify_app.command("evaluate")
def classify_evaluate(
    folder: Annotated[Path, typer.Argument(
        help="Folder of class subfolders (or a root holding test/).")],
    model: ModelOption = None,
    checkpoint: Annotated[str, typer.Option(help="Which model of the run: best or last.")
                          ] = "best",
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    as_json: JsonOption = False,
) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix on labelled reviews."""
    from textgen.classify import evaluate_folder
    from textgen.runs import find_run

    run = find_run(model, checkpoint_dir, "classify")
    metrics = evaluate_folder(folder, run, checkpoint).to_dict()
    if as_json:
        print(json.dumps(metrics))
        return
    out = Console()
    for table in _metrics_tables(metrics):
        out.print(table)


def _read_lines(source) -> list[str]:
    return [line.rstrip("\r\n") for line in source if line.strip()]


@classify_app.command("predict")
def classify_predict(
    texts: Annotated[list[str] | None, typer.Argument(
        help="Texts to classify; - reads one text per line from stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read one text per line.")] = None,
    model: ModelOption = None,
    checkpoint: Annotated[str, typer.Option(help="Which model of the run: best or last.")
                          ] = "best",
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    as_json: JsonOption = False,
) -> None:
    """Label texts with a trained classifier: one line per text, label and probability."""
    from textgen.classify import predict_texts
    from textgen.corpus import read_text
    from textgen.runs import find_run

    items: list[str] = []
    for text in texts or []:
        items.extend(_read_lines(sys.stdin) if text == "-" else [text])
    if file is not None:
        items.extend(_read_lines(read_text(file).splitlines()))
    if not items:
        raise TextgenError("no texts to classify; give them as arguments, - for stdin, "
                           "or --file PATH")
    run = find_run(model, checkpoint_dir, "classify")
    predictions = predict_texts(items, run, checkpoint)
    if as_json:
        print(json.dumps(predictions, ensure_ascii=False))
        return
    for p in predictions:
        print(f"{p['label']}\t{p['probability']:.4f}\t{p['text']}")


@app.command()
def runs(
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    as_json: JsonOption = False,
) -> None:
    """List every run: mode, data, epochs, best validation figure, size, last change."""
    from textgen.inspection import all_runs

    rows, problems = all_runs(checkpoint_dir)
    for problem in problems:
        err.print(f"warning: {problem}", markup=False)
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        err.print(f"no runs in {checkpoint_dir}/; train one with textgen train")
        return
    table = Table(title=f"runs in {checkpoint_dir}")
    for column in ("name", "mode", "data", "epochs", "best", "size", "modified"):
        table.add_column(column, justify="right" if column in ("epochs", "size") else "left")
    for row in rows:
        value = row["best_value"]
        best = "-" if value is None else (
            f"{value:.3f} bits/char" if row["mode"] == "generate" else f"{value:.3f} accuracy")
        table.add_row(row["name"], row["mode"], Path(row["data"] or "-").name,
                      str(row["epochs_done"]), best, _human_size(row["size_bytes"]),
                      row["modified"])
    Console().print(table)


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@app.command()
def info(
    run_name: Annotated[str, typer.Argument(metavar="RUN",
                                            help="Run name under --checkpoint-dir or a folder.")],
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: hyper-parameters, sizes, vocabulary, history, files, versions."""
    from textgen.inspection import run_info
    from textgen.runs import resolve_run

    details = run_info(resolve_run(run_name, checkpoint_dir))
    if as_json:
        print(json.dumps(details, ensure_ascii=False))
        return
    table = Table(title=f"run {details['name']} ({details['mode']})", show_header=False)
    for key in ("path", "data", "epochs_done", "best_metric", "best_value", "parameters",
                "vocabulary_size", "classes", "vocabulary", "textgen_version",
                "tensorflow_version", "keras_version", "modified"):
        if details.get(key) is not None:
            table.add_row(key.replace("_", " "), str(details[key]))
    for key, value in details["hyperparameters"].items():
        table.add_row(f"  {key}", str(value))
    history = details["history"]
    if history["last"]:
        table.add_row("history", f"{history['epochs']} epochs; last: " + ", ".join(
            f"{k} {v}" for k, v in history["last"].items() if k != "epoch"))
    table.add_row("files", ", ".join(details["files"]))
    Console().print(table)


@app.command()
def plot(
    run_names: Annotated[list[str], typer.Argument(metavar="RUN...",
                                                   help="One or more runs to draw together.")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="PNG file. Default: the run's history.png, or runs.png.")] = None,
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
) -> None:
    """Draw loss and validation curves of one or several runs into a PNG."""
    from textgen.plots import plot_runs
    from textgen.runs import resolve_run

    chosen = [resolve_run(name, checkpoint_dir) for name in run_names]
    if not all(run.read_history() for run in chosen):
        raise TextgenError("a run has no history.csv yet; train it for an epoch first")
    target = output or (chosen[0].path / "history.png" if len(chosen) == 1 else Path("runs.png"))
    plot_runs(chosen, target)
    err.print(f"wrote {target}")


@app.command()
def export(
    run_name: Annotated[str, typer.Argument(metavar="RUN",
                                            help="Run name under --checkpoint-dir or a folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")],
    export_format: Annotated[str, typer.Option("--format", help="savedmodel")] = "savedmodel",
    checkpoint: Annotated[str, typer.Option(help="Which model of the run: best or last.")
                          ] = "best",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    checkpoint_dir: CheckpointDir = Path(DEFAULT_CHECKPOINT_DIR),
) -> None:
    """Export a run as a TensorFlow SavedModel that serves without textgen installed."""
    from textgen.runs import resolve_run

    if export_format != "savedmodel":
        raise TextgenError(f"--format must be savedmodel, got {export_format!r}")
    run = resolve_run(run_name, checkpoint_dir)
    from textgen.export import export_savedmodel

    export_savedmodel(run, output, checkpoint, overwrite)
    err.print(f"wrote {output} (tf.saved_model.load({str(output)!r}).signatures"
              "['serving_default'])", markup=False)


def main() -> None:
    """Entry point: run the app; project errors become one line on stderr and an exit code."""
    try:
        app()
    except TextgenError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
