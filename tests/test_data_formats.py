"""Data as users find it: encodings and undecodable bytes, class folders of extension-less
files (20 Newsgroups' layout), CSV/TSV/JSON Lines tables, and folders of documents for
generate mode."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_without_tensorflow, write_reviews
from textgen.classify.data import locate, read_class_folders
from textgen.classify.tables import Columns, read_table
from textgen.errors import FieldError, TextgenError
from textgen.reading import (
    Decoding,
    collect_documents,
    folder_files,
    read_documents,
    read_text,
    unescape,
)

TOPICS = {
    "comp.sys.ibm.pc.hardware": ["motherboard", "bios", "jumper", "drive", "controller", "ram"],
    "rec.sport.hockey": ["goalie", "puck", "playoffs", "season", "penalty", "rink"],
    "talk.politics.mideast": ["israel", "treaty", "border", "minister", "peace", "region"],
}
COMMON = ["the", "a", "is", "and", "of", "to", "in", "that", "it", "for", "with", "as"]


def write_topics(root, per_class: int, seed: int, latin1_file: bool = False):
    """A small 20 Newsgroups look-alike: topic folders of numbered files without extension,
    headers and all; optionally one post with a Latin-1 byte, as 73 of the real ones have."""
    rng = random.Random(seed)
    for topic, words in TOPICS.items():
        folder = root / topic
        folder.mkdir(parents=True)
        for i in range(per_class):
            body = " ".join(rng.choices(COMMON, k=12) + rng.choices(words, k=3))
            post = f"From: user{i}@example.edu\nSubject: Re: {rng.choice(words)}\n\n{body}\n"
            (folder / str(50000 + i)).write_text(post, encoding="utf-8")
    if latin1_file:
        (root / "rec.sport.hockey" / "59999").write_bytes(
            b"Subject: caf\xe9 talk\n\nthe goalie and the puck\n")
    return root


# -- decoding -------------------------------------------------------------------------------

def test_strict_decoding_names_the_file_and_offset_and_suggests_replace(tmp_path):
    path = tmp_path / "post"
    path.write_bytes(b"caf\xe9 au lait\n")
    with pytest.raises(TextgenError) as info:
        read_text(path)
    message = info.value.for_cli()
    assert "post" in message and "offset 3" in message and "0xe9" in message
    assert "--decode-errors replace" in message and "\n" not in message
    # The Python API names its keywords: read_text(..., decoding) takes the same settings.
    assert "use decode_errors='replace' to read it anyway, or encoding with" in str(info.value)
    assert read_text(path, Decoding(errors="replace")) == "caf\ufffd au lait\n"
    assert read_text(path, Decoding(errors="ignore")) == "caf au lait\n"
    assert read_text(path, Decoding("latin-1")) == "café au lait\n"
    assert message.endswith("(e.g. latin-1)")
    # Windows' curly quotes are control characters in latin-1: cp1252 is the one to try
    path.write_bytes(b"\x93caf\xe9\x94\n")
    with pytest.raises(TextgenError) as quoted:
        read_text(path)
    assert quoted.value.for_cli().endswith("(e.g. cp1252)")
    assert read_text(path, Decoding("cp1252")) == "\u201ccaf\xe9\u201d\n"


def test_a_bom_is_dropped_and_bad_encodings_are_refused_before_tensorflow(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfhello\r\nworld\r\n")
    assert read_text(path) == "hello\nworld\n"
    for bad, message in [("klingon", "not an encoding Python knows"),
                         ("base64", "not a text encoding")]:
        with pytest.raises(TextgenError, match=message):
            Decoding(bad)
        code, imported, stderr = run_without_tensorflow("train", str(path), "--encoding", bad)
        assert code == 2 and not imported and message in stderr
    code, imported, stderr = run_without_tensorflow("train", str(path), "--decode-errors", "x")
    assert code == 2 and not imported and "--decode-errors" in stderr


# -- class folders ----------------------------------------------------------------------------

def test_class_examples_are_regular_files_of_any_name(tmp_path):
    root = tmp_path / "data"
    folder = root / "a"
    folder.mkdir(parents=True)
    (folder / "12345").write_text("no extension")
    (folder / "review.md").write_text("markdown")
    (folder / ".DS_Store").write_text("hidden")
    (folder / "nested").mkdir()
    (folder / "nested" / "x.txt").write_text("in a sub-folder")
    (root / "b").mkdir()
    (root / "b" / "kept").write_text("kept")
    (folder / "link").symlink_to(root / "b" / "kept")
    assert [p.name for p in folder_files(folder, root)] == ["12345", "link", "review.md"]
    (tmp_path / "secret").write_text("outside")
    (folder / "escape").symlink_to(tmp_path / "secret")
    with pytest.raises(TextgenError, match="a symbolic link leads outside the data folder"):
        folder_files(folder, root)
    (folder / "escape").unlink()
    # A class folder that is itself a link to a folder elsewhere: its files are outside too.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("outside")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TextgenError, match="data/linked: a symbolic link leads outside"):
        folder_files(root / "linked", root)


def test_topic_folders_as_released_need_decode_errors_replace(tmp_path):
    root = write_topics(tmp_path / "train", per_class=4, seed=0, latin1_file=True)
    with pytest.raises(TextgenError) as info:
        read_class_folders(root)
    assert "59999" in str(info.value) and "offset 12" in str(info.value)
    assert "--decode-errors replace" in info.value.for_cli()
    examples = read_class_folders(root, decoding=Decoding(errors="replace"))
    assert examples.classes == tuple(sorted(TOPICS))
    assert examples.counts == {"comp.sys.ibm.pc.hardware": 4, "rec.sport.hockey": 5,
                               "talk.politics.mideast": 4}
    assert any("caf\ufffd talk" in text for text in examples.texts)


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    root = tmp_path_factory.mktemp("20news")
    write_topics(root / "20news-bydate-train", per_class=40, seed=1, latin1_file=True)
    write_topics(root / "20news-bydate-test", per_class=12, seed=2)
    return root


def test_twenty_newsgroups_commands_as_the_issue_types_them(cli, topics, tmp_path):
    """`classify train 20news-bydate-train --decode-errors replace`, then `classify evaluate
    20news-bydate-test` with no flag: the run's decoding is reused; the report fits 100
    columns and names the most confused classes."""
    ckpt = str(tmp_path / "ck")
    strict = cli("classify", "train", str(topics / "20news-bydate-train"), "--checkpoint-dir",
                 ckpt)
    assert strict.exit_code == 2 and "offset 12" in strict.stderr
    train = cli("classify", "train", str(topics / "20news-bydate-train"), "--decode-errors",
                "replace", "--arch", "ngrams", "--epochs", "6", "--batch-size", "16",
                "--learning-rate", "0.01", "--checkpoint-dir", ckpt)
    assert train.exit_code == 0, train.stderr
    meta = json.loads((tmp_path / "ck" / "20news-bydate-train" / "run.json").read_text())
    assert meta["decoding"] == {"encoding": "utf-8", "errors": "replace"}
    assert meta["examples"]["rec.sport.hockey"] == 41
    (topics / "20news-bydate-test" / "talk.politics.mideast" / "58000").write_bytes(
        b"the peace treaty and the border minister \xff\n")
    report = cli("classify", "evaluate", str(topics / "20news-bydate-test"), "--checkpoint-dir",
                 ckpt)
    assert report.exit_code == 0, report.stderr
    assert "macro-F1" in report.stdout and "confusion matrix" in report.stdout
    assert max(map(len, report.stdout.splitlines())) <= 100
    as_json = json.loads(cli("classify", "evaluate", str(topics / "20news-bydate-test"),
                             "--json", "--checkpoint-dir", ckpt).stdout)
    assert as_json["examples"] == 37 and as_json["accuracy"] >= 0.9
    assert 0 < as_json["macro_f1"] <= 1
    strict_eval = cli("classify", "evaluate", str(topics / "20news-bydate-test"),
                      "--decode-errors", "strict", "--checkpoint-dir", ckpt)
    assert strict_eval.exit_code == 2 and "58000" in strict_eval.stderr


def test_a_wide_confusion_matrix_is_numbered_and_fits_100_columns():
    from textgen.cli.classify import confusion_lines

    names = [f"comp.sys.topic-number-{i}.hardware" for i in range(20)]
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 400, size=(20, 20)).tolist()
    lines = confusion_lines(names, matrix)
    assert len(lines) == 22 and all(len(line) <= 100 for line in lines)
    assert lines[1].split() == [str(n) for n in range(1, 21)]
    row = lines[2 + 7].split()
    assert row[0] == "8" and [int(v) for v in row[-20:]] == matrix[7]


def test_the_report_shows_each_label_on_one_line_without_escape_codes_or_markup(capsys):
    """Labels come from the data: a newline or an escape code in one must not split the
    table's rows or reach the terminal, nor a '[' be read as markup (predict escapes them)."""
    from textgen.classify.metrics import Metrics
    from textgen.cli.classify import _print_metrics

    names = ["good\tone", "bad\nline\x1b[31m", "[bold]loud"]
    _print_metrics(Metrics(names, np.array([[3, 1, 0], [0, 4, 1], [1, 0, 2]])).to_dict())
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\t" not in out
    assert "bad\\nline\\x1b[31m" in out and "good\\tone" in out and "[bold]loud" in out
    assert "bad\\nline\\x1b[31m -> " in out or "-> bad\\nline\\x1b[31m" in out


def test_most_confused_pairs():
    from textgen.classify.metrics import Metrics

    metrics = Metrics(["a", "b", "c"], np.array([[5, 3, 0], [1, 6, 0], [0, 7, 2]]))
    assert metrics.most_confused(2) == [
        {"true": "c", "predicted": "b", "count": 7, "of": 9},
        {"true": "a", "predicted": "b", "count": 3, "of": 8}]
    assert metrics.macro_f1 == pytest.approx(np.mean(
        [c["f1"] for c in metrics.per_class().values()]))


def test_macro_f1_averages_over_the_classes_the_examples_hold_or_the_model_predicts():
    from textgen.classify.metrics import Metrics

    # Evaluated on one class of three, all right: 1.0, as scikit-learn's f1_score(average=
    # "macro") gives; a class predicted but absent still counts (its F1 is 0).
    only_sport = Metrics.from_labels(np.array([1, 1, 1]), np.array([1, 1, 1]), ["a", "b", "c"])
    assert only_sport.macro_f1 == 1.0
    one_wrong = Metrics.from_labels(np.array([1, 1, 1]), np.array([1, 1, 2]), ["a", "b", "c"])
    assert one_wrong.macro_f1 == pytest.approx((0.8 + 0.0) / 2)


# -- tables -------------------------------------------------------------------------------------

def test_csv_quoting_bom_crlf_and_joined_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = ('id,title,text,label\r\n'
            '1,Fine,"Good, really ""good"" film\r\nwith two lines",pos\r\n'
            '2,,plain,neg\r\n')
    path.write_bytes(b"\xef\xbb\xbf" + rows.encode())
    table = read_table(path, Decoding())
    assert table.texts == ['Good, really "good" film\r\nwith two lines', "plain"]
    assert table.labels == ["pos", "neg"] and table.lines == [2, 4]  # where each row starts
    assert table.others == [{"id": "1", "title": "Fine", "label": "pos"},
                            {"id": "2", "title": "", "label": "neg"}]
    joined = read_table(path, Decoding(), Columns.parse("title,text"))
    assert joined.texts[0].startswith("Fine\nGood,") and joined.texts[1] == "plain"


def test_tsv_and_jsonl(tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_text('text\tlabel\n"tab\tinside"\t1\nplain\t0\n', encoding="utf-8")
    assert read_table(tsv, Decoding()).texts == ["tab\tinside", "plain"]
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text('{"text": "line\\u2028sep \u2028 raw", "label": 1, "id": 7}\n\n'
                     '{"text": "ok", "label": "neg"}\n', encoding="utf-8")
    table = read_table(jsonl, Decoding())
    assert table.texts == ["line\u2028sep \u2028 raw", "ok"] and table.labels == ["1", "neg"]
    assert table.others[0] == {"label": 1, "id": 7} and table.lines == [1, 3]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("r.csv", "body,label\nhello,pos\n",
     "r.csv:1: the header has no 'text' column (found: 'body', 'label')"),
    ("r.tsv", "\nbody\tlabel\nhello\tpos\n", "r.tsv:2: the header has no 'text' column"),
    ("r.jsonl", '{"text": "a", "label": "x"}\n{"body": "b", "label": "y"}\n',
     "r.jsonl:2: no 'text' column (found: 'body', 'label')"),
    ("r.csv", "great fun,pos\nawful,neg\n", "r.csv:1: the header has no 'text', 'label' "
     "column (found: 'great fun', 'pos')"),
    ("r.csv", "great fun,pos\nawful,neg\n", "; or, if that line is a row of data, add a "
     "header line above it naming the columns (text,label)"),  # a CSV without a header
    ("r.csv", "text,label\nhello,pos\n,neg\n", "r.csv:3: empty text"),
    ("r.csv", "text,label\nhello,\n", "r.csv:2: empty label"),
    ("r.csv", "text,label\nhello,pos\nhi, there,neg\n", "r.csv:3: 3 fields, but the header has 2"),
    ("r.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label}\n', "r.jsonl:2: invalid JSON"),
    ("r.jsonl", '["a", "x"]\n', "r.jsonl:1: a JSON list, not an object"),
    ("r.jsonl", '{"text": null, "label": "x"}\n', "r.jsonl:1: 'text' must be a string"),
    ("r.jsonl", '{"text": "a", "label": NaN}\n',
     "r.jsonl:1: invalid JSON (NaN is not JSON at column 24)"),
    ("r.jsonl", '{"text": "say \\"NaN\\" or -Infinity", "label": -Infinity}\n',
     "r.jsonl:1: invalid JSON (-Infinity is not JSON at column 47)"),
    ("r.jsonl", '{"text": "a", "label": "pos", "label": "x"}\n',
     "r.jsonl:1: the object names 'label' twice; give each field once"),
    ("r.jsonl", '{"text": "a", "label": [1]}\n', "r.jsonl:1: 'label' must be a string or a "
     "number, got list"),
    # a lone half of a surrogate pair: TensorFlow refused it mid-training, with no line named
    ("r.jsonl", '{"text": "a", "label": "x"}\n{"text": "a \\ud800 b", "label": "x"}\n',
     "r.jsonl:2: the escape \\ud800 is half of a surrogate pair, not a character"),
    ("r.jsonl", '{"text": "a", "label": "p\\udc00s"}\n', "r.jsonl:1: the escape \\udc00 is half"),
    ("r.csv", "", "the file is empty"),
    ("r.jsonl", "\n\n", "r.jsonl: the file is empty; give one JSON object per line"),
    ("r.csv", "text,label,label,,\nhi,a,b,,\n",
     "r.csv:1: the header names 'label' more than once"),
    # A stray quote opening a field would swallow the rows after it: refused where it starts.
    ("r.tsv", 'text\tlabel\n"Best film, 10/10\tpos\nA 5" screen\tneg\nok\tpos\n',
     "r.tsv:2: the row starting here is badly quoted ('\\t' expected after '\"', line 3)"),
    ("r.csv", 'text,label\nfine,pos\n"never closed,pos\nok,neg\n',
     "r.csv:3: the row starting here is badly quoted (unexpected end of data, line 4)"),
    ("r.csv", 'text,label\n"two\nlines",pos,extra\n',
     "r.csv:2: 3 fields, but the header has 2 (the row runs to line 3"),
])
def test_bad_tables_give_one_line_errors_naming_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TextgenError) as info:
        read_table(path, Decoding())
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_json_array_for_training_is_told_to_be_json_lines(tmp_path):
    from textgen.classify.data import locate

    path = tmp_path / "r.json"
    path.write_text('[{"text": "a", "label": "x"}]')
    with pytest.raises(TextgenError, match=r"r\.json: a \.json file; give the rows as JSON "
                                           r"Lines \(\.jsonl, one object a line"):
        locate(path, None)


