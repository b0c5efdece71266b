"""Classify mode's recipe for the training lifecycle, and `train_classifier`, its Python API."""

from __future__ import annotations

import re
import shlex
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from textgen.classify.config import Arch, ClassifierConfig, ClassifyTrainOptions
from textgen.classify.data import Examples, SplitRule, locate, parse_classes
from textgen.classify.inference import words
from textgen.classify.metrics import commonest_class
from textgen.classify.tables import (
    DEFAULT_COLUMNS,
    Columns,
    check_columns_apply,
    is_table,
)
from textgen.console import notes_console
from textgen.errors import (
    FIELD,
    TextgenError,
    as_path,
    check_field,
    default_run_name,
    named_fields,
    written,
)
from textgen.modes import Mode
from textgen.reading import DEFAULT_DECODING, Decoding
from textgen.runs import RunDir, load_keras_model
from textgen.training.lifecycle import (
    BYTES_PER_PARAMETER,
    Datasets,
    Notes,
    TrainResult,
    resumed_reading,
    train_run,
)
from textgen.training.options import LRSchedule, TrainOptions, split_overrides

if TYPE_CHECKING:
    import keras

# epochs without a better validation loss before the note: as many as stop a run
OVERFITTING_PATIENCE = ClassifyTrainOptions.patience


def overfitting_note(summary: dict, patience: int = OVERFITTING_PATIENCE) -> str | None:
    """A note when validation loss stopped improving `patience` or more epochs before the end.

    best.keras already keeps the best epoch, but the learning rate decays over the planned
    epochs, so a run planned for fewer usually ends better (IMDb, default LSTM: 0.859 test
    accuracy from 10 planned epochs, best at epoch 2; 0.872 from 2).
    """
    best, done = summary.get("best_epoch"), summary.get("epochs_done", 0)
    if not best or done - best < patience or summary.get("monitor") == "loss":
        return None
    return written(f"validation loss last improved at epoch {best} of {done}: the model "
                   f"overfits after that. best.keras keeps epoch {best}; a new run with "
                   "{epochs} decays the learning rate over the epochs that help and usually "
                   "ends better", {"epochs": ("epochs", best)})


def _check_words(examples: Examples) -> None:
    """The classifier reads words (letters, marks, digits): texts of only punctuation, emoji
    or symbols leave it no vocabulary to learn from."""
    if not any(words(text) for text in examples.texts):
        raise TextgenError(f"{examples.source}: no text holds a word (letters or digits), only "
                           "punctuation, symbols or emoji; the classifier learns from words")


SINGLETON_SHARE = 0.5  # past this share of one-example classes, the labels look like no labels
# Letters of scripts written without spaces between words: Thai, Lao, Tibetan, Myanmar, Khmer,
# CJK radicals, kana and bopomofo, CJK ideographs (and their extensions), halfwidth katakana.
UNSPACED_LETTER = re.compile("[\u0e00-\u0fff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf"
                             "\u3040-\u312f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
                             "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f]")
# A text is unspaced where most of those letters sit in words of this many characters or more
# (a segmented Chinese word is mostly 1 to 4); the note comes where this share of texts are.
UNSPACED_WORD, UNSPACED_SHARE = 5, 0.5
FEW_EXAMPLES = 5  # a class with fewer is named before training: little to learn, less to score


def _data_notes(examples: Examples, columns: Columns) -> list[str]:
    """What a user should know about the data before training starts: the rows --classes
    left out of a table, class folders' sub-folders (not read), texts without spaces, labels
    that differ only in case, and labels that are nearly all different (the wrong column?)."""
    notes = []
    if examples.left_out:
        rows = sum(examples.left_out.values())
        labels = ", ".join(f"{label} ({count})" for label, count in
                           sorted(examples.left_out.items(), key=lambda item: -item[1])[:5])
        notes.append(written(f"{{classes}} left out {rows:,} row{'s' if rows != 1 else ''} "
                             f"of other labels: {labels}"
                             f"{', ...' if len(examples.left_out) > 5 else ''}",
                             named_fields("classes")))
    if unread := examples.unread_note("train on them"):
        notes.append(unread)
    unspaced = sum(1 for text in examples.texts if _unspaced(text))
    if unspaced >= UNSPACED_SHARE * len(examples.texts):
        notes.append(f"{unspaced:,} of the {len(examples.texts):,} texts are written without "
                     "spaces (Chinese, Japanese, Thai...): the classifier splits words at white "
                     "space and punctuation, so it learns their phrases only whole; put spaces "
                     "between the words")
    counts = examples.counts
    by_case: dict[str, list[str]] = {}
    for name in counts:  # NFC: 'é' as one code point or as 'e' and an accent look the same
        by_case.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
    if twins := [names for names in by_case.values() if len(names) > 1]:
        shown = "; ".join(" and ".join(map(_label_shown, names)) for names in twins[:3])
        notes.append(f"labels that differ only in case or in how their accents are encoded "
                     f"are different classes: {shown}{'; ...' if len(twins) > 3 else ''}; if "
                     "they mean the same, write them alike in the data")
    alone = sum(1 for n in counts.values() if n == 1)
    if len(counts) > 10 and alone > SINGLETON_SHARE * len(counts):
        notes.append(f"{alone:,} of the {len(counts):,} classes have one example each: "
                     f"nothing to learn a class from; is '{columns.label}' the label column? "
                     + written("({label_column})", named_fields("label_column")))
    elif few := {name: n for name, n in counts.items() if n < FEW_EXAMPLES}:
        shown = ", ".join(f"'{name}' ({n})" for name, n in list(few.items())[:5])
        notes.append(f"{len(few)} class{'es' if len(few) != 1 else ''} with under "
                     f"{FEW_EXAMPLES} examples: {shown}{', ...' if len(few) > 5 else ''}; "
                     "the model can hardly learn them, and any score for them rests on one "
                     "or two texts")
    return notes


