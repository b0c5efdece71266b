"""Labelled texts for a classifier: reading them from folders or tables, checking, splitting.

Two layouts hold the same thing:
- a folder with one subfolder per class, one file per example (aclImdb's layout; any file
  name, any extension; hidden files and sub-folders skipped). Given a folder that holds
  `train/` and `test/`, training uses `train/` and the final evaluation `test/`. aclImdb's
  unlabelled `unsup/` folder is never a class.
- a table (`.csv`, `.tsv`, `.jsonl`) with a text column and a label column (classify/tables.py).

Either way the examples are read into memory once (IMDb's 25,000 reviews are 33 MB), put in
one canonical order (by class, then text), so the same examples give the same split and the
same model whichever layout they came in, and split with a seeded permutation.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textgen.classify.tables import (
    DEFAULT_COLUMNS,
    Columns,
    is_blank,
    is_table,
    label_name,
    read_table,
)
from textgen.errors import FIELD, FieldError, TextgenError
from textgen.reading import (
    DEFAULT_DECODING,
    Decoding,
    check_not_all_dropped,
    check_not_binary,
    document_kind,
    folder_files,
    read_bytes,
)

if TYPE_CHECKING:
    import tensorflow as tf

IGNORED_FOLDERS = {"unsup"}
BUNDLED_REVIEWS = "reviews"


def bundled_reviews_path() -> Path:
    """The small review set shipped with textgen (train/ and test/, neg/ and pos/)."""
    return Path(str(resources.files("textgen.corpora").joinpath(BUNDLED_REVIEWS)))


@dataclass
class Examples:
    """Labelled texts: `texts[i]` belongs to class `classes[labels[i]]`."""

    texts: list[str]
    labels: np.ndarray  # int32 class indices
    classes: tuple[str, ...]
    source: Path
    left_out: dict[str, int] = field(default_factory=dict)  # a table's rows of other labels
    unread: list[Path] = field(default_factory=list)  # sub-folders of class folders (not read)
    root: Path | None = None  # the folder the user gave (notes name paths from it), or source

    def unread_note(self, use: str) -> str | None:
        """The note naming the class folders' sub-folders, which are not read; `use` is what
        reading their files would do ("train on them")."""
        if not self.unread:
            return None
        shown = ", ".join(f"{p.relative_to(self.root or self.source)}/" for p in self.unread[:3])
        return (f"sub-folders of class folders are not read: {shown}"
                f"{', ...' if len(self.unread) > 3 else ''}; move their files into the class "
                f"folder to {use}")

    @property
    def counts(self) -> dict[str, int]:
        found = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, found, strict=True)}

    def digest(self) -> str:
        """The SHA-256 of the labelled texts, in order, so a run knows the data it was
        trained on."""
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels, strict=True):
            for part in (self.classes[label], text):
                digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return digest.hexdigest()

    def canonical(self) -> Examples:
        """Sorted by class, then text: the order no longer depends on the layout."""
        order = sorted(range(len(self.texts)), key=lambda i: (self.labels[i], self.texts[i]))
        return Examples([self.texts[i] for i in order], self.labels[order], self.classes,
                        self.source, self.left_out, self.unread, self.root)


@dataclass(frozen=True)
class LabelledData:
    """The training examples and, when the data has one, the test set."""

    train: Examples
    test: Examples | None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def counts(self) -> dict[str, int]:
        return self.train.counts


def class_order(names: set[str] | list[str]) -> list[str]:
    """Class names in the order a model's outputs take them: by value where every name is a
    number (star ratings 1 to 10, not 1, 10, 2), else alphabetically."""
    def number(name: str) -> Decimal | None:  # exact: a label may be longer than a float
        try:
            value = Decimal(name)
        except InvalidOperation:
            return None
        return value if value.is_finite() else None

    if names and all(number(n) is not None for n in names):
        return sorted(names, key=lambda n: (number(n), n))
    return sorted(names)


def _class_folders(folder: Path) -> list[str]:
    return class_order([
        p.name for p in folder.iterdir()
        if p.is_dir() and p.name not in IGNORED_FOLDERS and not p.name.startswith(".")
    ])


def read_class_folders(folder: Path, classes: list[str] | tuple[str, ...] | None = None,
                       decoding: Decoding = DEFAULT_DECODING, root: Path | None = None,
                       known_classes: bool = False) -> Examples:
    """The examples of a folder of class subfolders; one-line errors for every problem. With
    `known_classes` (a trained model's, for evaluation) the folder may hold only some of
    them, as a table may."""
    if not folder.exists():
        raise TextgenError(f"{folder}: no such folder; give a folder with one subfolder per "
                           "class, or a .csv, .tsv or .jsonl table")
    if not folder.is_dir() and folder.suffix.lower() == ".json":  # a JSON array is no table
        raise TextgenError(f"{folder}: a .json file; give the rows as JSON Lines (.jsonl, one "
                           'object a line, e.g. {"text": "...", "label": "..."}), or a .csv or '
                           ".tsv table")
    if not folder.is_dir():
        raise TextgenError(f"{folder}: not a folder; give a folder with one subfolder per class,"
                           " or a .csv, .tsv or .jsonl table")
    if classes and not known_classes:  # a model's classes (from a table) may be no folder
        _check_folder_names(folder, classes)
    names = list(classes) if classes else _class_folders(folder)
    if len(names) < 2:
        found = ", ".join(names) or "none"
        raise TextgenError(
            f"{folder}: needs at least two class subfolders (found: {found}); put each class's "
            "files in its own subfolder, e.g. neg/ and pos/"
        )
    texts, labels, unread = [], [], []
    for index, name in enumerate(names):
        class_dir = folder / name
        files = (folder_files(class_dir, root or folder)
                 if _is_folder_name(name) and class_dir.is_dir() else [])
        if files:  # a class's examples are its own files: sub-folders are named in a note
            unread += sorted(p for p in class_dir.iterdir()
                             if p.is_dir() and not p.name.startswith("."))
        if known_classes and not files:
            continue
        if not class_dir.is_dir():
            raise TextgenError(f"{class_dir}: class folder not found (from {{classes}}); create "
                               "it or correct the name", {"classes": ("classes", FIELD)})
        if not files:
            raise TextgenError(f"{class_dir}: class {name!r} has no files; put its examples "
                               "in it, one file each (sub-folders are not read)")
        class_texts = [_example_text(path, decoding) for path in files]
        empty = [path for path, text in zip(files, class_texts, strict=True) if is_blank(text)]
        if len(empty) == len(files):
            raise TextgenError(f"{class_dir}: all {len(files)} files of class {name!r} are "
                               "empty; put the class's texts in them")
        if empty:  # an example without a word, as a table's empty cell is refused
            raise TextgenError(f"{class_dir}: {len(empty)} of the {len(files)} files of class "
                               f"{name!r} {'is' if len(empty) == 1 else 'are'} empty (the "
                               f"first: {empty[0].name}); put their texts in them or remove "
                               "them")
        texts += class_texts
        labels += [index] * len(files)
    if not texts:
        raise TextgenError(f"{folder}: none of the model's class folders ({', '.join(names)}) "
                           "holds files; give a folder with a subfolder of files per class")
    return Examples(texts, np.array(labels, dtype=np.int32), tuple(names), folder,
                    unread=unread, root=root or folder)


def _example_text(path: Path, decoding: Decoding) -> str:
    data = read_bytes(path)
    kind = document_kind(data)
    if kind is not None:  # the user put it there, or forgot it: not an example either way
        raise TextgenError(f"{path}: {kind}, not a text; remove it from the class folder (or "
                           "save its text as plain text in its place)")
    # an image or a database: not an example
    check_not_binary(data, path, decoding, "not a text; remove it from the class folder")
    text = decoding.decode(data, path)
    check_not_all_dropped(data, text, path, decoding)
    return text


def read_table_examples(path: Path, classes: list[str] | tuple[str, ...] | None = None,
                        decoding: Decoding = DEFAULT_DECODING, columns: Columns = DEFAULT_COLUMNS,
                        known_classes: bool = False) -> Examples:
    """The examples of a table. The classes are its labels in class_order (or `classes`: rows with
    other labels are left out and counted, as with `known_classes`, a trained model's, where
    a table of none of them is an error)."""
    table = read_table(path, decoding, columns)
    names = tuple(classes) if classes else tuple(class_order(set(table.labels)))
    index = {name: i for i, name in enumerate(names)}
    for i, name in enumerate(names):  # a class named before labels were read as label_name
        index.setdefault(label_name(name), i)
    texts, labels, left_out = [], [], {}
    for text, label in zip(table.texts, table.labels, strict=True):
        if label in index:
            texts.append(text)
            labels.append(index[label])
        else:
            left_out[label] = left_out.get(label, 0) + 1
    if known_classes and not texts:
        raise TextgenError(f"{path}: no row has a label of the model's classes "
                           f"({', '.join(names)}); give rows of those labels")
    if len(names) < 2:
        raise TextgenError(f"{path}: needs at least two classes in '{columns.label}' (found: "
                           f"{', '.join(names) or 'none'})")
    present = set(labels)
    missing = [name for i, name in enumerate(names) if i not in present]
    if missing and not known_classes:
        raise TextgenError(f"{path}: no rows of class {', '.join(map(repr, missing))} "
                           "(from {classes})", {"classes": ("classes", FIELD)})
    return Examples(texts, np.array(labels, dtype=np.int32), names, path, left_out)


def read_examples(path: Path, classes: list[str] | tuple[str, ...] | None = None,
                  decoding: Decoding = DEFAULT_DECODING, columns: Columns = DEFAULT_COLUMNS,
                  known_classes: bool = False, root: Path | None = None) -> Examples:
    """The examples of a table or of a folder of class subfolders."""
    if is_table(path):
        return read_table_examples(path, classes, decoding, columns, known_classes)
    return read_class_folders(path, classes, decoding, root, known_classes)


def locate(data: str | Path | None, classes: list[str] | None = None,
           decoding: Decoding = DEFAULT_DECODING, columns: Columns = DEFAULT_COLUMNS
           ) -> LabelledData:
    """Read the training data (and a test set): a table, a folder of class subfolders, or a
    root holding train/ and test/. With no path, the bundled review set."""
    root = Path(data) if data is not None else bundled_reviews_path()
    if not is_table(root) and (root / "train").is_dir():
        train = read_class_folders(root / "train", classes, decoding, root)
        test = None
        if (root / "test").is_dir():  # scored as `classify evaluate` scores it
            test = read_class_folders(root / "test", train.classes, decoding, root,
                                      known_classes=True)
            test.left_out = unknown_class_folders(root / "test", list(train.classes))
        return LabelledData(train.canonical(), test)
    return LabelledData(read_examples(root, classes, decoding, columns).canonical(), None)


def evaluation_examples(data: str | Path, classes: list[str], decoding: Decoding,
                        columns: Columns) -> Examples:
    """A trained model's evaluation data: a table, a folder of (some of) its class
    subfolders, or a root holding test/."""
    path = Path(data)
    if is_table(path):
        return read_table_examples(path, classes, decoding, columns, known_classes=True)
    examples = read_class_folders(_class_root(path, classes), classes, decoding, path,
                                  known_classes=True)
    examples.left_out = unknown_class_folders(path, classes)
    return examples


def unknown_class_folders(data: str | Path, classes: list[str]) -> dict[str, int]:
    """The evaluation data's class subfolders that the model was not trained on (evaluation
    reads only the model's classes), with the files each holds; none that holds none."""
    path = Path(data)
    if not path.is_dir():
        return {}
    folder = _class_root(path, classes)
    counts = {name: sum(1 for f in (folder / name).iterdir()
                        if f.is_file() and not f.name.startswith("."))
              for name in _class_folders(folder) if name not in classes}
    return {name: count for name, count in counts.items() if count}


def _class_root(path: Path, classes: list[str]) -> Path:
    """Where the class folders are: `path`, or its test/ when it is a root (like aclImdb's)
    that holds test/ and none of the classes."""
    if (path / "test").is_dir() and not any((path / name).is_dir() for name in classes):
        return path / "test"
    return path


def parse_classes(option: str | None) -> list[str] | None:
    if option is None:
        return None
    names = [c.strip() for c in option.split(",") if c.strip()]
    twice = [name for name in dict.fromkeys(names) if names.count(name) > 1]
    if twice:
        raise FieldError("classes", f"names {', '.join(map(repr, twice))} more than once; name "
                         "each class once")
    if len(names) < 2:
        raise FieldError("classes", f"needs two or more names, e.g. neg,pos; got {option!r}")
    return names


def _is_folder_name(name: str) -> bool:
    """A class folder is a subfolder of the data: a class named like a path ('..', 'a/b')
    would read a folder elsewhere. (A table's labels may hold '/': 'Sci/Tech'.)"""
    return name not in (".", "..") and "/" not in name and "\\" not in name


def _check_folder_names(folder: Path, names: list[str] | tuple[str, ...]) -> None:
    for name in names:
        if not _is_folder_name(name):
            raise TextgenError(f"{folder}: class {name!r} cannot be a subfolder's name; give "
                               "subfolder names ({classes}), or the data as a table",
                               {"classes": ("classes", "neg,pos")})


def clean_text(texts: tf.Tensor) -> tf.Tensor:
    """HTML line breaks (aclImdb's `<br />`) become spaces."""
    import tensorflow as tf

    return tf.strings.regex_replace(texts, r"<br\s*/?>", " ")


class SplitRule(StrEnum):
    """How a run holds out its validation examples (run.json's `split`)."""

    # by_class, a text given more than once held out with all its copies or with none:
    # a copy on each side scores the model on a text it trained on
    by_text = "by_text"
    by_class = "by_class"  # val_split of each class, never a class's last example
    # the whole data's permutation: runs trained before the split kept classes whole
    permutation = "permutation"


def split_indices(labels: np.ndarray, val_split: float, seed: int,
                  rule: SplitRule = SplitRule.by_class, texts: Sequence[str] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices from a seeded permutation. By class, each class holds
    out its share (held_out_counts) but keeps at least one example to train on: a small class
    held out whole would never be learnt, nor could its figures mean anything. By text, the
    same shares are filled with whole texts, as nearly as they allow and never over: the
    distinct texts are permuted and each, with all its copies, is held out where every class
    among its rows still has room (a greedy fill from the permutation's end: a class of only
    copied texts may fall a row or two short); without copies, the same split as by class."""
    if rule == SplitRule.permutation:
        order = np.random.default_rng(seed).permutation(len(labels))
        n_val = int(len(labels) * val_split)
        return order[: len(labels) - n_val], order[len(labels) - n_val :]
    if rule == SplitRule.by_text and texts is not None:
        group = copies_of(texts)
        members: list[list[int]] = [[] for _ in range(int(group.max(initial=-1)) + 1)]
        for row, g in enumerate(group):
            members[g].append(row)
    else:  # each example alone
        members = [[row] for row in range(len(labels))]
    order = np.random.default_rng(seed).permutation(len(members))
    classes, counts = np.unique(labels, return_counts=True)
    room = Counter(dict(zip(classes.tolist(), held_out_counts(counts, val_split), strict=True)))
    held = np.zeros(len(members), dtype=bool)
    for g in order[::-1]:  # the permutation's end is held out, as far as each class has room
        need = Counter(int(labels[row]) for row in members[g])
        if all(n <= room[label] for label, n in need.items()):
            held[g] = True
            room.subtract(need)
    return tuple(np.array([row for g in order if held[g] == side for row in members[g]],
                          dtype=np.intp) for side in (False, True))


def copies_of(texts: Sequence[str]) -> np.ndarray:
    """Each text's group: the number of distinct texts before its first appearance, so rows
    with one text share a number and, without copies, row i is group i."""
    first: dict[str, int] = {}
    return np.fromiter((first.setdefault(text, len(first)) for text in texts), np.intp,
                       len(texts))


def held_out_counts(counts: np.ndarray, val_split: float) -> list[int]:
    """How many examples of each class the validation split holds: int(total x val_split) in
    all, as the plan counts them, shared by largest remainder (the first class first on a
    tie), none taking a class's last example."""
    quotas = np.asarray(counts, dtype=np.float64) * val_split
    held = [int(q) for q in quotas]
    left = int(sum(counts) * val_split) - sum(held)
    for i in sorted(range(len(held)), key=lambda i: (held[i] - quotas[i], i)):
        if left <= 0:
            break
        if held[i] + 1 < counts[i]:
            held[i] += 1
            left -= 1
    return [min(n, int(c) - 1) for n, c in zip(held, counts, strict=True)]


def load_split(examples: Examples, val_split: float, seed: int, batch_size: int,
               rule: SplitRule = SplitRule.by_class
               ) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """(train, validation) datasets of (cleaned text, int label) batches: one pass each, in
    a fixed order (what the vectorizer adapts to; training_stream shuffles)."""
    return split_datasets(examples, *split_indices(examples.labels, val_split, seed, rule,
                                                   examples.texts), batch_size)


def split_datasets(examples: Examples, train_idx: np.ndarray, val_idx: np.ndarray,
                   batch_size: int) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """load_split's datasets for a split already made (split_indices)."""
    train = _clean(_dataset(examples, train_idx).batch(batch_size))
    if not len(val_idx):
        return train, None
    return train, _clean(_dataset(examples, val_idx).batch(batch_size))


# Pass p of the training stream is shuffled with the seed seed x this + p.
PASS_SEED_STRIDE = 1_000_003


def training_stream(examples: Examples, val_split: float, seed: int, batch_size: int,
                    rule: SplitRule = SplitRule.by_class) -> tf.data.Dataset:
    """The endless training stream of (cleaned text, int label) batches: pass p holds the
    training examples in an order that depends on `seed` and p only, not on how often the
    data was read before (a shuffle reshuffled on each reading gave a resumed run, or a second
    fit call, other orders than an uninterrupted run's)."""
    import tensorflow as tf

    train_idx, _ = split_indices(examples.labels, val_split, seed, rule, examples.texts)
    one_pass = _dataset(examples, train_idx)

    def shuffled(p: tf.Tensor) -> tf.data.Dataset:
        return one_pass.shuffle(len(train_idx), seed=seed % 2**32 * PASS_SEED_STRIDE + p,
                                reshuffle_each_iteration=False).batch(batch_size)

    return _clean(tf.data.Dataset.range(2**62).flat_map(shuffled))


def _dataset(examples: Examples, indices: np.ndarray) -> tf.data.Dataset:
    import tensorflow as tf

    texts = tf.constant([examples.texts[i] for i in indices], dtype=tf.string)
    return tf.data.Dataset.from_tensor_slices((texts, examples.labels[indices]))


def _clean(data: tf.data.Dataset) -> tf.data.Dataset:
    return data.map(lambda text, label: (clean_text(text), label)).prefetch(2)
