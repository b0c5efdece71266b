"""Classify mode's commands: `textgen classify train | evaluate | predict`."""

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from textgen.classify.config import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_TOKENS,
    TOPICS_MAX_TOKENS,
    TOPICS_NGRAMS_LEARNING_RATE,
    Arch,
    ClassifierConfig,
    ClassifyTrainOptions,
)
from textgen.classify.sizing import (
    FINAL_RATE_SHARE,
    LSTM_MAX_SEQ_LENGTH,
    MAX_BATCH,
    MAX_RATE_FACTOR,
    MIN_BATCH,
    MIN_STEPS,
    MIN_VALIDATION,
    PASSES,
    TOPICS_DROPOUT,
    TOPICS_RATE_BATCH,
)
from textgen.cli.app import app, err, report_training, run_training, using_run
from textgen.cli.options import (
    DATA_PANEL,
    DEFAULT_DIR,
    LR_DECAY_HELP,
    MODEL_PANEL,
    TRAINING_PANEL,
    CheckpointDir,
    CheckpointOption,
    DecodeErrorsOption,
    EncodingOption,
    JsonOption,
    LRScheduleOption,
    ModelOption,
    TrainingArgs,
    decoding,
    given,
    help_panels,
    path_given,
    with_training_options,
)
from textgen.cli.output import CONTROL_ESCAPES, json_text
from textgen.console import stdout_console
from textgen.errors import TextgenError
from textgen.modes import Mode, mode_object
from textgen.recurrent import Cell
from textgen.runs import Checkpoint


def _per_arch(defaults: dict[Arch, float]) -> str:
    """`0.002 (lstm), 0.001 (ngrams)`: a per-architecture default for a help text."""
    return ", ".join(f"{value:g} ({arch})" for arch, value in defaults.items())


MATRIX_WIDTH = 100  # columns the evaluation report fits in (20 classes' confusion matrix too)

TextColumnOption = Annotated[str | None, typer.Option(
    help="Tables: the column holding the text; several, comma-separated, are joined "
         "(title,description). Default: text; for a trained model, its own.",
    show_default=False)]
LabelColumnOption = Annotated[str | None, typer.Option(
    help="Tables: the column holding the label. Default: label; for a trained model, its own.",
    show_default=False)]

classify_app = typer.Typer(
    help="Text classifier: train, evaluate and predict (sentiment on aclImdb folders, topics "
         "on 20 Newsgroups, any labelled table).",
    no_args_is_help=True,
)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
@with_training_options(ClassifyTrainOptions, {
    "epochs": f"{PASSES[Arch.ngrams]}, lstm {PASSES[Arch.lstm]}; epochs stretched to make "
              f"{MIN_STEPS:,} steps in all",
    "batch_size": f"{MAX_BATCH}, halved for small data down to {MIN_BATCH}",
    "val_split": f"{ClassifyTrainOptions.val_split:g} where that holds {MIN_VALIDATION} "
                 "examples, else 0; 0 for topics"})
