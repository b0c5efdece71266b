"""Reading texts as users have them: any encoding, undecodable bytes, folders of files.

Both modes read through here, so a file is decoded, checked and refused the same way
everywhere: `Decoding` (--encoding, --decode-errors), `read_text` (one file), `folder_files`
(the examples of a class folder), `collect_documents` (generate mode's files and folders).
TensorFlow-free: bad input is reported before the slow import.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from textgen.errors import FIELD, FieldError, TextgenError, choice

# Peak memory while reading a corpus, per byte of file: the bytes, the decoded str (up to 4
# bytes a character) and the id array (benchmarks/memory.py: ~1.5 MB of RSS per MB of ASCII).
MEMORY_PER_BYTE = 6
BINARY_PROBE_BYTES = 8192  # a NUL byte in a file's first 8 kB marks it binary (as git and grep do)
DEFAULT_DOC_SEPARATOR = "\n\n"  # a blank line between documents


class DecodeErrors(StrEnum):
    """What to do with bytes that are not valid in the encoding (Python's codec error modes)."""

    strict = "strict"  # refuse the file, naming the byte offset
    replace = "replace"  # U+FFFD for each bad byte
    ignore = "ignore"  # drop the bad bytes


@dataclass(frozen=True)
class Decoding:
    """How bytes become text: `encoding` (any codec Python knows) and `errors`."""

    encoding: str = "utf-8"
    errors: DecodeErrors = DecodeErrors.strict

    def __post_init__(self) -> None:
        object.__setattr__(self, "errors", choice(DecodeErrors, self.errors, "decode_errors"))
        if not isinstance(self.encoding, str):
            raise FieldError("encoding", f"must be an encoding's name (a str such as 'utf-8'), "
                                         f"got {self.encoding!r}")
        try:
            info = codecs.lookup(self.encoding)
        except LookupError:
            raise FieldError("encoding", f"{self.encoding!r} is not an encoding Python knows; "
                                         "use e.g. utf-8, latin-1 or cp1252") from None
        if not _is_text_encoding(info):
            raise FieldError("encoding", f"{self.encoding!r} is not a text encoding; use e.g. "
                                         "utf-8, latin-1 or cp1252")

    @classmethod
    def from_dict(cls, data: dict | None) -> Decoding:
        data = data or {}
        return cls(data.get("encoding", cls.encoding), data.get("errors", cls.errors))

    def to_dict(self) -> dict[str, str]:
        return {"encoding": self.encoding, "errors": str(self.errors)}

    def overridden(self, encoding: str | None, errors: str | None) -> Decoding:
        """These settings with the encoding and decode errors given instead (None: kept), as
        options given win over a run's own."""
        return Decoding(encoding or self.encoding, errors or self.errors)

    @property
    def shown_encoding(self) -> str:
        """The encoding as messages name it: UTF-8, else as given (latin-1, cp1252)."""
        return "UTF-8" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding

    def decode(self, data: bytes, path: str | Path) -> str:
        """The text of `data`, without a byte-order mark; a one-line error naming the file and
        the offset of the first bad byte under `strict`."""
        name = codecs.lookup(self.encoding).name
        if name in ("utf-8", "utf-8-sig") and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]  # a byte-order mark is not part of the text
        try:
            text = data.decode(self.encoding, str(self.errors))
        except UnicodeDecodeError as exc:
            readable = self.shown_encoding
            bad = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
            marked = _byte_order_mark(data)
            if marked and codecs.lookup(marked).name == name:
                marked = None  # already read as what the mark names: the bytes are wrong
            if marked:
                advice = f"it starts with a {marked} byte-order mark: use {{marked}}"
            else:
                # UTF-8 read as UTF-16 or UTF-32 fails on a stray byte as often as it reads
                # as other characters; a NUL byte means a program or an image, which another
                # single-byte encoding would only read as garbage.
                self._check_misread(data, data[:PLAUSIBILITY_PROBE_BYTES].decode(
                    self.encoding, "replace"), path)
                if not name.startswith(("utf-16", "utf-32")) and is_binary(data):
                    raise TextgenError(
                        f"{path}: a binary file (a NUL byte in its first "
                        f"{BINARY_PROBE_BYTES:,} bytes, and {bad} is not valid {readable}), "
                        "not text; give a text file") from exc
                advice = ("use {replace} to read it anyway, or {encoding} with its real "
                          f"encoding (e.g. {_western_encoding(data)})")
                if _is_utf8(data):  # cp1252 refusing a UTF-8 text: latin-1 would misread it
                    advice = "it is valid UTF-8 text: read it as UTF-8 ({utf8})"
            raise TextgenError(f"{path}: not valid {readable} text ({bad}); {advice}", {
                "marked": ("encoding", marked), "encoding": ("encoding", FIELD),
                "replace": ("decode_errors", "replace"), "utf8": ("encoding", "utf-8")}
            ) from exc
        self._check_misread(data, text, path)
        # a byte-order mark is not part of the text, whatever the encoding (utf-16-le keeps it)
        return text.removeprefix("\ufeff")

    def _check_misread(self, data: bytes, text: str, path: str | Path) -> None:
        """Refuse UTF-8 bytes that this (multi-byte) encoding turns into other characters."""
        if codecs.lookup(self.encoding).name not in ("utf-8", "utf-8-sig") and _utf8_misread(
                data, text):
            raise TextgenError(
                f"{path}: looks like UTF-8 text read as {self.encoding} (it would start "
                f"{text[:12]!r}); read it as UTF-8 ({{utf8}}), or give the text's real "
                "encoding", {"utf8": ("encoding", "utf-8")})


