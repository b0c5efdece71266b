"""Loading labelled review folders (the aclImdb layout), checking them, and splitting them.

A data folder holds one subfolder per class with one `.txt` file per example. Given a folder
that holds `train/` and `test/`, training uses `train/` and the final evaluation `test/`.
aclImdb's unlabelled `unsup/` folder is never a class.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from textgen.errors import TextgenError

if TYPE_CHECKING:
    import tensorflow as tf

IGNORED_FOLDERS = {"unsup"}
BUNDLED_REVIEWS = "reviews"


def bundled_reviews_path() -> Path:
    """The small review set shipped with textgen (train/ and test/, neg/ and pos/)."""
    return Path(str(resources.files("textgen.corpora").joinpath(BUNDLED_REVIEWS)))


@dataclass(frozen=True)
class ReviewFolders:
    """Where the training examples are and, when the folder has one, the test set."""

    train: Path
    test: Path | None
    classes: tuple[str, ...]
    counts: dict[str, int]


def _class_folders(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir()
        if p.is_dir() and p.name not in IGNORED_FOLDERS and not p.name.startswith(".")
    )


def check_class_folder(folder: Path, classes: list[str] | tuple[str, ...] | None = None
                       ) -> tuple[tuple[str, ...], dict[str, int]]:
    """The classes in `folder` and their example counts; one-line errors for every problem."""
    if not folder.exists():
        raise TextgenError(f"{folder}: no such folder; give a folder with one subfolder per class")
    if not folder.is_dir():
        raise TextgenError(f"{folder}: not a folder; give a folder with one subfolder per class")
    names = list(classes) if classes else _class_folders(folder)
    if len(names) < 2:
        found = ", ".join(names) or "none"
        raise TextgenError(
            f"{folder}: needs at least two class subfolders (found: {found}); put each class's "
            ".txt files in its own subfolder, e.g. neg/ and pos/"
        )
    counts = {}
    for name in names:
        class_dir = folder / name
        if not class_dir.is_dir():
            raise TextgenError(f"{class_dir}: class folder not found (from --classes)")
        listed = [p for p in class_dir.iterdir() if p.suffix == ".txt"]
        for path in listed:  # TensorFlow lists these too: each must be a readable file
            if path.is_symlink() and not path.exists():
                raise TextgenError(f"{path}: broken symbolic link; remove it or fix its target")
        files = [p for p in listed if p.is_file()]
        if not files:
            raise TextgenError(f"{class_dir}: class {name!r} has no .txt files")
        empty = 0
        for path in files:
            try:
                empty += not path.read_bytes().decode("utf-8").strip()
            except OSError as exc:
                raise TextgenError(f"{path}: cannot be read ({exc.strerror})") from exc
            except UnicodeDecodeError as exc:
                raise TextgenError(f"{path}: not valid UTF-8 text (byte offset {exc.start}); "
                                   "convert or remove it") from exc
        if empty == len(files):
            raise TextgenError(f"{class_dir}: all {len(files)} files of class {name!r} are "
                               "empty; put the class's texts in them")
        counts[name] = len(files)
    return tuple(names), counts


def locate(folder: str | Path | None, classes: list[str] | None = None) -> ReviewFolders:
    """Resolve a data folder: class subfolders directly, or a root holding train/ and test/."""
    root = Path(folder) if folder is not None else bundled_reviews_path()
    if (root / "train").is_dir():
        names, counts = check_class_folder(root / "train", classes)
        test = root / "test" if (root / "test").is_dir() else None
        if test is not None:
            check_class_folder(test, names)
        return ReviewFolders(root / "train", test, names, counts)
    names, counts = check_class_folder(root, classes)
    return ReviewFolders(root, None, names, counts)


def parse_classes(option: str | None) -> list[str] | None:
    if option is None:
        return None
    names = [c.strip() for c in option.split(",") if c.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise TextgenError(f"--classes needs two or more distinct names, e.g. neg,pos; "
                           f"got {option!r}")
    return names


def clean_text(texts: tf.Tensor) -> tf.Tensor:
    """HTML line breaks (aclImdb's `<br />`) become spaces."""
    import tensorflow as tf

    return tf.strings.regex_replace(texts, r"<br\s*/?>", " ")


def load_split(folder: Path, classes: tuple[str, ...], val_split: float, seed: int,
               batch_size: int = 32) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """(train, validation) datasets of (cleaned text, int label); validation seeded and held out."""
    import keras

    common = dict(labels="inferred", label_mode="int", class_names=list(classes),
                  batch_size=batch_size, seed=seed, shuffle=True, verbose=False)
    # Keras prints "Using N files for training." on stdout even with verbose=False.
    with contextlib.redirect_stdout(io.StringIO()):
        if val_split > 0:
            train, val = keras.utils.text_dataset_from_directory(
                folder, validation_split=val_split, subset="both", **common)
            return _clean(train), _clean(val)
        return _clean(keras.utils.text_dataset_from_directory(folder, **common)), None


def load_all(folder: Path, classes: tuple[str, ...], batch_size: int = 256) -> tf.data.Dataset:
    """Every example of a folder, in a fixed order (for evaluation)."""
    import keras

    with contextlib.redirect_stdout(io.StringIO()):
        data = keras.utils.text_dataset_from_directory(
            folder, labels="inferred", label_mode="int", class_names=list(classes),
            batch_size=batch_size, shuffle=False, verbose=False)
    return _clean(data)


def _clean(data: tf.data.Dataset) -> tf.data.Dataset:

    return data.map(lambda text, label: (clean_text(text), label)).prefetch(2)
