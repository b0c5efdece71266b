"""Labelled texts in one table: CSV, TSV or JSON Lines.

CSV and TSV need a header row naming the columns; fields follow the csv module's dialect
(quoted fields may hold commas, tabs, newlines and doubled quotes). JSON Lines holds one JSON
object per line. A UTF-8 byte-order mark and CRLF line ends are read as well. Every problem is
one line naming the file and the line: `reviews.csv:12: ...`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgen.errors import FIELD, FieldError, TextgenError, check_field, named_fields
from textgen.reading import (
    Decoding,
    MemberGivenTwice,
    check_not_a_document,
    check_not_binary,
    lone_surrogate,
    read_bytes,
    unique_members,
)

DELIMITERS = {".csv": ",", ".tsv": "\t"}
TABLE_SUFFIXES = (*DELIMITERS, ".jsonl")
TEXT_COLUMN, LABEL_COLUMN = "text", "label"
JOIN_TEXT_COLUMNS = "\n"  # between the values of several text columns

csv.field_size_limit(1 << 30)  # the default 128 kB would refuse long reviews


def is_table(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def check_columns_apply(data: Path | None, text_column: object, label_column: object,
                        columns: object = None) -> None:
    """Column names given for data that is not a table (a folder; None, the bundled reviews)
    are refused: nothing would read them. (`columns`: the Python API's Columns or names.)"""
    if data is not None and is_table(data):
        return
    if text_column is not None or label_column is not None:
        raise TextgenError("{text_column} and {label_column} name a table's columns, and the "
                           "data is a folder of class subfolders; leave them out",
                           named_fields("text_column", "label_column"))
    if columns is not None:
        raise FieldError("columns", "names a table's columns, and the data is a folder of class "
                         "subfolders; leave it out")


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text (several are joined) and the label."""

    text: tuple[str, ...] = (TEXT_COLUMN,)
    label: str = LABEL_COLUMN

    def __post_init__(self) -> None:
        if self.label in self.text:
            # The model would read each row's answer in its text.
            raise FieldError("label_column", f"{self.label!r} is also a {{text_column}}; the "
                             "label must be a column of its own",
                             fixes={"text_column": ("text_column", FIELD)})

    @classmethod
    def parse(cls, text: str | list[str] | tuple[str, ...] | None = None,
              label: str | None = None, saved: dict | None = None) -> Columns:
        """From the options (`title,description` names two text columns); what they leave out
        comes from `saved` (a run's), then from the defaults."""
        saved = saved or {}
        if text is None:
            text = saved.get("text", cls.text)
        check_field(isinstance(text, str) or isinstance(text, list | tuple) and all(
            isinstance(t, str) for t in text), "text_column",
            f"must be a column's name or a list of them, got {text!r}")
        check_field(label is None or isinstance(label, str), "label_column",
                    f"must be a column's name, got {label!r}")
        names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
        if not names or not all(names):
            raise FieldError("text_column", f"needs one or more column names, e.g. text or "
                             f"title,description; got {text!r}")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:  # each row's text would hold the column twice
            raise FieldError("text_column", f"names {twice[0]!r} twice; name each column once")
        if label is None:
            label = saved.get("label", cls.label)
        if not label.strip():
            raise FieldError("label_column", "needs a column name, e.g. label; got ''")
        return cls(tuple(names), label.strip())

    def to_dict(self) -> dict[str, Any]:
        return {"text": list(self.text), "label": self.label}


DEFAULT_COLUMNS = Columns()


@dataclass
class TableTexts:
    """A table's texts, their labels (None when not asked for) and, per row, its other columns
    and its line in the file."""

    texts: list[str]
    labels: list[str] | None
    others: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def read_table(path: Path, decoding: Decoding, columns: Columns = DEFAULT_COLUMNS,
               labels: bool = True
               ) -> TableTexts:
    """The texts (and with `labels`, the labels) of a CSV, TSV or JSON Lines file."""
    data = read_bytes(path, "a .csv, .tsv or .jsonl table")
    check_not_a_document(data, path, "CSV (comma-separated, UTF-8)")
    check_not_binary(data, path, decoding,
                     "not a table; save it as CSV (comma-separated, UTF-8) and give that")
    text = decoding.decode(data, path)
    wanted = (*columns.text, columns.label) if labels else columns.text
    if path.suffix.lower() == ".jsonl":
        rows, header_line = _jsonl_rows(path, text), None
    else:
        rows, header_line, header = _csv_rows(path, text)
        twice = [name for name in wanted if header.count(name) > 1]
        if twice:  # which of them would be read is anybody's guess
            raise TextgenError(f"{path}:{header_line}: the header names {_names(twice)} more "
                               "than once; give each column its own name")
    out = TableTexts([], [] if labels else None)
    for line, row in rows:
        missing = [c for c in wanted if c not in row]
        if missing:
            # A CSV's columns are its header's, so point there; a JSON line names its own.
            where = (f"{path}:{line}:" if header_line is None
                     else f"{path}:{header_line}: the header has")
            options = " and ".join(option for option, absent in (
                ("{text_column}", any(c in missing for c in columns.text)),
                ("{label_column}", columns.label in missing)) if absent)
            # a CSV without a header reads its first row as one
            found = {name.casefold() for name in row}
            headerless = ("; or, if that line is a row of data, add a header line above it "
                          f"naming the columns ({','.join([*columns.text, columns.label])})"
                          if header_line is not None and labels and not any(
                              name.casefold() in found for name in wanted) else "")
            raise TextgenError(f"{where} no {_names(missing)} column (found: "
                               f"{_names(list(row))}); name the columns with {options}"
                               f"{headerless}", _columns_fix(columns, list(row)))
        # the columns read; without labels (predict) every column, as --json writes them all
        half = lone_surrogate({c: row[c] for c in wanted} if labels else row)
        if half is not None:
            raise TextgenError(f"{path}:{line}: the escape {ascii(half)[1:-1]} is half of a "
                               "surrogate pair, not a character; write the character itself, "
                               "or both halves of its pair")
        parts = [_as_text(path, line, c, row[c]) for c in columns.text]
        joined = JOIN_TEXT_COLUMNS.join(p for p in parts if not is_blank(p))
        if is_blank(joined):
            raise TextgenError(f"{path}:{line}: empty text in {_names(list(columns.text))}; "
                               "fill it in or remove the row")
        out.texts.append(joined)
        if labels:
            label = label_name(_as_text(path, line, columns.label, row[columns.label]))
            if not label:
                raise TextgenError(f"{path}:{line}: empty label in '{columns.label}'; fill it "
                                   "in or remove the row")
            out.labels.append(label)
        out.others.append({k: _plain(v) for k, v in row.items() if k not in columns.text})
        out.lines.append(line)
    if not out.texts:
        raise TextgenError(f"{path}: the table has no rows; give a header row and one row per "
                           "text")
    return out


# A number written in ASCII digits, with or without a point (1.0, as pandas writes a float
# column) and an exponent (1e3, as JSON may write 1000): its sign, whole part, fraction and
# exponent.
DECIMAL_NUMBER = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
# An exponent past this is left as written: shifting the point would write that many zeros.
MAX_LABEL_EXPONENT = 100


def is_blank(text: str) -> bool:
    """A text with no words as the classifier reads it: only white space, a NUL reading as a
    space (standardize_review), and invisible format characters (a zero-width space, a
    byte-order mark: the text looks empty, and only the prior would answer it)."""
    return all(c.isspace() or c == "\0" or unicodedata.category(c) == "Cf" for c in text)


def label_name(cell: str) -> str:
    """A label as a class name: trimmed, a number written one way whatever way it was written
    (`1`, `01`, `+1`, `1.0`, `1e0` are one class, as equal JSON numbers are; `2.50` is `2.5`,
    `1e3` is `1000`). The digits are rewritten as text, never rounded (a label may be longer
    than any float)."""
    label = cell.strip()
    number = DECIMAL_NUMBER.fullmatch(label)
    written_exponent = (number[4] or "0") if number else "0"
    magnitude = written_exponent.lstrip("+-").lstrip("0") or "0"
    # its digits counted before int() reads them (it refuses past 4,300)
    if number is None or len(magnitude) > 3 or int(magnitude) > MAX_LABEL_EXPONENT:
        return label
    exponent = -int(magnitude) if written_exponent.startswith("-") else int(magnitude)
    digits = number[2] + (number[3] or "")
    point = len(number[2]) + exponent  # where the point falls in `digits`
    digits = "0" * max(0, 1 - point) + digits + "0" * max(0, point - len(digits))
    point = max(point, 1)
    whole, fraction = digits[:point].lstrip("0") or "0", digits[point:].rstrip("0")
    written = f"{whole}.{fraction}" if fraction else whole
    return written if number[1] != "-" or written == "0" else f"-{written}"


def _columns_fix(columns: Columns, found: list[str]) -> dict[str, tuple[str, Any]]:
    """The options naming a table's columns, each with the columns found where they differ
    from those wanted only in case (`Text,Label`: --text-column Text)."""
    by_case = {name.casefold(): name for name in found}
    fix = named_fields("text_column", "label_column")
    for option, wanted in (("text_column", columns.text), ("label_column", (columns.label,))):
        matched = [by_case.get(name.casefold()) for name in wanted]
        if None not in matched and matched != list(wanted):
            fix[option] = (option, ",".join(matched))
    return fix


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def _as_text(path: Path, line: int, column: str, value: Any) -> str:
    """A cell as text: strings and JSON numbers as written, booleans as JSON writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return json.dumps(value)
    got = "null" if value is None else type(value).__name__
    raise TextgenError(f"{path}:{line}: '{column}' must be a string or a number, got {got}")


class _JsonNumber(str):
    """A JSON number as its line writes it: a label is its digits (a float would round 20
    of them, and int() refuses past 4,300), as a CSV cell is."""


def _plain(value: Any) -> Any:
    """A JSON value with its numbers as Python numbers again (for output), where Python holds
    them; a number it cannot hold stays as written."""
    if isinstance(value, _JsonNumber):
        try:
            number = json.loads(value)
        except ValueError:  # over int()'s 4,300 digits
            return str(value)
        return number if not isinstance(number, float) or math.isfinite(number) else str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _csv_rows(path: Path, text: str
              ) -> tuple[list[tuple[int, dict[str, Any]]], int, list[str]]:
    """The rows (each with its first line), the header's line and the header."""
    delimiter = DELIMITERS[path.suffix.lower()]
    # strict: a stray quote is an error, not a field that swallows the rows after it.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows, header, header_line = [], None, 0
    keys: list[str] = []  # the header's names, each once (_unique)
    start = 1  # the line the next record starts on
    try:
        for record in reader:
            record_start, start = start, reader.line_num + 1
            if not record or record == [""]:
                continue  # a blank line
            if header is None:
                header, header_line = [name.strip() for name in record], record_start
                keys = _unique(header)
                if len(header) == 1 and delimiter == "," and "\t" in header[0]:
                    raise TextgenError(
                        f"{path}:{header_line}: the header {header[0]!r} is separated by "
                        "tabs, not ','; name the file .tsv (tab-separated) and give that")
                if len(header) == 1 and delimiter == "," and ";" in header[0]:
                    raise TextgenError(
                        f"{path}:{header_line}: the header {header[0]!r} is separated by "
                        "';', not ','; save the table comma-separated (or tab-separated, "
                        "as .tsv) and give that")
                continue
            if len(record) != len(header):
                spans = (f" (the row runs to line {reader.line_num}: a quoted field holds "
                         "line breaks)" if reader.line_num > record_start else "")
                raise TextgenError(
                    f"{path}:{record_start}: {len(record)} fields, but the header has "
                    f"{len(header)}{spans}; quote fields that hold '{_shown(delimiter)}' or "
                    "newlines")
            rows.append((record_start, dict(zip(keys, record, strict=True))))
    except csv.Error as exc:
        raise TextgenError(
            f"{path}:{start}: the row starting here is badly quoted ({_shown_all(exc)}, line "
            f"{reader.line_num}); a field that starts with '\"' must end with '\"', with each "
            'quote inside it doubled ("")') from exc
    if header is None:
        raise TextgenError(f"{path}: the file is empty; give a header row and one row per text")
    return rows, header_line, header


def _unique(header: list[str]) -> list[str]:
    """The header's names, a repeat numbered as pandas numbers one (`note`, `note.1`) but
    never with a name the header itself holds (`note,note,note.1`: the second is `note.2`,
    so --text-column note.1 reads the column so named): each column keeps its value in a row
    (predict --json shows them all)."""
    taken = set(header)
    used: set[str] = set()
    next_number: dict[str, int] = {}
    keys = []
    for name in header:
        key = name
        if key in used:
            number = next_number.get(name, 1)
            while f"{name}.{number}" in taken or f"{name}.{number}" in used:
                number += 1
            next_number[name] = number + 1
            key = f"{name}.{number}"
        used.add(key)
        keys.append(key)
    return keys


def _shown(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


def _shown_all(exc: csv.Error) -> str:
    return str(exc).replace("\t", "\\t")


class _NotJson(ValueError):
    """NaN or Infinity in a line: json.loads reads them, but JSON does not have them."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _not_json(name: str) -> None:
    raise _NotJson(name)


def _column_outside_strings(line: str, token: str) -> int:
    """The 1-based column of the first `token` outside a JSON string (where the parser found
    it, since it reads left to right); 1 if there is none."""
    inside = escaped = False
    for index, char in enumerate(line):
        if inside:
            inside = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            inside = True
        elif line.startswith(token, index):
            return index + 1
    return 1


def _json_lines(text: str) -> Iterator[tuple[int, str]]:
    """The lines of a JSON Lines text, numbered. They end at \n (or \r\n), not where
    splitlines() would also cut: JSON strings may hold U+2028 and U+0085. A \r may stand
    between a line's tokens; a line that does not parse as it is but holds \r is split
    there too (old Mac line ends, and a file that mixes them)."""
    number = 0
    for line in text.split("\n"):
        parts = [line]
        if "\r" in line.strip():
            try:  # numbers as text: a 5,000-digit one parses
                json.loads(line, parse_int=str, parse_float=str, parse_constant=str)
            except ValueError:
                parts = line.split("\r")
        for part in parts:
            number += 1
            yield number, part


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in _json_lines(text):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_not_json, parse_int=_JsonNumber,
                             parse_float=_JsonNumber, object_pairs_hook=unique_members)
        except json.JSONDecodeError as exc:
            raise TextgenError(f"{path}:{number}: invalid JSON ({exc.msg} at column "
                               f"{exc.colno}); each line must be one JSON object") from exc
        except _NotJson as exc:
            raise TextgenError(f"{path}:{number}: invalid JSON ({exc.name} is not JSON at "
                               f"column {_column_outside_strings(line, exc.name)}); each line "
                               "must be one JSON object") from exc
        except MemberGivenTwice as exc:
            raise TextgenError(f"{path}:{number}: the object names {exc.name!r} twice; give "
                               "each field once") from None
        if not isinstance(row, dict):
            raise TextgenError(f"{path}:{number}: a JSON {type(row).__name__}, not an object; "
                               "each line must be one JSON object such as "
                               '{"text": "...", "label": "..."}')
        rows.append((number, row))
    if not rows:
        raise TextgenError(f"{path}: the file is empty; give one JSON object per line, such as "
                           '{"text": "...", "label": "..."}')
    return rows