# Bytes Windows' cp1252 reads as punctuation (curly quotes, dashes, €) and latin-1 as
# invisible control characters.
WINDOWS_PUNCTUATION = re.compile(rb"[\x80-\x9f]")


def _western_encoding(data: bytes) -> str:
    """The single-byte encoding to suggest for text that is not UTF-8: cp1252 where it holds
    the bytes only Windows gives meaning to (and reads them all), else latin-1."""
    if WINDOWS_PUNCTUATION.search(data):
        try:
            data.decode("cp1252")
        except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
            return "latin-1"
        return "cp1252"
    return "latin-1"


class MemberGivenTwice(Exception):
    """A JSON object names a member twice (`name`)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: an object's members, a name given twice refused with
    MemberGivenTwice (which one counts RFC 8259 leaves open; a writer that gives both means
    one of them: a table row's two labels, a request's two lengths)."""
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise MemberGivenTwice(name)
        members[name] = value
    return members


PLAUSIBILITY_PROBE_BYTES = 4096
# The byte-order marks that name an encoding (UTF-32's first: its LE mark starts with UTF-16's).
BYTE_ORDER_MARKS = {"utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
                    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)}


def _byte_order_mark(data: bytes) -> str | None:
    """The encoding a UTF-16 or UTF-32 byte-order mark at the start of `data` names."""
    for encoding, marks in BYTE_ORDER_MARKS.items():
        if data.startswith(marks):
            return encoding
    return None


def _plain_share(text: str) -> float:
    """The share of printable ASCII and whitespace in `text` (most text in most scripts has
    spaces, digits and punctuation; a misread has almost none)."""
    return sum(c.isascii() and (c.isprintable() or c.isspace()) for c in text) / max(len(text), 1)


def _utf8_misread(data: bytes, text: str) -> bool:
    """Whether the start of `data` is plainly UTF-8 text (mostly ASCII) that the chosen
    encoding turned into mostly other characters, as UTF-16 does with UTF-8 bytes."""
    head = data[:PLAUSIBILITY_PROBE_BYTES]
    try:
        as_utf8 = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return _plain_share(as_utf8) > 0.9 and _plain_share(text[:len(as_utf8)]) < 0.5


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_text_encoding(info: codecs.CodecInfo) -> bool:
    return getattr(info, "_is_text_encoding", True)  # False for base64_codec, zlib_codec...


DEFAULT_DECODING = Decoding()


def check_readable_size(path: Path, size: int) -> None:
    """Refuse, before reading a byte, text that would not fit in the memory available."""
    available = available_memory()
    if available is not None and size * MEMORY_PER_BYTE > available:
        raise TextgenError(
            f"{path}: {size / 1e6:,.0f} MB of text needs about "
            f"{size * MEMORY_PER_BYTE / 1e6:,.0f} MB of memory to read and encode, and this "
            f"machine has {available / 1e6:,.0f} MB available; train on a part of it")