def classify_train(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Argument(
        parser=path_given,
        help="A folder with one subfolder per class (each file an example, any extension), a "
             "root holding train/ and test/, or a .csv, .tsv or .jsonl table. Default: the "
             "bundled review set.", show_default=False)] = None,
    classes: Annotated[str | None, typer.Option(
        help="Comma-separated classes to use, e.g. neg,pos. Default: all subfolders (aclImdb's "
             "unsup/ is ignored) or all labels of a table.")] = None,
    text_column: TextColumnOption = None,
    label_column: LabelColumnOption = None,
    encoding: EncodingOption = None,
    decode_errors: DecodeErrorsOption = None,
    arch: Annotated[Arch, typer.Option(
        help="lstm (the sequence model) or ngrams (a linear model of which words and word "
             "pairs a review holds, naive-Bayes weighted: fast and strong).")
    ] = ClassifierConfig.arch,
    max_tokens: Annotated[int | None, typer.Option(
        help="Vocabulary size of the vectorizer, in words (ngrams: words and word pairs). "
             f"Default: {_per_arch(DEFAULT_MAX_TOKENS)}; {TOPICS_MAX_TOKENS} for ngrams with "
             "more than two classes.")] = ClassifierConfig.max_tokens,
    seq_length: Annotated[int, typer.Option(
        help="Tokens kept per review (lstm).",
        show_default=f"the words 90% of the texts fit in, at most {LSTM_MAX_SEQ_LENGTH}")
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
        help="Dropout before the output layer (ngrams: on the n-gram features).",
        show_default=f"{ClassifierConfig.dropout:g}; {TOPICS_DROPOUT:g} for topics, ngrams with "
                     "more than two classes")
    ] = ClassifierConfig.dropout,
    input_dropout: Annotated[float, typer.Option(
        help="Dropout on the recurrent layer's inputs, the word vectors (lstm).")
    ] = ClassifierConfig.input_dropout,
    learning_rate: Annotated[float | None, typer.Option(
        help=f"The peak learning rate (Adam's). Default: {_per_arch(DEFAULT_LEARNING_RATE)}; "
             "for ngrams with more than two classes SGD's (momentum 0.9), default "
             f"{TOPICS_NGRAMS_LEARNING_RATE:g} at batches of {TOPICS_RATE_BATCH}, in proportion "
             f"for smaller ones; for two-class ngrams, up to {MAX_RATE_FACTOR}x the default when "
             "the data gives fewer steps.")
    ] = ClassifierConfig.learning_rate,
    lr_schedule: LRScheduleOption = ClassifierConfig.lr_schedule,
    lr_decay: Annotated[float | None, typer.Option(
        help=f"{LR_DECAY_HELP} Default: chosen so that the rate ends the planned epochs at "
             f"{FINAL_RATE_SHARE:.0%} of the peak ("
             f"{FINAL_RATE_SHARE ** (1 / PASSES[Arch.ngrams]):.2f} over {PASSES[Arch.ngrams]}).")
    ] = ClassifierConfig.lr_decay,
    *,
    training: TrainingArgs,
) -> None:
    """Train a text classifier (n-grams, or TextVectorization, Embedding, LSTM, Dense).

    Options left out are chosen for the data's size (one `note: chose ...` line, kept in
    run.json), as their defaults below say."""
    from textgen.classify.data import parse_classes
    from textgen.classify.tables import Columns, check_columns_apply

    class_list = parse_classes(classes)
    decoding(encoding, decode_errors)  # checked before TensorFlow loads
    Columns.parse(text_column, label_column)
    check_columns_apply(Path(data) if data is not None else None, text_column, label_column)
    options = {**training.given, **given(
        ctx, arch=arch, max_tokens=max_tokens, seq_length=seq_length, embed_dim=embed_dim,
        units=units, bidirectional=bidirectional, cell=cell, dropout=dropout,
        input_dropout=input_dropout, learning_rate=learning_rate, lr_schedule=lr_schedule,
        lr_decay=lr_decay)}

    def job():
        from textgen.classify.train import train_classifier

        # Left out, these are a resumed run's own (train_classifier), else the defaults.
        return train_classifier(data, class_list, console=err, encoding=encoding,
                                decode_errors=decode_errors, text_column=text_column,
                                label_column=label_column, **options)

    result = run_training(job, overwrite=bool(options.get("overwrite")))
    if report_training(result, mode_object(Mode.classify).figure) and (
            "test" in result.summary):
        test = result.summary["test"]
        err.print(f"test accuracy: {test['accuracy']:.4f} on {test['examples']:,} test examples "
                  f"(always answering '{_one_line(test['commonest_class'])}': "
                  f"{test['commonest_share']:.4f})", markup=False, highlight=False)


help_panels(classify_train, {
    **dict.fromkeys(("arch", "max_tokens", "seq_length", "embed_dim", "units", "bidirectional",
                     "cell", "dropout", "input_dropout"), MODEL_PANEL),
    **dict.fromkeys(("learning_rate", "lr_schedule", "lr_decay"), TRAINING_PANEL),
    **dict.fromkeys(("classes", "text_column", "label_column", "encoding", "decode_errors"),
                    DATA_PANEL)})