def repeated_texts(examples: Examples) -> str | None:
    """The note on texts given more than once (rows repeated, or a text under two labels),
    whose copies the validation split keeps together (SplitRule.by_text); None without."""
    labels_of: dict[str, set[int]] = {}
    for text, label in zip(examples.texts, examples.labels, strict=True):
        labels_of.setdefault(text, set()).add(int(label))
    repeats = len(examples.texts) - len(labels_of)
    if not repeats:
        return None
    mixed = sum(1 for labels in labels_of.values() if len(labels) > 1)
    conflicting = (f" ({mixed:,} text{'s are' if mixed != 1 else ' is'} given under two or "
                   "more labels: no model gets every copy right)" if mixed else "")
    return (f"{repeats:,} example{'s repeat' if repeats != 1 else ' repeats'} an earlier "
            f"one's text{conflicting}; the validation split keeps each text's copies on one "
            "side, so its figures are on texts the model did not train on")


def _unspaced(text: str) -> bool:
    """Written without spaces: most of its letters of such scripts sit in long words, which
    the classifier (splitting at white space and punctuation) learns only whole."""
    if not UNSPACED_LETTER.search(text):
        return False
    letters = in_long = 0
    for token in words(text):
        found = len(UNSPACED_LETTER.findall(token))
        letters += found
        in_long += found if len(token) >= UNSPACED_WORD else 0
    return 2 * in_long > letters


def _label_shown(name: str) -> str:
    """A label quoted; one not in NFC by its code points, so two that print alike differ."""
    return repr(name) if unicodedata.is_normalized("NFC", name) else ascii(name)


def classifier_run_name(data: str | Path | None) -> str:
    """A new run's folder name: its table's file name, or its folder's (the bundled set's:
    reviews)."""
    if data is None:
        return "reviews"
    data = Path(data)
    return default_run_name(data.resolve().name if data.is_dir() else data.stem)