def gigabytes(size: float) -> str:
    """Bytes in GB as messages write them: one decimal, none from 1,000 GB (a float's last
    digits, as in 800,000,000,000,000.1, say nothing)."""
    value = size / 1e9
    return f"{value:,.1f} GB" if value < 999.95 else f"{value:,.0f} GB"


def available_memory() -> int | None:
    """Bytes of memory available now (MemAvailable in /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_bytes(path: str | Path, what: str = "a text file") -> bytes:
    """The bytes of a regular file; one-line errors for a missing path, a folder, a device or
    pipe, or a file too big for the memory available."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise TextgenError(f"{path}: a symbolic link to nothing (broken, or a loop); give the "
                           f"path of {what}")
    if not path.exists():
        if str(path) == "-":  # the Unix habit for standard input
            raise TextgenError(f"-: text is read from files, not standard input; save it to a "
                               f"file and give the path of {what}")
        raise TextgenError(f"{path}: no such file; give the path of {what}")
    if path.is_dir():
        raise TextgenError(f"{path}: is a directory; give the path of {what}")
    if not path.is_file():  # /dev/zero, a pipe, a socket: no end, or no size to check
        raise TextgenError(f"{path}: not a regular file; give the path of {what}")
    check_readable_size(path, path.stat().st_size)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise cannot_read(path, exc) from exc


def cannot_read(path: Path, exc: OSError, in_folder: bool = False) -> TextgenError:
    """A file or folder the OS would not read, with what to do where it is a permission."""
    advice = ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        advice = "; give yourself read access (chmod)" + (
            ", or move it out of the folder" if in_folder else "")
    return TextgenError(f"{path}: cannot be read ({exc.strerror}){advice}")


def read_text(path: str | Path, decoding: Decoding = DEFAULT_DECODING) -> str:
    """A text file's text, line endings normalised to `\\n`; a one-line error for every file
    that cannot be read as text (see read_bytes and Decoding.decode) and for an empty one."""
    data = read_bytes(path)
    check_not_a_document(data, Path(path), "plain text (.txt)")
    text = normalise_newlines(decoding.decode(data, path))
    # a text that holds some NULs, named, is read as it is
    check_not_unmarked_utf16(data, path, decoding)
    check_not_all_dropped(data, text, path, decoding)
    if not text:
        raise TextgenError(f"{path}: the file is empty; give a text with some characters")
    return text


def check_not_all_dropped(data: bytes, text: str, path: str | Path,
                          decoding: Decoding) -> None:
    """A file whose bytes decode to no text because --decode-errors ignore dropped them is
    said as such, not as an empty file (a byte-order mark alone is an empty file)."""
    if text or not data or decoding.errors != DecodeErrors.ignore:
        return
    try:
        data.decode(decoding.encoding)
    except UnicodeDecodeError:
        raise TextgenError(f"{path}: none of its {len(data):,} bytes is {decoding.encoding} "
                           "text (decode errors ignored dropped them all); give its real "
                           "{encoding}", {"encoding": ("encoding", FIELD)}) from None