def _per_class_table(metrics: dict, numbered: bool) -> Table:
    table = Table()  # its headline and baseline are lines of their own (a title wraps)
    for column in ("#" if numbered else None, "class", "precision", "recall", "F1", "support"):
        if column:
            table.add_column(column, justify="left" if column == "class" else "right")
    for number, name in enumerate(metrics["class_names"], start=1):
        c = metrics["classes"][name]
        cells = [f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
                 f"{c['support']:,}"]
        table.add_row(*([str(number)] if numbered else []), Text(name), *cells)
    return table


CONFUSION_TITLE = "confusion matrix (rows: true, columns: predicted)"


def _confusion_table(metrics: dict) -> Table:
    # its title above it on one line (as the table's title it wrapped to the table's width)
    table = Table()
    table.add_column("")
    for name in metrics["class_names"]:
        table.add_column(Text(name), justify="right")
    for name, row in zip(metrics["class_names"], metrics["confusion_matrix"], strict=True):
        table.add_row(Text(name), *map(str, row))
    return table


def confusion_lines(names: list[str], matrix: list[list[int]], width: int = MATRIX_WIDTH
                    ) -> list[str]:
    """The confusion matrix as plain lines of at most `width` characters: columns numbered as
    the rows, row names cut to what is left."""
    cell = max(len(str(max(max(row) for row in matrix))), len(str(len(names)))) + 1
    label = max(width - cell * len(names), 8)
    digits = len(str(len(names)))
    lines = ["confusion matrix (rows: true class, columns: predicted class, numbered as the "
             "rows)"[:width],
             " " * label + "".join(f"{n:>{cell}}" for n in range(1, len(names) + 1))]
    for number, (name, row) in enumerate(zip(names, matrix, strict=True), start=1):
        head = f"{number:>{digits}} {name}"
        head = head if len(head) < label else head[: label - 2] + "…"
        lines.append(f"{head:<{label}}" + "".join(f"{n:>{cell}}" for n in row))
    return lines


def _print_metrics(metrics: dict) -> None:
    metrics = _shown_names(metrics)
    names = metrics["class_names"]
    out = stdout_console(width=max(MATRIX_WIDTH, Console().width))
    # The named table while it fits in MATRIX_WIDTH columns, numbered columns beyond.
    named_width = max(map(len, names)) + 4 + sum(
        max(len(n), len(str(max(row)))) + 3 for n, row in zip(names, metrics["confusion_matrix"],
                                                               strict=True))
    numbered = named_width > MATRIX_WIDTH
    out.print(f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} on "
              f"{metrics['examples']:,} examples", highlight=False)
    out.print(_per_class_table(metrics, numbered))
    out.print(f"always answering '{metrics['commonest_class']}': accuracy "
              f"{metrics['commonest_share']:.4f}", markup=False, highlight=False)
    if numbered:
        for line in confusion_lines(names, metrics["confusion_matrix"]):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(CONFUSION_TITLE, highlight=False)
        out.print(_confusion_table(metrics))
    if metrics["most_confused"] and len(names) > 2:
        out.print("most confused (true -> predicted):", highlight=False)
        for pair in metrics["most_confused"]:
            out.print(f"  {pair['true']} -> {pair['predicted']}: {pair['count']} of "
                      f"{pair['of']}", markup=False, highlight=False)


def _shown_names(metrics: dict) -> dict:
    """The metrics with class names as the terminal shows them: one line each (a label's
    newline or escape codes escaped, as predict writes them). The tables take them as Text,
    so a '[' in a label is not markup."""
    shown = {name: _one_line(name) for name in metrics["class_names"]}
    return {**metrics, "class_names": [shown[name] for name in metrics["class_names"]],
            "classes": {shown[name]: c for name, c in metrics["classes"].items()},
            "commonest_class": shown[metrics["commonest_class"]],
            "most_confused": [{**pair, "true": _one_line(pair["true"]),
                               "predicted": _one_line(pair["predicted"])}
                              for pair in metrics["most_confused"]]}