class ClassifierRecipe:
    """A text classifier trained on a folder of class subfolders or on a table."""

    mode = Mode.classify

    def __init__(self, data: str | Path | None, classes: list[str] | None,
                 decoding: Decoding = DEFAULT_DECODING, columns: Columns = DEFAULT_COLUMNS):
        self.data = locate(data, classes, decoding, columns)  # checked before TensorFlow loads
        _check_words(self.data.train)
        source = self.data.train.source
        self.run_name = classifier_run_name(data)
        self.facts = {"data": str(source.resolve()), "examples": self.data.counts,
                      "data_sha256": self.data.train.digest(), "decoding": decoding.to_dict(),
                      "split": str(SplitRule.by_text)}
        if is_table(source):
            self.facts["columns"] = columns.to_dict()
        self.data_notes = _data_notes(self.data.train, columns)
        self.train = self.validation = None
        self.scored: np.ndarray | None = None  # the labels the summary's accuracy is over

    def new_config(self, given: dict[str, Any]) -> ClassifierConfig:
        return ClassifierConfig(class_names=list(self.data.classes), **given)

    def model_memory(self, config: ClassifierConfig) -> tuple[int, tuple[str, ...]]:
        """ngrams: one weight per n-gram and class; lstm: the word vectors dominate (the
        recurrent layer and the output are counted too), BYTES_PER_PARAMETER each."""
        classes = len(config.class_names)
        if config.arch == Arch.ngrams:
            return BYTES_PER_PARAMETER * config.max_tokens * classes, ("max_tokens",)
        directions = 2 if config.bidirectional else 1
        recurrent = directions * config.cell.gates * config.units * (
            config.embed_dim + config.units + 1)
        weights = (config.max_tokens * config.embed_dim + recurrent +
                   directions * config.units * classes)
        return BYTES_PER_PARAMETER * weights, ("max_tokens", "embed_dim")

    def example_memory(self, config: ClassifierConfig) -> int:
        """ngrams: the multi-hot input row and its gradient; lstm: per token, the word vector
        and the recurrent layer's gates and states (both directions) with their gradients;
        float32."""
        if config.arch == Arch.ngrams:
            return 4 * 2 * config.max_tokens
        directions = 2 if config.bidirectional else 1
        per_token = 2 * config.embed_dim + 2 * directions * config.units * (config.cell.gates + 3)
        return 4 * config.seq_length * per_token

    def choose_defaults(self, options: ClassifyTrainOptions, given: dict[str, Any],
                        given_options: set[str], notes: Notes) -> dict[str, Any]:
        """The architecture and how to train it, sized for the data (textgen.classify.sizing);
        printed in one line and saved in run.json as `chosen`."""
        from textgen.classify.sizing import DataSize, choose_training

        user = {**given, **{k: getattr(options, k) for k in given_options}}
        size = DataSize.of(self.data.train.texts, len(self.data.classes),
                           tuple(self.data.train.counts.values()), self.data.test is not None)
        choice = choose_training(size, user)
        for key in ClassifyTrainOptions.field_names() & set(choice.values):
            setattr(options, key, choice.values[key])
        notes.add(choice.reason)
        for note in choice.notes:
            notes.add(note)
        self.facts["chosen"] = {**{k: str(v) if isinstance(v, StrEnum) else v
                                   for k, v in choice.values.items()},
                                "reason": choice.reason}
        return {k: v for k, v in choice.values.items()
                if k in ClassifierConfig.option_names()}

    def config_from_dict(self, saved: dict, source: str) -> ClassifierConfig:
        return ClassifierConfig.from_dict(saved, source)

    def check_resume(self, config: ClassifierConfig, run: RunDir) -> None:
        if tuple(config.class_names) != self.data.classes:
            raise TextgenError(f"{self.data.train.source}: classes {list(self.data.classes)} "
                               f"differ from the run's {config.class_names}; resume with the "
                               "run's classes, or train a new run ({run_name}, {overwrite})",
                               {"run_name": ("run_name", FIELD),
                                "overwrite": ("overwrite", True)})
        saved = run.read_meta()
        self.facts["split"] = saved.get("split", str(SplitRule.permutation))  # as it began
        if saved.get("data_sha256") not in (None, self.facts["data_sha256"]):
            # The run's progress and figures are its data's (without DATA: the bundled reviews).
            raise TextgenError(
                f"{self.data.train.source}: not the data run {run.name} was trained on "
                f"({saved.get('data')}, as its columns and {{classes}} read it); {{resume}} "
                f"continues on the same data: give it ({shlex.quote(str(saved.get('data')))} "
                "with the run's {classes} and column options), or train a new run on this "
                "data (another {run_name})",
                {"resume": ("resume", True), **named_fields("classes", "run_name")})

    def prepare_data(self, config: ClassifierConfig, options: TrainOptions,
                     global_batch: int) -> int:
        from textgen.classify.data import split_datasets, split_indices

        examples = self.data.train
        training, held_out = split_indices(examples.labels, options.val_split,
                                           options.rng_seed, SplitRule(self.facts["split"]),
                                           examples.texts)
        self.train, self.validation = split_datasets(examples, training, held_out,
                                                     global_batch)
        self.scored = examples.labels[held_out if len(held_out) else training]
        return int(self.train.cardinality())

    def holds_out(self) -> bool:
        return self.validation is not None

    def build_model(self, config: ClassifierConfig, notes: Notes) -> keras.Model:
        from textgen.classify.model import build_classifier

        # said as a model starts: a validation split by text is what keeps copies together
        if self.validation is not None and self.facts["split"] == SplitRule.by_text and (
                copies := repeated_texts(self.data.train)):
            notes.add(copies)

        return build_classifier(config, self.train)

    def compile_args(self, config: ClassifierConfig) -> dict[str, Any]:
        from textgen.classify.model import compile_args

        return compile_args(config)

    def load_model(self, path: Path, config: ClassifierConfig, run: RunDir) -> keras.Model:
        from textgen.classify import model  # noqa: F401  (registers its layers for loading)

        loaded = load_keras_model(path, compile=True)
        expected = 1 if config.binary else len(config.class_names)  # one sigmoid for two
        if (outputs := loaded.output_shape[-1]) != expected:
            raise TextgenError(f"{path}: does not match {run.meta.name} ({outputs} outputs, "
                               f"its {len(config.class_names)} classes give {expected}); use "
                               "the run's own model file, or retrain the run")
        return loaded

    def write_files(self, run: RunDir) -> None:
        pass  # the vectorizer's vocabulary is inside the .keras file

    def datasets(self, config: ClassifierConfig, options: TrainOptions, global_batch: int,
                 skip_batches: int) -> Datasets:
        from textgen.classify.data import training_stream
        from textgen.classify.model import as_targets

        # An endless stream (each pass in its own order), fast-forwarded past the batches done.
        train = as_targets(training_stream(self.data.train, options.val_split,
                                           options.rng_seed, global_batch,
                                           SplitRule(self.facts["split"])), config.binary)
        if skip_batches:
            train = train.skip(skip_batches)
        validation = None
        if self.validation is not None:
            validation = as_targets(self.validation, config.binary)
        return Datasets(train, validation)

    def describe_epoch(self, logs: dict[str, float]) -> str:
        text = f"loss {logs['loss']:.4f}  accuracy {logs.get('accuracy', float('nan')):.3f}"
        if "val_loss" in logs:
            text += f"  val loss {logs['val_loss']:.4f}  val accuracy {logs['val_accuracy']:.3f}"
        return text

    def extra_metrics(self, logs: dict[str, float]) -> dict[str, float]:
        return {}

    def finish(self, result: TrainResult, config: ClassifierConfig) -> None:
        """The overfitting note, and the test-set evaluation when the data has a test/."""
        from textgen.classify.prediction import evaluate_examples
        from textgen.runs import ModelChoice

        # what the summary's accuracy must beat: always answering the commonest class
        commonest, share = commonest_class(
            np.bincount(self.scored, minlength=len(config.class_names)), config.class_names)
        result.summary["commonest"] = {"class": commonest, "share": share,
                                       "examples": len(self.scored),
                                       "held_out": self.validation is not None}
        note = overfitting_note(result.summary)
        if note and config.lr_schedule == LRSchedule.cosine:
            result.notes.add(note)
        if self.data.test is not None:
            run = result.run
            chosen = ModelChoice(run, run.model_file(), run.read_meta())
            scored = evaluate_examples(self.data.test, chosen)
            result.summary["test"] = scored.to_dict()
            if left_out := scored.left_out_note():
                result.notes.add(f"test/: {left_out}")
            if scored.unread_note:
                result.notes.add(scored.unread_note)