def lone_surrogate(value: Any) -> str | None:
    """The first half of a surrogate pair standing alone in a JSON value (its escapes can
    write `"\\ud800"`): no character, and no UTF-8 can write it; None if there is none."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.object[exc.start]
    return None


def argument_text(value: str, option: str) -> str:
    """A command-line argument as text: Python hands bytes that are not valid in the
    terminal's encoding over as lone surrogates, which would pass for unknown characters."""
    encoding = sys.getfilesystemencoding()
    raw = os.fsencode(value)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        shown = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
        if shown != "UTF-8":  # an ASCII (C) locale in a terminal that sends UTF-8, most often
            with contextlib.suppress(UnicodeDecodeError):
                return raw.decode("utf-8")
        raise TextgenError(f"{option} is not valid {shown} (byte 0x{exc.object[exc.start]:02x} "
                           f"at offset {exc.start}); give {shown} text") from None


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# File formats users save text in by mistake, by their first bytes: never text, whatever the
# encoding (decoded as latin-1 they would train a model on compressed bytes).
NOT_TEXT_FORMATS = {b"PK\x03\x04": "a ZIP archive (an Excel .xlsx, a Word .docx or a .zip?)",
                    b"\xd0\xcf\x11\xe0": "an old Office file (an Excel .xls or a Word .doc?)",
                    b"%PDF-": "a PDF", b"\x1f\x8b": "a gzip archive",
                    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image"}


def document_kind(data: bytes) -> str | None:
    """What a file starting with these bytes is, where it is a known format that is not
    text (a spreadsheet, a PDF, an archive, an image); None otherwise."""
    return next((kind for magic, kind in NOT_TEXT_FORMATS.items() if data.startswith(magic)),
                None)


def check_not_a_document(data: bytes, path: Path, save_as: str) -> None:
    """A one-line error for a spreadsheet, a PDF, an archive or an image given as text."""
    kind = document_kind(data)
    if kind is not None:
        raise TextgenError(f"{path}: {kind}, not text; save it as {save_as} and give that")


def mark_of_another_encoding(data: bytes, encoding: str) -> str | None:
    """The encoding a UTF-16 or UTF-32 byte-order mark at the start of `data` names, where
    it is not `encoding` (such text read as `encoding` looks binary: it is full of NULs)."""
    marked = _byte_order_mark(data)
    if marked and codecs.lookup(marked).name != codecs.lookup(encoding).name:
        return marked
    return None


def check_not_binary(data: bytes, path: str | Path, decoding: Decoding, refusal: str) -> None:
    """A one-line error for a binary file (is_binary): `refusal` says what it is not and
    what to do; a text another encoding's byte-order mark names is told to use it instead."""
    if not is_binary(data, decoding.encoding):
        return
    if marked := mark_of_another_encoding(data, decoding.encoding):
        raise TextgenError(f"{path}: not {decoding.shown_encoding} text; it starts with a "
                           f"{marked} byte-order mark: use {{marked}}",
                           {"marked": ("encoding", marked)})
    check_not_unmarked_utf16(data, path, decoding)
    raise TextgenError(f"{path}: a binary file (a NUL byte in its first "
                       f"{BINARY_PROBE_BYTES:,} bytes), {refusal}")


def check_not_unmarked_utf16(data: bytes, path: str | Path, decoding: Decoding) -> None:
    """A one-line error, naming the encoding to use, for UTF-16 text without a byte-order
    mark read as UTF-8: NUL bytes are valid UTF-8, so it decodes, to every other character
    a NUL."""
    if codecs.lookup(decoding.encoding).name == "utf-8" and (unmarked := _unmarked_utf16(data)):
        raise TextgenError(f"{path}: not UTF-8 text; every other byte is a NUL, as in "
                           f"{unmarked} text: use {{marked}}", {"marked": ("encoding", unmarked)})


UNMARKED_UTF16_SHARE = 0.9  # of a byte order's high bytes that are NUL: mostly ASCII text


def _unmarked_utf16(data: bytes) -> str | None:
    """utf-16-le or utf-16-be where the first bytes read as text in that encoding without a
    byte-order mark: nearly every second byte NUL (ASCII and Latin text), the others not."""
    head = data[:BINARY_PROBE_BYTES]
    head = head[:len(head) - len(head) % 2]
    if len(head) < 4:
        return None
    for encoding, high, low in (("utf-16-le", head[1::2], head[0::2]),
                                ("utf-16-be", head[0::2], head[1::2])):
        if (high.count(0) >= UNMARKED_UTF16_SHARE * len(high)
                and low.count(0) <= (1 - UNMARKED_UTF16_SHARE) * len(low)):
            return encoding
    return None


def is_binary(data: bytes, encoding: str = "utf-8") -> bool:
    """A NUL in the first bytes' text: a NUL byte, or in UTF-16 and UTF-32 (whose text is
    full of zero bytes) a NUL character."""
    head = data[:BINARY_PROBE_BYTES]
    name = codecs.lookup(encoding).name
    if name.startswith(("utf-16", "utf-32")):
        try:
            head = codecs.getincrementaldecoder(name)("replace").decode(head).encode("utf-8")
        except UnicodeError:  # no byte-order mark: reading the file will say so
            return False
    return b"\0" in head


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def folder_files(folder: Path, root: Path) -> list[Path]:
    """A class folder's examples: its regular files, whatever their extension, sorted by name.

    Hidden files and sub-folders are skipped. A symbolic link counts when it points to a file
    inside `root` (the data folder); a broken link, or a file that a link (to it, or to its
    class folder) leads to outside, is an error, so no data folder can make textgen read a
    file elsewhere.
    """
    files = []
    resolved_root = root.resolve()
    if not folder.resolve().is_relative_to(resolved_root):  # the class folder is a link
        raise TextgenError(f"{folder}: a symbolic link leads outside the data folder {root}; "
                           "copy the files in or remove the link")
    for path in sorted(folder.iterdir()):
        if _hidden(path):
            continue
        if path.is_symlink() and not path.exists():
            raise TextgenError(f"{path}: broken symbolic link; remove it or fix its target")
        if path.is_symlink() and not path.resolve().is_relative_to(resolved_root):
            raise TextgenError(f"{path}: a symbolic link leads outside the data folder {root}; "
                               "copy the files in or remove the link")
        if path.is_file():
            files.append(path)
    return files


@dataclass
class Documents:
    """Generate mode's input: the files to read, in order, and what was skipped."""

    files: list[Path]
    skipped_hidden: int = 0
    skipped_binary: int = 0
    skipped_by_glob: int = 0
    skipped_links: int = 0  # broken, or leading outside the folder: never read
    skipped_repeats: int = 0  # a file met again (named twice, inside a folder named, linked)
    skipped_folder_links: int = 0  # links to folders: not followed (a loop, or files twice)
    skipped_runs: int = 0  # textgen's own run and export folders (a checkpoints/ inside)
    # files another encoding's byte-order mark names (UTF-16 read as UTF-8 looks binary)
    skipped_marked: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0
    sources: list[str] = field(default_factory=list)

    def skipped(self) -> dict[str, int]:
        marked = {f"marked {encoding}": n for encoding, n in self.skipped_marked.items()}
        counts = {"hidden": self.skipped_hidden, "binary": self.skipped_binary, **marked,
                  "not matching the glob": self.skipped_by_glob,
                  "link(s) broken or leading outside the folder": self.skipped_links,
                  "link(s) to folders": self.skipped_folder_links,
                  "textgen run or export folder(s)": self.skipped_runs,
                  "the same file again": self.skipped_repeats}
        return {k: v for k, v in counts.items() if v}


def collect_documents(paths: list[Path], glob: str | None = None,
                      encoding: str = "utf-8") -> Documents:
    """The files named, and those found in the folders named (recursively, in sorted order).

    In folders, hidden files and folders are skipped, binary files (a NUL byte early on) are
    skipped, and `glob` (matched against the file name, e.g. `*.py`) filters; each skip is
    counted. A file named directly is always read. Symbolic links to files inside a folder
    count when they point inside it; others (broken, or leading out of it) and links to
    folders are skipped and counted, and so are textgen's own run and export folders (a
    checkpoints/ inside the folder: read, a run's files would change its text as it trains).
    """
    if not paths:
        raise TextgenError("no text given; give one or more text files or folders")
    docs = Documents(files=[])
    for path in paths:
        path = Path(path)
        docs.sources.append(str(path))
        if path.is_dir():
            _collect_folder(path, glob, docs, encoding)
        else:
            docs.files.append(path)  # checked (exists, a regular file) when it is read
            if path.is_file():
                docs.total_bytes += path.stat().st_size
    _drop_repeats(docs)
    if not docs.files:
        skipped = ", ".join(f"{n} {why}" for why, n in docs.skipped().items()) or "none"
        marked = next(iter(docs.skipped_marked), None)  # the first encoding the marks name
        advice = "give a folder holding text files"
        if glob is not None:  # the glob may be what left none
            advice += ", fix {glob}"
        if marked:
            advice += f", or read the files marked {marked} with {{encoding}}"
        raise TextgenError(f"{', '.join(docs.sources)}: no text files found (skipped: "
                           f"{skipped}); {advice}",
                           {"glob": ("glob", FIELD), "encoding": ("encoding", marked)})
    check_readable_size(Path(docs.sources[0]), docs.total_bytes)
    return docs


def _textgen_folder(folder: Path, names: list[str]) -> bool:
    """Whether a folder is textgen's own: an export (a SavedModel's graph), or a run (its
    run.json names a mode and a format: a run.json of another program's is text)."""
    if "saved_model.pb" in names:
        return True
    if "run.json" not in names:
        return False
    try:
        with open(folder / "run.json", "rb") as f:
            meta = json.loads(f.read(RUN_JSON_PROBE_BYTES))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "mode" in meta and "format_version" in meta


RUN_JSON_PROBE_BYTES = 1 << 20  # a run's run.json is a few kB; a larger one is no run's


def _drop_repeats(docs: Documents) -> None:
    """Each file read once, where it first comes: read twice, its end would be trained on
    and held out for validation at once."""
    seen, kept = set(), []
    for path in docs.files:
        key: object = path  # checked when it is read
        if path.exists():  # the file itself, however reached: a symbolic or a hard link
            info = path.stat()
            # a file system without inode numbers (0) is told apart by the path it leads to
            key = (info.st_dev, info.st_ino) if info.st_ino else path.resolve()
        if key in seen:
            docs.skipped_repeats += 1
            if path.is_file():
                docs.total_bytes -= path.stat().st_size
            continue
        seen.add(key)
        kept.append(path)
    docs.files = kept


def _collect_folder(root: Path, glob: str | None, docs: Documents, encoding: str) -> None:
    found = []

    def unreadable(exc: OSError) -> None:  # as an unreadable file is: its texts would be lost
        folder = Path(exc.filename)
        raise cannot_read(folder, exc, in_folder=folder != root) from exc

    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        here = Path(folder)
        hidden = [d for d in subfolders if d.startswith(".")]
        docs.skipped_hidden += len(hidden)
        linked = [d for d in subfolders if not d.startswith(".") and (here / d).is_symlink()]
        docs.skipped_folder_links += len(linked)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in linked)
        if here != root and _textgen_folder(here, names):
            docs.skipped_runs += 1
            subfolders[:] = []
            continue
        for name in sorted(names):
            path = here / name
            if name.startswith("."):
                docs.skipped_hidden += 1
                continue
            if path.is_symlink() and (not path.exists() or not _inside(path, root)):
                docs.skipped_links += 1
                continue
            if not path.is_file():
                continue
            if glob is not None and not fnmatch.fnmatch(name, glob):
                docs.skipped_by_glob += 1
                continue
            try:
                with open(path, "rb") as f:
                    head = f.read(BINARY_PROBE_BYTES)
            except OSError as exc:
                raise cannot_read(path, exc, in_folder=True) from exc
            if is_binary(head, encoding) or document_kind(head):  # a PDF may hold no NUL
                if marked := mark_of_another_encoding(head, encoding):
                    docs.skipped_marked[marked] = docs.skipped_marked.get(marked, 0) + 1
                else:
                    docs.skipped_binary += 1
                continue
            found.append(path)
            docs.total_bytes += path.stat().st_size
    docs.files += sorted(found, key=lambda p: p.relative_to(root).parts)  # as `find | sort`