@classify_app.command("evaluate")
def classify_evaluate(
    data: Annotated[Path, typer.Argument(
        parser=path_given,
        help="A folder of class subfolders (or a root holding test/), or a .csv, .tsv or "
             ".jsonl table.", show_default=False)],
    model: ModelOption = None,
    checkpoint: CheckpointOption = Checkpoint.best,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    text_column: TextColumnOption = None,
    label_column: LabelColumnOption = None,
    encoding: EncodingOption = None,
    decode_errors: DecodeErrorsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix and the most
    confused classes on labelled texts."""
    from textgen.classify.tables import check_columns_apply
    from textgen.runs import find_model

    check_columns_apply(data, text_column, label_column)  # before the run is looked up
    chosen = find_model(model, checkpoint_dir, Mode.classify, checkpoint)
    reading = decoding(encoding, decode_errors, chosen.meta.get("decoding"))
    from textgen.classify.prediction import evaluate_data

    with using_run(chosen, model is None):  # the run's own columns, where none are given
        scored = evaluate_data(data, chosen, reading, text_column=text_column,
                               label_column=label_column)
    metrics = scored.to_dict()
    if as_json:
        print(json_text(metrics))
        return
    for note in (scored.left_out_note(_one_line), scored.unread_note):
        if note:
            err.print(f"note: {note}", markup=False, highlight=False)
    if scored.training_data:
        err.print(f"note: this is the data run {_one_line(chosen.run.name)} was trained on: "
                  "the figures say how well it learnt these texts, not how it does on new "
                  "ones; score it on labelled texts it has not seen", markup=False,
                  highlight=False)
    if blind := metrics["without_known_words"]:
        held, its, it = ("holds", "its", "it") if blind == 1 else ("hold", "their", "them")
        err.print(f"note: {blind:,} of the {metrics['examples']:,} examples {held} no word the "
                  f"model knows: {its} label is the model's prior, not a reading of {it} (is it "
                  "the data the model was trained for?)", markup=False, highlight=False)
    _print_metrics(metrics)


def _read_lines(text: str, source: str) -> tuple[list[str], list[int]]:
    """One text per line feed (not splitlines(): U+2028, U+0085 or a form feed may sit inside
    a text), with its line number; blank lines are skipped, with a note (--json gives each
    text's line, so the answers can be matched to the lines)."""
    from textgen.classify.tables import is_blank

    lines = text.split("\n")
    if lines and is_blank(lines[-1]):
        lines.pop()  # the last line's line feed ends it; nothing follows
    kept = [(number, line.rstrip("\r")) for number, line in enumerate(lines, start=1)
            if not is_blank(line)]
    if len(kept) < len(lines):
        blank = len(lines) - len(kept)
        err.print(f"note: {source}: skipped {blank} blank line{'s' if blank != 1 else ''} "
                  "(--json gives each text's line)", markup=False)
    return [line for _, line in kept], [number for number, _ in kept]


def _one_line(text: str) -> str:
    """A text as one field of a tab-separated output line: a backslash, a tab and every
    character that str.splitlines() breaks at are escaped as Python writes them."""
    return text.translate(_LINE_ESCAPES)


# Control characters too: a text's escape codes must not retitle or clear the terminal.
_LINE_ESCAPES = str.maketrans({"\\": "\\\\", **CONTROL_ESCAPES})


def _stdin_lines(reading) -> tuple[list[str], list[int]]:
    """The texts on stdin, one a line, decoded by the same rules as files (--encoding,
    --decode-errors)."""
    from textgen.reading import normalise_newlines

    if sys.stdin is None or sys.stdin.closed:
        raise TextgenError("- reads texts from stdin, but stdin is closed; pipe the texts in "
                           "or pass them as arguments")
    source = getattr(sys.stdin, "buffer", None)
    data = source.read() if source is not None else sys.stdin.read().encode("utf-8")
    return _read_lines(normalise_newlines(reading.decode(data, "stdin")), "stdin")


@classify_app.command("predict")
def classify_predict(
    texts: Annotated[list[str] | None, typer.Argument(
        help="Texts to classify; - reads one text per line from stdin.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", parser=path_given,
        help="Read the texts from a file: one per line, or a .csv, .tsv or .jsonl "
                       "table's --text-column (--json keeps each row's other columns).")
    ] = None,
    model: ModelOption = None,
    checkpoint: CheckpointOption = Checkpoint.best,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
    text_column: TextColumnOption = None,
    encoding: EncodingOption = None,
    decode_errors: DecodeErrorsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Label texts with a trained classifier: one line per text, label and probability."""
    from textgen.classify.tables import Columns, is_blank, is_table, read_table
    from textgen.reading import argument_text, read_text
    from textgen.runs import find_model

    if (texts or []).count("-") > 1:
        raise TextgenError("- is given more than once; stdin is read once, so give it once")
    if file is not None and file.suffix.lower() == ".json":  # lines of a JSON array are no texts
        raise TextgenError(f"--file {file}: a .json file; give its texts as JSON Lines (.jsonl, "
                           'one object a line, e.g. {"text": "..."}), a .csv or .tsv table, or '
                           "a text file with one text a line")
    # The run first (run.json only, no TensorFlow): its decoding and columns are the defaults.
    chosen = find_model(model, checkpoint_dir, Mode.classify, checkpoint)
    reading = decoding(encoding, decode_errors, chosen.meta.get("decoding"))
    items: list[str] = []
    numbers: list[int | None] = []  # each text's line in its file or stdin
    for number, text in enumerate(texts or [], start=1):
        if text == "-":
            lines, at = _stdin_lines(reading)
            items += lines
            numbers += at
        elif is_blank(text):
            raise TextgenError(f"text {number} is empty; give each text some words")
        else:  # the terminal's text (--encoding is the files'); bytes it cannot hold refused
            items.append(argument_text(text, f"text {number}"))
            numbers.append(None)
    others: list[dict] = [{} for _ in items]
    if file is not None:
        if is_table(file):
            columns = Columns.parse(text_column, saved=chosen.meta.get("columns"))
            with using_run(chosen, picked=False):  # read with the run's columns: named
                table = read_table(file, reading, columns, labels=False)
            items += table.texts
            others += table.others
            numbers += table.lines
        else:
            lines, at = _read_lines(read_text(file, reading), str(file))
            items += lines
            others += [{} for _ in lines]
            numbers += at
    if not items:
        given = [name for name, gave in (("stdin (-)", "-" in (texts or [])),
                                         (str(file), file is not None)) if gave]
        if given:  # read, but blank
            raise TextgenError(f"no texts to classify: {' and '.join(given)} held none (only "
                               "blank lines, or nothing); give one text a line")
        raise TextgenError("no texts to classify; give them as arguments, - for stdin, "
                           "or --file PATH")
    from textgen.classify.prediction import predict_texts

    with using_run(chosen, model is None):
        predictions = predict_texts(items, chosen)
    for prediction, row, number in zip(predictions, others, numbers, strict=True):
        if row:
            prediction["columns"] = row
        if number is not None:
            prediction["line"] = number
    blind = sum(1 for p in predictions if p.get("known_words") == 0)
    if blind:
        some = (f"1 of the {len(predictions)} texts holds no word the model knows: its label "
                "is the model's prior, not a reading of it" if blind == 1 else
                f"{blind} of the {len(predictions)} texts hold no word the model knows: their "
                "labels are the model's prior, not a reading of them")
        err.print(f"note: {some}", markup=False)
    if as_json:
        print(json_text(predictions))
        return
    for p in predictions:
        print(f"{_one_line(p['label'])}\t{p['probability']:.4f}\t{_one_line(p['text'])}")