def train_classifier(data: str | Path | None = None, classes: list[str] | None = None, *,
                     console: Console | None = None, encoding: str | None = None,
                     decode_errors: str | None = None,
                     text_column: str | list[str] | None = None,
                     label_column: str | None = None, **options: Any) -> TrainResult:
    """Train (or resume) a text classifier on a folder of class subfolders or a table.

    `data` is a folder with one subfolder of example files per class, a root holding train/
    and test/ (trained on train/, evaluated on test/ at the end, in `result.summary["test"]`),
    or a `.csv`, `.tsv` or `.jsonl` table with `text_column` (a list, or `"a,b"`, joins
    several) and `label_column` (default: text and label). `encoding` and `decode_errors`
    (strict, replace, ignore) say how bytes become text (default: UTF-8, strict). A resumed
    run reads its data as it did where these are left out. Keyword options set fields of
    ClassifierConfig or ClassifyTrainOptions, e.g. `epochs=2, arch="ngrams"`. With no data,
    the bundled review set.
    """
    console = notes_console(console)
    given, training = split_overrides(options, ClassifierConfig.option_names(),
                                      ClassifyTrainOptions)
    if data is not None:
        data = as_path(data, "data")
    check_columns_apply(data, text_column, label_column)
    if isinstance(classes, str):  # "neg,pos", as --classes takes them
        classes = parse_classes(classes)
    check_field(classes is None or isinstance(classes, list | tuple) and all(
        isinstance(c, str) for c in classes), "classes",
        f"must be a list of class names (or 'neg,pos'), got {classes!r}")
    train_options = ClassifyTrainOptions(**training)  # checked before the data is read
    ClassifierConfig(**given)  # so are the model's options (the classes come from the data)
    reading, saved = resumed_reading(train_options, classifier_run_name(data), encoding,
                                     decode_errors)
    recipe = ClassifierRecipe(data, classes, reading,
                              Columns.parse(text_column, label_column, saved.get("columns")))
    # A resumed run keeps its architecture: which options it ignores follows the run's.
    arch = given.get("arch", saved.get("config", {}).get("arch", ClassifierConfig.arch))
    ignored = recipe.new_config({**given, "arch": arch}).ignored(set(given))
    if ignored:
        unused = ", ".join("{" + name + "}" for name in ignored)
        console.print("note: " + written(f"{{arch}} does not use {unused}; ignored",
                                         {"arch": ("arch", Arch.ngrams),
                                          **named_fields(*ignored)}),
                      markup=False, highlight=False)
    return train_run(recipe, train_options, given, set(training), console)