def read_documents(docs: Documents, decoding: Decoding = DEFAULT_DECODING,
                   separator: str = DEFAULT_DOC_SEPARATOR) -> str:
    """The documents' texts joined into one. A single document is read as it is; several
    lose their trailing line breaks and are joined with `separator`, ending with a newline."""
    if len(docs.files) == 1:
        return read_text(docs.files[0], decoding)
    texts = []
    for path in docs.files:
        data = read_bytes(path)
        check_not_a_document(data, path, "plain text (.txt)")
        try:
            text = normalise_newlines(decoding.decode(data, path)).rstrip("\n")
        except TextgenError as exc:
            # named, the user means it to be read; a text misread is said as such
            if str(path) in docs.sources or not isinstance(exc.__cause__, UnicodeDecodeError):
                raise
            # found in a folder: a file of another kind (one with no NUL early) is likelier
            raise TextgenError(f"{exc.message}; if it is no text, move it out of the folder "
                               "or choose the files with {glob}",
                               {**exc.settings, "glob": ("glob", FIELD)}) from exc
        if text:
            texts.append(text)
    if not texts:
        ignored = (f", or nothing {decoding.encoding} in them (decode errors ignored)"
                   if decoding.errors == DecodeErrors.ignore else "")
        raise TextgenError(f"{', '.join(docs.sources)}: all {len(docs.files)} files are empty "
                           f"or hold only line breaks{ignored}; give texts with some characters")
    return separator.join(texts) + "\n"


def unescape(option: str) -> str:
    r"""`\n`, `\t` and `\\` typed on a command line as the characters they stand for."""
    out, chars = [], iter(option)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "t": "\t", "\\": "\\", "r": "\r"}.get(nxt, "\\" + nxt))
        else:
            out.append(c)
    return "".join(out)