def test_repeated_column_names_matter_only_among_the_columns_read(tmp_path):
    path = tmp_path / "r.csv"  # empty names from trailing commas, an unused column twice
    path.write_text("text,label,note,note,,,note.1\nhi,pos,a,b,,,e\nho,neg,c,d,,,f\n",
                    encoding="utf-8")
    table = read_table(path, Decoding())
    assert table.labels == ["pos", "neg"]
    # each keeps its value, numbered as pandas does (predict --json kept one of them)
    assert table.others[0] == {"label": "pos", "note": "a", "note.2": "b", "": "", ".1": "",
                               "note.1": "e"}  # a name the header holds is its column's
    picked = read_table(path, Decoding(), Columns.parse("note.1"), labels=False)
    assert picked.texts == ["e", "f"]


def test_predicting_from_a_table_without_the_text_column_names_only_that_option(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("body\nhello\n", encoding="utf-8")
    with pytest.raises(TextgenError) as info:
        read_table(path, Decoding(), labels=False)
    assert info.value.for_cli().endswith("name the columns with --text-column")
    assert str(info.value).endswith("name the columns with text_column")


@pytest.mark.parametrize(("header", "advice"), [
    ("Text,Label", "name the columns with --text-column Text and --label-column Label"),
    ("Text,label", "name the columns with --text-column Text"),
    ("body,LABEL", "name the columns with --text-column and --label-column LABEL"),
])
def test_a_header_that_differs_only_in_case_is_named_in_the_advice(tmp_path, header, advice):
    path = tmp_path / "r.csv"
    path.write_text(f"{header}\nhello,pos\n", encoding="utf-8")
    with pytest.raises(TextgenError) as info:
        read_table(path, Decoding())
    assert info.value.for_cli().endswith(advice)


def test_a_utf16_file_is_named_by_its_byte_order_mark(tmp_path):
    from textgen.reading import read_text

    path = tmp_path / "r.tsv"
    path.write_bytes("text\tlabel\n".encode("utf-16"))
    with pytest.raises(TextgenError) as info:
        read_text(path)
    assert info.value.for_cli().endswith("starts with a utf-16 byte-order mark: use "
                                         "--encoding utf-16")
    assert str(info.value).endswith("use encoding='utf-16'")
    assert read_text(path, Decoding("utf-16")) == "text\tlabel\n"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_mark_is_named_not_trained_on_as_nuls(tmp_path, encoding):
    """NUL bytes are valid UTF-8: such a file decoded, and trained a model on every other
    character a NUL."""
    from textgen.reading import read_text

    path = tmp_path / "speech.txt"
    path.write_bytes("Her father loved me; oft invited me.\n".encode(encoding))
    with pytest.raises(TextgenError) as info:
        read_text(path)
    assert info.value.for_cli().endswith(f": not UTF-8 text; every other byte is a NUL, as in "
                                         f"{encoding} text: use --encoding {encoding}")
    assert read_text(path, Decoding(encoding)) == "Her father loved me; oft invited me.\n"
    path.write_bytes(b"a text with a \0 byte here and there\0")  # named, it is read
    assert read_text(path) == "a text with a \0 byte here and there\0"


def test_a_utf16_table_or_example_is_named_by_its_mark_not_called_binary(tmp_path):
    """Excel's "Unicode Text" is UTF-16: full of NUL bytes when read as UTF-8."""
    from textgen.classify.tables import read_table

    table = tmp_path / "r.csv"
    table.write_bytes("text,label\nhello there,pos\nawful,neg\n".encode("utf-16"))
    root = write_reviews(tmp_path / "data", {"neg": 2, "pos": 2})
    (root / "pos" / "u16.txt").write_bytes("a fine film".encode("utf-16"))
    for read in (lambda: read_table(table, Decoding()), lambda: locate(root)):
        with pytest.raises(TextgenError) as info:
            read()
        assert info.value.for_cli().endswith(": not UTF-8 text; it starts with a utf-16 "
                                             "byte-order mark: use --encoding utf-16")
    assert read_table(table, Decoding("utf-16")).labels == ["pos", "neg"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_an_unmarked_utf16_table_or_example_is_named_not_called_binary(tmp_path, encoding):
    from textgen.classify.tables import read_table

    table = tmp_path / "r.csv"
    table.write_bytes("text,label\nhello there,pos\nawful,neg\n".encode(encoding))
    root = write_reviews(tmp_path / "data", {"neg": 2, "pos": 2})
    (root / "pos" / "u16.txt").write_bytes("a fine film".encode(encoding))
    for read in (lambda: read_table(table, Decoding()), lambda: locate(root)):
        with pytest.raises(TextgenError) as info:
            read()
        assert info.value.for_cli().endswith(f": not UTF-8 text; every other byte is a NUL, "
                                             f"as in {encoding} text: use --encoding {encoding}")
    assert read_table(table, Decoding(encoding)).labels == ["pos", "neg"]


def test_class_folders_refuse_binary_and_empty_files_and_class_paths(tmp_path):
    from textgen.classify.data import parse_classes

    root = write_reviews(tmp_path / "data", {"neg": 4, "pos": 4})
    (root / "pos" / "thumb.db").write_bytes(b"\x00\x01binary")
    with pytest.raises(TextgenError, match="thumb.db: a binary file .* remove it from the class"):
        locate(root)
    (root / "pos" / "thumb.db").unlink()
    (root / "neg" / "blank.txt").write_text("  \n")
    with pytest.raises(TextgenError, match="1 of the 5 files of class 'neg' is empty \\(the "
                                           "first: blank.txt\\)"):
        locate(root)
    (root / "neg" / "blank.txt").unlink()
    for classes in ("../elsewhere,neg", "pos,/etc"):
        with pytest.raises(TextgenError, match="cannot be a subfolder's name"):
            locate(root, parse_classes(classes))
    with pytest.raises(TextgenError, match="class '..' cannot be a subfolder's name"):
        locate(root, ["..", "neg"])
    # a class named twice is named (it said "needs two or more distinct names" of neg,neg,pos)
    with pytest.raises(TextgenError, match="^classes names 'neg' more than once; name each"):
        parse_classes("neg,neg,pos")
    with pytest.raises(TextgenError, match="^classes needs two or more names, e.g. neg,pos"):
        parse_classes("neg,")
    # A table's labels may hold a slash (AG News' Sci/Tech).
    table = tmp_path / "ag.csv"
    table.write_text("text,label\nchips,Sci/Tech\nstocks,Business\ngames,Sports\n")
    assert locate(table, parse_classes("Business,Sci/Tech")).classes == ("Business", "Sci/Tech")
    assert locate(root).counts == {"neg": 4, "pos": 4}


def test_table_options_on_folder_data_are_refused(tmp_path):
    root = write_reviews(tmp_path / "data", {"neg": 4, "pos": 4})
    code, imported, stderr = run_without_tensorflow("classify", "train", str(root),
                                                    "--text-column", "body")
    assert code == 2 and not imported
    assert "--text-column and --label-column name a table's columns" in stderr
    # evaluate and the Python API alike (they were ignored: accuracy on the folder, exit 0)
    code, imported, stderr = run_without_tensorflow("classify", "evaluate", str(root),
                                                    "--label-column", "nonsense")
    assert code == 2 and not imported
    assert "--text-column and --label-column name a table's columns" in stderr
    from textgen.classify.prediction import evaluate_data
    from textgen.classify.train import train_classifier

    for call in (lambda: evaluate_data(root, "any", text_column="body"),
                 lambda: train_classifier(root, label_column="stars")):
        with pytest.raises(TextgenError, match="^text_column and label_column name a table's"):
            call()
    with pytest.raises(TextgenError, match="^columns names a table's columns, .* leave it out"):
        evaluate_data(root, "any", columns="body")


def test_notes_on_rows_left_out_and_on_labels_that_look_like_no_labels(tmp_path):
    from textgen.classify.train import ClassifierRecipe

    path = tmp_path / "r.csv"
    labels = ["a", "b", "c", "c"] * 6
    path.write_text("text,label\n" + "".join(f"word{i} here,{label}\n"
                                              for i, label in enumerate(labels)))
    assert ClassifierRecipe(path, None).data_notes == []
    assert ClassifierRecipe(path, ["a", "b"]).data_notes == [
        "classes left out 12 rows of other labels: c (12)"]
    swapped = ClassifierRecipe(path, None, columns=Columns.parse("label", "text")).data_notes
    assert swapped == ["24 of the 24 classes have one example each: nothing to learn a class "
                       "from; is 'text' the label column? (label_column)"]
    cased = tmp_path / "cased.csv"  # every third label in capitals: four classes, not two
    mood = ["neg", "pos"]
    cased.write_text("text,label\n" + "".join(
        f"word{i} here,{mood[i % 2].upper() if i % 3 == 0 else mood[i % 2]}\n"
        for i in range(30)))
    recipe = ClassifierRecipe(cased, None)
    assert recipe.data.classes == ("NEG", "POS", "neg", "pos")
    assert recipe.data_notes == ["labels that differ only in case or in how their accents are "
                                 "encoded are different classes: 'NEG' and 'neg'; 'POS' and "
                                 "'pos'; if they mean the same, write them alike in the data"]
    accents = tmp_path / "accents.csv"  # 'négatif' typed once with a combining accent
    accents.write_text("text,label\n" + "great fun,positive\n" * 4 + "awful bad,n\u00e9gatif\n"
                       * 4 + "awful bad,ne\u0301gatif\n")
    assert ("are different classes: 'ne\\u0301gatif' and 'n\u00e9gatif';" in
            ClassifierRecipe(accents, None).data_notes[-2])


def test_the_label_column_cannot_also_be_a_text_column():
    def refused(*columns: str | None) -> FieldError:
        with pytest.raises(FieldError) as info:
            Columns.parse(*columns)
        return info.value

    error = refused("title,label")
    assert error.field == "label_column"
    assert error.for_cli().startswith("--label-column 'label' is also a --text-column")
    assert str(error).startswith("label_column 'label' is also a text_column")
    assert refused("stars", "stars").for_cli().startswith("--label-column 'stars' is also")
    # An empty label column was the default one, silently; a text column named twice was
    # read twice into every text.
    assert refused(None, " ").for_cli().startswith("--label-column needs a column name")
    assert refused("text,text").for_cli().startswith("--text-column names 'text' twice")
    assert Columns.parse(None, None, {"text": ["title", "body"], "label": "stars"}) == \
        Columns(("title", "body"), "stars")  # a run's own, where the options leave them out


def test_texts_without_words_are_refused_before_tensorflow(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\n!!!,pos\n???,neg\n\U0001F600,pos\n...,neg\n",
                    encoding="utf-8")
    code, imported, stderr = run_without_tensorflow("classify", "train", str(path))
    assert code == 2 and not imported
    assert stderr.strip() == f"error: {path}: no text holds a word (letters or digits), only " \
                             "punctuation, symbols or emoji; the classifier learns from words"


def test_table_errors_reach_the_cli_as_one_line_before_tensorflow(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\nonly one class,pos\n", encoding="utf-8")
    code, imported, stderr = run_without_tensorflow("classify", "train", str(path))
    assert code == 2 and not imported
    assert stderr.strip() == "error: " + str(path) + ": needs at least two classes in 'label' " \
                             "(found: pos)"


def _layouts(tmp_path, rng_seed=3):
    """The same 60 examples as class folders and as a shuffled CSV table."""
    rng = random.Random(rng_seed)
    rows = []
    for label, words in (("neg", ["awful", "boring", "dull"]), ("pos", ["great", "superb"])):
        for i in range(30):
            text = " ".join(rng.choices(COMMON, k=6) + rng.choices(words, k=2))
            rows.append((f"{label}-{i:02d}", text, label))
            (tmp_path / "folders" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "folders" / label / f"{i:02d}").write_text(text, encoding="utf-8")
    rng.shuffle(rows)
    table = tmp_path / "reviews.csv"
    table.write_text("id,text,label\n" + "".join(f"{i},{t},{lab}\n" for i, t, lab in rows),
                     encoding="utf-8")
    return tmp_path / "folders", table


def test_a_table_and_the_same_folders_give_the_same_model(cli, tmp_path):
    folders, table = _layouts(tmp_path)
    a, b = locate(folders), locate(table)
    assert a.train.texts == b.train.texts and a.train.labels.tolist() == b.train.labels.tolist()
    ckpt = str(tmp_path / "ck")
    common = ["--arch", "lstm", "--epochs", "2", "--max-tokens", "60", "--seq-length", "8",
              "--embed-dim", "8", "--units", "8", "--batch-size", "8", "--rng-seed", "5",
              "--checkpoint-dir", ckpt]
    assert cli("classify", "train", str(folders), "--run-name", "f", *common).exit_code == 0
    result = cli("classify", "train", str(table), "--run-name", "t", *common)
    assert result.exit_code == 0, result.stderr
    from textgen.runs import load_keras_model

    first = load_keras_model(tmp_path / "ck" / "f" / "last.keras").get_weights()
    second = load_keras_model(tmp_path / "ck" / "t" / "last.keras").get_weights()
    assert len(first) == len(second)
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)
    meta = json.loads((tmp_path / "ck" / "t" / "run.json").read_text())
    assert meta["columns"] == {"text": ["text"], "label": "label"}

    evaluation = json.loads(cli("classify", "evaluate", str(table), "--json", "--model", "t",
                                "--checkpoint-dir", ckpt).stdout)
    assert evaluation["examples"] == 60
    predicted = cli("classify", "predict", "--file", str(table), "--json", "--model", "t",
                    "--checkpoint-dir", ckpt)
    assert predicted.exit_code == 0, predicted.stderr
    out = json.loads(predicted.stdout)
    assert len(out) == 60 and set(out[0]["columns"]) == {"id", "label"}
    assert {row["columns"]["id"] for row in out} == {f"{lab}-{i:02d}" for lab in ("neg", "pos")
                                                     for i in range(30)}
    # Rows of labels the model does not know are left out with a note, as class folders are
    # (a model trained with --classes on a subset scores on the rest of a full test table).
    unknown = tmp_path / "other.jsonl"
    unknown.write_text('{"text": "fine", "label": "meh"}\n{"text": "loved it", "label": "pos"}\n',
                       encoding="utf-8")
    mixed = cli("classify", "evaluate", str(unknown), "--model", "t", "--checkpoint-dir", ckpt)
    assert mixed.exit_code == 0, mixed.stderr
    assert "note: 1 example of classes the model does not know was left out: meh (1)" in \
        mixed.stderr
    as_json = json.loads(cli("classify", "evaluate", str(unknown), "--model", "t",
                             "--checkpoint-dir", ckpt, "--json").stdout)
    assert as_json["examples"] == 1 and as_json["left_out"] == {"meh": 1}
    unknown.write_text('{"text": "fine", "label": "meh"}\n', encoding="utf-8")
    refused = cli("classify", "evaluate", str(unknown), "--model", "t", "--checkpoint-dir", ckpt)
    assert refused.exit_code == 2
    assert "other.jsonl: no row has a label of the model's classes (neg, pos)" in refused.stderr


# -- generate mode: folders and several files ----------------------------------------------------

def test_a_file_named_twice_is_read_once(tmp_path):
    """Read twice, its end would be both trained on and held out for validation."""
    root = tmp_path / "songs"
    root.mkdir()
    (root / "a.txt").write_text("first\n")
    (root / "b.txt").write_text("second\n")
    docs = collect_documents([root / "a.txt", root, root / "a.txt"])
    assert [p.name for p in docs.files] == ["a.txt", "b.txt"]
    assert docs.skipped() == {"the same file again": 2}
    assert read_documents(docs) == "first\n\nsecond\n"


def test_a_folder_skips_textgen_s_own_folders_folder_links_and_hard_links(tmp_path):
    """A checkpoints/ inside the text's folder was read: the run's own run.json and history
    became text (and most of the validation), and its text changed as it trained, so it could
    never be resumed. Folder links were skipped without a word; a hard link was read twice."""
    import os

    root = tmp_path / "project"
    (root / "checkpoints" / "project" / "backup").mkdir(parents=True)
    (root / "checkpoints" / "project" / "run.json").write_text(
        '{"format_version": 1, "mode": "generate"}')
    (root / "app").mkdir()  # another program's run.json: the folder is the user's
    (root / "app" / "run.json").write_text('{"port": 8080}')
    (root / "app" / "core.txt").write_text("code\n")
    (root / "checkpoints" / "project" / "history.csv").write_text("epoch,loss\n0,2.0\n")
    (root / "exported").mkdir()
    (root / "exported" / "saved_model.pb").write_text("graph")
    (root / "exported" / "notes.txt").write_text("a SavedModel's files")
    (root / "a.txt").write_text("first\n")
    os.link(root / "a.txt", root / "z.txt")
    outside = tmp_path / "books"
    outside.mkdir()
    (outside / "b.txt").write_text("elsewhere\n")
    (root / "books").symlink_to(outside)
    docs = collect_documents([root])
    assert [p.name for p in docs.files] == ["a.txt", "core.txt", "run.json"]
    assert docs.skipped() == {"link(s) to folders": 1, "textgen run or export folder(s)": 2,
                              "the same file again": 1}


def test_a_folder_that_cannot_be_read_is_an_error_as_such_a_file_is(tmp_path, monkeypatch):
    """A subfolder without read permission was skipped without a word (os.walk drops it):
    its texts were left out of training, where an unreadable file is an error."""
    root = tmp_path / "texts"
    (root / "locked").mkdir(parents=True)
    (root / "a.txt").write_text("a text\n")
    (root / "locked" / "b.txt").write_text("another\n")
    listing = os.scandir

    def denied(path):  # what a folder without read access gives (root is never denied)
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(TextgenError, match=re.escape(
            f"{root / 'locked'}: cannot be read (Permission denied); give yourself read "
            "access (chmod), or move it out of the folder")):
        collect_documents([root])
    # the folder given itself: no folder to move it out of
    with pytest.raises(TextgenError, match=re.escape(
            f"{root / 'locked'}: cannot be read (Permission denied); give yourself read "
            "access (chmod)") + "$"):
        collect_documents([root / "locked"])


def test_a_file_in_a_folder_that_is_not_text_is_named_with_the_way_to_leave_it_out(tmp_path):
    """A binary file without a NUL early on: the advice was only to read it anyway
    (--decode-errors replace) or as latin-1, which would train on it."""
    root = tmp_path / "texts"
    root.mkdir()
    (root / "a.txt").write_text("a text\n")
    (root / "model.pb").write_bytes(b"\x08\x99\x8f" * 50)
    docs = collect_documents([root])
    with pytest.raises(TextgenError) as info:
        read_documents(docs)
    assert info.value.for_cli().endswith("if it is no text, move it out of the folder or "
                                         "choose the files with --glob")
    with pytest.raises(TextgenError) as named:  # named on its own: meant to be read
        read_documents(collect_documents([root / "a.txt", root / "model.pb"]))
    assert "--glob" not in named.value.for_cli()


def test_a_folder_of_utf16_files_is_text_under_its_encoding(tmp_path):
    """UTF-16 text is half zero bytes: the binary probe looks for a NUL character there."""
    root = tmp_path / "letters"
    root.mkdir()
    for name, text in (("a.txt", "Dear Sir,\n"), ("b.txt", "Yours, é\n")):
        (root / name).write_bytes(text.encode("utf-16"))
    (root / "nul.txt").write_bytes("a\0b".encode("utf-16"))
    docs = collect_documents([root], encoding="utf-16")
    assert [p.name for p in docs.files] == ["a.txt", "b.txt"] and docs.skipped_binary == 1
    assert read_documents(docs, Decoding("utf-16")) == "Dear Sir,\n\nYours, é\n"
    # Read as UTF-8, files with a UTF-16 mark are named as such (they were "3 binary").
    with pytest.raises(TextgenError, match=r"skipped: 3 marked utf-16\); .* or read the files "
                                           r"marked utf-16 with encoding='utf-16'$") as marked:
        collect_documents([root])
    assert marked.value.for_cli().endswith("marked utf-16 with --encoding utf-16")


def test_documents_from_folders_skip_hidden_and_binary_and_filter(tmp_path):
    root = tmp_path / "lyrics"
    (root / "album1").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "album1" / "b.txt").write_text("second song\n\n\n")
    (root / "album1" / "a.txt").write_text("first song\n")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff\0\0JFIF")
    (root / "notes.md").write_text("not a song")
    (root / ".draft.txt").write_text("hidden")
    extra = tmp_path / "bonus.txt"
    extra.write_text("bonus\n")
    (root / "album1" / "secret.txt").symlink_to(extra)  # leads outside the folder
    (root / "album1" / "gone.txt").symlink_to(root / "deleted.txt")
    (root / "album1" / "again.txt").symlink_to(root / "notes.md")  # inside: read (once)
    docs = collect_documents([root, extra])
    assert [p.name for p in docs.files] == ["a.txt", "again.txt", "b.txt", "bonus.txt"]
    assert docs.skipped() == {"hidden": 2, "binary": 1,
                              "link(s) broken or leading outside the folder": 2,
                              "the same file again": 1}
    assert read_documents(docs) == "first song\n\nnot a song\n\nsecond song\n\nbonus\n"
    songs = collect_documents([root], glob="*.txt")
    assert [p.name for p in songs.files] == ["a.txt", "again.txt", "b.txt"]
    assert songs.skipped() == {"hidden": 2, "not matching the glob": 2,
                               "link(s) broken or leading outside the folder": 2}
    two_songs = collect_documents([root / "album1" / "a.txt", root / "album1" / "b.txt"])
    assert read_documents(two_songs, separator="\n<|end|>\n") == \
        "first song\n<|end|>\nsecond song\n"
    with pytest.raises(TextgenError, match="no text files found"):
        collect_documents([root], glob="*.py")
    assert unescape(r"\n---\n\t\\") == "\n---\n\t\\"


def test_train_on_a_folder_records_the_documents(cli, tmp_path):
    from tests.conftest import TINY_GENERATOR, TINY_TEXT

    root = tmp_path / "plays"
    (root / "act1").mkdir(parents=True)
    (root / "act1" / "scene1.txt").write_text(TINY_TEXT[:200])
    (root / "act2.txt").write_text(TINY_TEXT[200:], encoding="utf-8")
    (root / "poster.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    ckpt = tmp_path / "ck"
    result = cli("train", str(root), "--epochs", "1", *TINY_GENERATOR, "--doc-separator",
                 r"\n\n~\n\n", "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 0, result.stderr
    assert "read 2 files" in result.stderr and "skipped 1 binary" in result.stderr
    meta = json.loads((ckpt / "plays" / "run.json").read_text())
    assert meta["documents"] == 2 and meta["doc_separator"] == "\n\n~\n\n"
    assert meta["skipped"] == {"binary": 1}
    first, second = TINY_TEXT[:200].rstrip("\n"), TINY_TEXT[200:].rstrip("\n")
    assert meta["corpus_chars"] == len(first) + len("\n\n~\n\n") + len(second) + 1
    vocab = json.loads((ckpt / "plays" / "vocab.json").read_text())
    assert "~" in vocab


def test_a_resume_with_other_classes_says_so_before_naming_the_data(tmp_path):
    """Resumed without the --classes it was trained with, a run's rows differ too: the error
    names the classes, the cause the user can act on."""
    from textgen.classify.train import ClassifierRecipe
    from textgen.runs import RunDir

    path = tmp_path / "r.csv"
    path.write_text("text,label\n" + "".join(f"word{i} here,{label}\n"
                                              for i, label in enumerate("abcc" * 6)))
    trained = ClassifierRecipe(path, ["a", "b"])
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = trained.new_config({})
    run.write_meta({"mode": "classify", "data": str(path), "config": config.to_dict(),
                    "training": {"epochs_done": 1, "steps_per_epoch": 4, "batch_size": 8},
                    "data_sha256": trained.facts["data_sha256"]})
    trained.check_resume(config, run)  # the same data and classes: fine
    with pytest.raises(TextgenError, match=r"classes \['a', 'b', 'c'\] differ from the run's"):
        ClassifierRecipe(path, None).check_resume(config, run)


def test_the_validation_split_holds_out_each_class_and_keeps_one_of_each_to_train(tmp_path):
    """A class of one example is never held out whole (it could not be learnt); each class
    gives its share; a run begun before the split went by class is resumed on its own split."""
    from textgen.classify.data import SplitRule, held_out_counts, split_indices
    from textgen.classify.train import FEW_EXAMPLES, ClassifierRecipe
    from textgen.runs import RunDir

    labels = np.array([0] * 300 + [1] * 40 + [2])
    for seed in range(20):
        train, val = split_indices(labels, 0.1, seed)
        assert sorted(np.concatenate([train, val])) == list(range(len(labels)))
        assert list(np.bincount(labels[val], minlength=3)) == [30, 4, 0]
        assert 340 in train  # the lone example of class 2
    # As many as the plan counts (int(total x share)), shared by largest remainder.
    assert held_out_counts(np.array([4] * 10), 0.1) == [1] * 4 + [0] * 6
    assert held_out_counts(np.array([5, 15, 25]), 0.1) == [1, 1, 2]
    assert held_out_counts(np.array([1, 1]), 0.5) == [0, 0]
    again = split_indices(labels, 0.1, 7)
    assert all((a == b).all() for a, b in zip(again, split_indices(labels, 0.1, 7), strict=True))
    old_train, old_val = split_indices(labels, 0.1, 7, SplitRule.permutation)
    order = np.random.default_rng(7).permutation(len(labels))
    assert (old_val == order[-34:]).all() and (old_train == order[:-34]).all()

    path = tmp_path / "r.csv"
    path.write_text("text,label\n" + "".join(f"word{i} here,{label}\n" for i, label in
                                              enumerate(["a"] * 20 + ["b"] * 20 + ["c"])))
    recipe = ClassifierRecipe(path, None)
    assert recipe.facts["split"] == "by_text"
    assert f"1 class with under {FEW_EXAMPLES} examples: 'c' (1)" in recipe.data_notes[0]
    assert "any score for them rests on one or two texts" in recipe.data_notes[0]
    # listed in the classes' order, by value (they were listed alphabetically: '10' first)
    numbers = tmp_path / "n.csv"
    numbers.write_text("text,label\n" + "".join(f"word{i} here,{label}\n" for i, label in
                                               enumerate(["1"] * 20 + ["10", "2"] * 3)))
    assert "2 classes with under 5 examples: '2' (3), '10' (3);" in ClassifierRecipe(
        numbers, None).data_notes[0]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = recipe.new_config({})
    run.write_meta({"mode": "classify", "data": str(path), "config": config.to_dict(),
                    "training": {"epochs_done": 1, "steps_per_epoch": 4, "batch_size": 8},
                    "data_sha256": recipe.facts["data_sha256"]})  # no "split": an older run
    recipe.check_resume(config, run)
    assert recipe.facts["split"] == "permutation"


def test_copies_of_a_text_stay_on_one_side_of_the_validation_split(cli, tmp_path):
    """Each text written three times scored val accuracy 1.000 on random labels (0.40 on new
    texts): the split put copies on both sides. Without copies the split is the same as by
    class, so no split of an earlier run changes; with them, each class's share is still
    filled (in rows) and never takes a class's last example."""
    from textgen.classify.data import SplitRule, split_indices
    from textgen.classify.train import ClassifierRecipe

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    unique = [f"text {i}" for i in range(400)]
    assert all((a == b).all() for a, b in zip(
        split_indices(labels, 0.1, 7), split_indices(labels, 0.1, 7, SplitRule.by_text, unique),
        strict=True))
    texts = [f"text {i % 100}" for i in range(300)]
    train, val = split_indices(np.array([i % 100 % 2 for i in range(300)]), 0.2, 7,
                               SplitRule.by_text, texts)
    assert sorted([*train, *val]) == list(range(300)) and len(val) == 60
    assert not {texts[i] for i in train} & {texts[i] for i in val}
    one_text_100_times = ["same"] * 100 + [f"u{i}" for i in range(200)]
    for seed in range(5):  # the share is of rows: 30, never the 100 copies at once
        _, val = split_indices(np.zeros(300, int), 0.1, seed, SplitRule.by_text,
                               one_text_100_times)
        assert len(val) == 30
    # class 1's one example repeats a text of class 0: it stays in training all the same
    for seed in range(10):
        train, _ = split_indices(np.array([0] * 20 + [1]), 0.5, seed, SplitRule.by_text,
                                 [f"t{i}" for i in range(20)] + ["t0"])
        assert 20 in train

    path = tmp_path / "copies.csv"
    path.write_text("text,label\n" + "".join(f"word{i} here,{'ab'[i % 2]}\n" * 3
                                              for i in range(20)) + "word0 here,b\n")
    ckpt = str(tmp_path / "ck")
    held = cli("classify", "train", str(path), "--val-split", "0.2", "--epochs", "1",
               "--checkpoint-dir", ckpt)
    assert held.exit_code == 0, held.stderr
    assert ("note: 41 examples repeat an earlier one's text (1 text is given under two or more "
            "labels: no model gets every copy right); the validation split keeps each text's "
            "copies on one side") in " ".join(held.stderr.split())
    unsplit = cli("classify", "train", str(path), "--epochs", "1", "--run-name", "all",
                  "--checkpoint-dir", ckpt)  # 61 rows: no validation split, no such note
    assert unsplit.exit_code == 0 and "repeat an earlier" not in unsplit.stderr
    unspaced = tmp_path / "zh.csv"
    unspaced.write_text("text,label\n" + "".join(  # punctuation splits them, not enough
        f"这部电影真的很{'好差'[i % 2]}看，第{i}次看。,{'ab'[i % 2]}\n" for i in range(20)))
    assert ClassifierRecipe(unspaced, None).data_notes == [
        "20 of the 20 texts are written without spaces (Chinese, Japanese, Thai...): the "
        "classifier splits words at white space and punctuation, so it learns their phrases "
        "only whole; put spaces between the words"]
    segmented = tmp_path / "segmented.csv"  # the words spaced: no note
    segmented.write_text("text,label\n" + "".join(
        f"这部 电影 真的 很 {'好差'[i % 2]}看 {i},{'ab'[i % 2]}\n" for i in range(20)))
    assert ClassifierRecipe(segmented, None).data_notes == []
    names = tmp_path / "names.csv"  # one long word each, in a script with spaces: no note
    names.write_text("text,label\n" + "".join(f"Alexander{i},{'ab'[i % 2]}\n"
                                              for i in range(20)))
    assert ClassifierRecipe(names, None).data_notes == []


def test_a_batch_larger_than_the_data_sets_the_rate_of_the_batch_it_fills():
    """--batch-size 1000 on 40 examples of five classes chose a rate 25 times too high (160)
    and said '1,000 steps of 1000'."""
    from textgen.classify.sizing import DataSize, choose_training

    data = DataSize(40, 8, 5, (8,) * 5)
    filled = choose_training(data, {"batch_size": 40})
    larger = choose_training(data, {"batch_size": 1000})
    assert larger.values["learning_rate"] == filled.values["learning_rate"]
    assert "steps of 40" in larger.reason and "at most 8 words long" in larger.reason
    assert "at most 1 word long" in choose_training(DataSize(40, 1, 2, (20, 20)), {}).reason


@pytest.mark.parametrize("name,content,message", [
    ("sheet.csv", b"PK\x03\x04\x14\x00\x06\x00" + b"x" * 50,
     "a ZIP archive (an Excel .xlsx, a Word .docx or a .zip?), not text; save it as CSV"),
    ("old.tsv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 50, "an old Office file"),
    ("scan.jsonl", b"%PDF-1.7\n" + b"x" * 50, "a PDF, not text"),
    ("nul.csv", b"text,label\nab\0c,pos\n", "a binary file (a NUL byte in its first 8,192"),
    ("semi.csv", b"text;label\nhello there;pos\n", "the header 'text;label' is separated "
                                                    "by ';', not ','"),
    ("tabs.csv", b"text\tlabel\nhello there\tpos\n", "the header 'text\\tlabel' is separated "
                                                       "by tabs, not ','; name the file .tsv"),
])
def test_a_table_that_is_a_spreadsheet_a_binary_or_semicolon_separated_is_named(
        tmp_path, name, content, message):
    from textgen.classify.tables import read_table
    from textgen.reading import DEFAULT_DECODING

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TextgenError) as error:
        read_table(path, DEFAULT_DECODING)
    assert message in str(error.value) and str(error.value).startswith(str(path))


def test_a_text_file_that_is_a_spreadsheet_is_named_before_training(tmp_path):
    from textgen.reading import read_text

    path = tmp_path / "speech.txt"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(TextgenError, match=r"a ZIP archive .*save it as plain text \(\.txt\)"):
        read_text(path)


def test_json_numbers_that_are_equal_are_one_label(tmp_path):
    from textgen.classify.tables import read_table
    from textgen.reading import DEFAULT_DECODING

    path = tmp_path / "numbers.jsonl"
    path.write_text('{"text": "a b", "label": 1}\n{"text": "c d", "label": 1.0}\n'
                    '{"text": "e f", "label": 0}\n{"text": "g h", "label": 0.5}\n')
    assert read_table(path, DEFAULT_DECODING).labels == ["1", "1", "0", "0.5"]
    # as a CSV writes them: never through a float (two 20-digit labels were one class, named
    # a number neither row holds), 5,000 digits and 1e400 no error; lines end at \r too;
    # the other columns keep their numbers (predict --json shows them)
    long = tmp_path / "long.jsonl"
    long.write_text('{"text": "a", "label": 12345678901234567891.0, "id": 5, "x": [1.5]}\n'
                    '{"text": "b",\r"label": 12345678901234567892, "id": 1e400}\r\n'
                    f'{{"text": "c", "label": {"9" * 5000}}}\n{{"text": "d", "label": 1e400}}')
    table = read_table(long, DEFAULT_DECODING)
    assert table.labels == ["12345678901234567891", "12345678901234567892", "9" * 5000, "1e400"]
    assert table.lines == [1, 2, 3, 4]
    assert table.others[0] == {"label": 12345678901234567891.0, "id": 5, "x": [1.5]}
    assert table.others[1]["id"] == "1e400"  # past a float: as written
    old_mac = tmp_path / "mac.jsonl"  # no \n at all: lines end at \r
    old_mac.write_text('{"text": "a", "label": "x"}\r{"text": "b", "label": "y"}\r')
    assert read_table(old_mac, DEFAULT_DECODING).labels == ["x", "y"]
    old_mac.write_text('{"text": "a", "label": "x"}\r{"text": "b", "label": "y"}\r\n')  # mixed
    assert read_table(old_mac, DEFAULT_DECODING).labels == ["x", "y"]
    # half a surrogate pair in a column not read: trained on (scraped data cuts emoji), but
    # predict, which writes every column back, refuses it
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"text": "a", "label": "x", "id": "3\\ud800"}\n')
    assert read_table(cut, DEFAULT_DECODING).labels == ["x"]
    with pytest.raises(TextgenError, match="cut.jsonl:1: the escape \\\\ud800 is half"):
        read_table(cut, DEFAULT_DECODING, labels=False)


def test_a_csv_label_written_with_a_point_is_the_whole_number(tmp_path):
    """pandas writes an integer column with a missing value as floats: 1.0 is class 1."""
    from textgen.classify.data import read_table_examples
    from textgen.classify.tables import read_table
    from textgen.reading import DEFAULT_DECODING

    path = tmp_path / "stars.csv"
    path.write_text("text,label\na b,1\nc d,1.0\ne f, 2.00 \ng h,2.5\ni j,10.\nk l,1.0.0\n"
                    "m n,01\no p,+1\nq r,2.50\ns t,-0.0\nu v,\u0663\n", encoding="utf-8")
    assert read_table(path, DEFAULT_DECODING).labels == [  # 01 was a class of its own
        "1", "1", "2", "2.5", "10", "1.0.0", "1", "1", "2.5", "0", "\u0663"]
    # written as text, never rounded: 34 digits kept, 5,000 no error (Python's int() limit)
    long = tmp_path / "long.csv"
    tiny = "0.12345678901234567890123456789011"
    long.write_text(f"text,label\na b,{tiny}\nc d,{tiny[:-1]}2\ne f,{'9' * 5000}\n")
    assert read_table(long, DEFAULT_DECODING).labels == [tiny, tiny[:-1] + "2", "9" * 5000]
    # JSON's exponents: 1e3 is 1000, one class (they were two), in a table as in JSON Lines
    jsonl = tmp_path / "stars.jsonl"
    jsonl.write_text('{"text": "a", "label": 1e3}\n{"text": "b", "label": 1000}\n'
                     '{"text": "c", "label": 2.5E-1}\n{"text": "d", "label": "1e2"}\n'
                     '{"text": "e", "label": 1e999}\n'
                     f'{{"text": "f", "label": 1e{"1" * 5001}}}\n'  # int() refused it: a bug
                     f'{{"text": "g", "label": 1e{"0" * 5000}2}}\n')  # and so, its zeros
    assert read_table(jsonl, DEFAULT_DECODING).labels == ["1000", "1000", "0.25", "100",
                                                          "1e999", f"1e{'1' * 5001}", "100"]
    # a model whose classes were named as written (1.0) reads them still
    old = read_table_examples(path, ["1.0", "2"], known_classes=True)
    assert old.counts == {"1.0": 4, "2": 1}
    assert old.left_out == {"2.5": 2, "10": 1, "1.0.0": 1, "0": 1, "\u0663": 1}


def test_a_split_that_holds_out_nothing_says_so_and_watches_the_training_loss(cli, tmp_path):
    path = tmp_path / "five.csv"
    path.write_text("text,label\n" + "".join(f"good{i} fine,{'ab'[i % 2]}\n" for i in range(5)))
    result = cli("classify", "train", str(path), "--val-split", "0.1", "--epochs", "1",
                 "--lr-schedule", "plateau", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    assert "--val-split 0.1 holds out none of so few examples" in result.stderr
    assert "val_loss which is not available" not in result.stderr  # the plateau's warning
    meta = json.loads((tmp_path / "ck" / "five" / "run.json").read_text())
    assert meta["training"]["monitor"] == "loss"


def test_a_pdf_among_texts_is_named_or_skipped_like_a_binary(tmp_path):
    """A PDF holds no NUL byte early on: named when given, skipped (and counted) in a folder,
    never trained on as latin-1."""
    from tests.conftest import TINY_TEXT
    from textgen.reading import collect_documents, read_documents

    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(TINY_TEXT, encoding="utf-8")
    (folder / "b.txt").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    docs = collect_documents([folder])
    assert [p.name for p in docs.files] == ["a.txt"] and docs.skipped_binary == 1
    listed = collect_documents([folder / "a.txt", folder / "b.txt"])
    with pytest.raises(TextgenError, match=r"b\.txt: a PDF, not text"):
        read_documents(listed)


def test_a_class_folders_sub_folders_are_named_and_its_images_are_told_to_go(tmp_path):
    """A class's examples are its own files: files in its sub-folders are not read, and a
    note says which (they were skipped silently); an image in it is not an example, and the
    error says to remove it, not to 'save it as plain text' as for a text given by name."""
    from textgen.classify.data import read_class_folders
    from textgen.classify.train import ClassifierRecipe

    root = write_reviews(tmp_path / "data", {"neg": 6, "pos": 6})
    (root / "pos" / "more").mkdir()
    (root / "pos" / "more" / "deep.txt").write_text("a wonderful film")
    recipe = ClassifierRecipe(root, None)
    assert recipe.data.counts == {"neg": 6, "pos": 6}
    assert recipe.data_notes == ["sub-folders of class folders are not read: pos/more/; move "
                                 "their files into the class folder to train on them"]
    (root / "neg" / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(TextgenError, match=r"cover.png: a PNG image, not a text; remove it from "
                                           r"the class folder"):
        read_class_folders(root)


def test_numeric_labels_are_classes_in_the_order_of_their_values(tmp_path):
    """Star ratings were classes 1, 10, 2, ... 9 (sorted as text) in every report."""
    from textgen.classify.data import read_table_examples

    table = tmp_path / "stars.csv"
    table.write_text("text,label\n" + "".join(f"review {i},{i % 10 + 1}\n" for i in range(30)))
    assert read_table_examples(table).classes == tuple(str(n) for n in range(1, 11))
    words = tmp_path / "moods.csv"
    words.write_text("text,label\na,pos\nb,neg\nc,10\n")
    assert read_table_examples(words).classes == ("10", "neg", "pos")  # not all numbers
    # exactly, as the labels are kept: past a float's range or its precision
    from textgen.classify.data import class_order

    assert class_order(["2", "10", "9" * 400]) == ["2", "10", "9" * 400]  # inf: alphabetical
    tiny = "-0.1000000000000000000"
    assert class_order([tiny + "2", tiny + "1"]) == [tiny + "2", tiny + "1"]
