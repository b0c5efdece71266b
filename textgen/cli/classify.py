"""Classify mode's commands: `textgen classify train | evaluate | predict`."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from textgen.classify.config import Arch, ClassifierConfig, ClassifyTrainOptions
from textgen.cli.app import app, err, report_training, run_training
from textgen.cli.options import (
    DEFAULT_DIR,
    CheckpointDir,
    CheckpointOption,
    JsonOption,
    ModelOption,
    TrainingArgs,
    given,
    with_training_options,
)
from textgen.errors import TextgenError
from textgen.recurrent import Cell
from textgen.runs import Checkpoint
from textgen.training.options import LRSchedule

classify_app = typer.Typer(
    help="Review classifier: train, evaluate and predict (e.g. sentiment on aclImdb folders).",
    no_args_is_help=True,
)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
@with_training_options(ClassifyTrainOptions)
def classify_train(
    ctx: typer.Context,
    folder: Annotated[Path | None, typer.Argument(
        help="Folder of class subfolders of .txt files, or a root holding train/ and test/. "
             "Default: the bundled review set.")] = None,
    classes: Annotated[str | None, typer.Option(
        help="Comma-separated class folders to use, e.g. neg,pos. Default: all subfolders "
             "(aclImdb's unsup/ is ignored).")] = None,
    arch: Annotated[Arch, typer.Option(
        help="lstm (the sequence model) or ngrams (a linear model of which words and word "
             "pairs a review holds, naive-Bayes weighted: fast and strong).")
    ] = ClassifierConfig.arch,
    max_tokens: Annotated[int | None, typer.Option(
        help="Vocabulary size of the vectorizer. Default: 20000 words (lstm), 100000 words "
             "and word pairs (ngrams).")] = ClassifierConfig.max_tokens,
    seq_length: Annotated[int, typer.Option(help="Tokens kept per review (lstm).")
                          ] = ClassifierConfig.seq_length,
    embed_dim: Annotated[int, typer.Option(help="Word embedding size (lstm).")
                         ] = ClassifierConfig.embed_dim,
    units: Annotated[int, typer.Option(help="Recurrent units (lstm).")] = ClassifierConfig.units,
    bidirectional: Annotated[bool, typer.Option(
        help="Read reviews in both directions (lstm).")] = ClassifierConfig.bidirectional,
    cell: Annotated[Cell, typer.Option(
        help="The recurrent layer of the sequence model (lstm arch): lstm, gru or simplernn.")
    ] = ClassifierConfig.cell,
    dropout: Annotated[float, typer.Option(
        help="Dropout before the output layer (ngrams: on the n-gram features).")
    ] = ClassifierConfig.dropout,
    learning_rate: Annotated[float | None, typer.Option(
        help="Adam's peak learning rate. Default: 0.002 (lstm), 0.001 (ngrams).")
    ] = ClassifierConfig.learning_rate,
    lr_schedule: Annotated[LRSchedule, typer.Option(
        help="cosine (warm-up, then decay to 10% over the planned steps or --max-time) or "
             "constant.")] = ClassifierConfig.lr_schedule,
    *,
    training: TrainingArgs,
) -> None:
    """Train a review classifier (TextVectorization, Embedding, LSTM, Dense)."""
    from textgen.classify.data import parse_classes

    class_list = parse_classes(classes)
    options = {**training.given, **given(
        ctx, arch=arch, max_tokens=max_tokens, seq_length=seq_length, embed_dim=embed_dim,
        units=units, bidirectional=bidirectional, cell=cell, dropout=dropout,
        learning_rate=learning_rate, lr_schedule=lr_schedule)}

    def job():
        from textgen.classify.train import train_classifier

        return train_classifier(folder, class_list, console=err, **options)

    result = run_training(job)
    if report_training(result, "best val accuracy", "val_accuracy") and (
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
    checkpoint: CheckpointOption = Checkpoint.best,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix on labelled reviews."""
    from textgen.runs import find_model

    chosen = find_model(model, checkpoint_dir, "classify", checkpoint)
    from textgen.classify.prediction import evaluate_folder

    metrics = evaluate_folder(folder, chosen).to_dict()
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
    checkpoint: CheckpointOption = Checkpoint.best,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """Label texts with a trained classifier: one line per text, label and probability."""
    from textgen.generate.data import read_text
    from textgen.runs import find_model

    items: list[str] = []
    for text in texts or []:
        items.extend(_read_lines(sys.stdin) if text == "-" else [text])
    if file is not None:
        items.extend(_read_lines(read_text(file).splitlines()))
    if not items:
        raise TextgenError("no texts to classify; give them as arguments, - for stdin, "
                           "or --file PATH")
    chosen = find_model(model, checkpoint_dir, "classify", checkpoint)
    from textgen.classify.prediction import predict_texts

    predictions = predict_texts(items, chosen)
    if as_json:
        print(json.dumps(predictions, ensure_ascii=False))
        return
    for p in predictions:
        print(f"{p['label']}\t{p['probability']:.4f}\t{p['text']}")
