"""Classify mode: loading review folders, the model, metrics, the CLI and its errors."""

from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED
from textgen.errors import TextgenError
from textgen.reviews import bundled_reviews_path, load_split, locate

POSITIVE = ["wonderful", "brilliant", "loved", "superb", "delightful", "moving", "masterpiece"]
NEGATIVE = ["awful", "boring", "hated", "dreadful", "tedious", "waste", "mess"]
NEUTRAL = ["the", "film", "plot", "actor", "scene", "story", "director", "music", "it", "was"]


def write_reviews(root: Path, per_class: dict[str, int], seed: int = 0,
                  words: dict[str, list[str]] | None = None) -> Path:
    """An easy synthetic data set: each class has its own telltale words among neutral ones."""
    words = words or {"pos": POSITIVE, "neg": NEGATIVE}
    rng = random.Random(seed)
    for name, count in per_class.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            tokens = rng.choices(NEUTRAL, k=8) + rng.choices(words[name], k=2)
            rng.shuffle(tokens)
            (folder / f"{i}_{name}.txt").write_text(" ".join(tokens) + ".", encoding="utf-8")
    return root


def test_loader_finds_classes_ignores_unsup_and_removes_html_breaks(tmp_path):
    root = write_reviews(tmp_path / "train", {"neg": 5, "pos": 5})
    (root / "unsup").mkdir()
    (root / "unsup" / "0.txt").write_text("unlabelled", encoding="utf-8")
    (root / "pos" / "br.txt").write_text("Great<br /><br />fun", encoding="utf-8")
    folders = locate(tmp_path)
    assert folders.classes == ("neg", "pos") and folders.test is None
    assert folders.counts == {"neg": 5, "pos": 6}
    train, val = load_split(folders.train, folders.classes, val_split=0.2, seed=1, batch_size=4)
    texts = [t.decode() for batch, _ in train for t in batch.numpy()]
    val_texts = [t.decode() for batch, _ in val for t in batch.numpy()]
    assert len(texts) == 9 and len(val_texts) == 2  # 11 files, 20% held out
    assert not set(texts) & set(val_texts)
    everything = texts + val_texts
    assert "unlabelled" not in everything
    assert "Great  fun" in everything and not any("<br" in t for t in everything)


def test_root_with_train_and_test_is_found(tmp_path):
    write_reviews(tmp_path / "train", {"neg": 3, "pos": 3})
    write_reviews(tmp_path / "test", {"neg": 2, "pos": 2})
    folders = locate(tmp_path)
    assert folders.train == tmp_path / "train" and folders.test == tmp_path / "test"


def test_bundled_reviews_are_balanced():
    folders = locate(bundled_reviews_path())
    assert folders.classes == ("neg", "pos") and folders.counts == {"neg": 120, "pos": 120}
    assert folders.test is not None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "no such folder"),
        (lambda root: write_reviews(root, {"pos": 3}), "at least two class subfolders"),
        (lambda root: (write_reviews(root, {"pos": 3}), (root / "neg").mkdir()),
         "class 'neg' has no .txt files"),
        (lambda root: (write_reviews(root, {"pos": 3, "neg": 3}),
                       (root / "neg" / "bad.txt").write_bytes(b"\xff\xfe bad")),
         "not valid UTF-8"),
    ],
)
def test_bad_folders_give_clear_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(TextgenError, match=message):
        locate(root)


def test_classes_option_picks_folders(tmp_path):
    write_reviews(tmp_path, {"neg": 2, "pos": 2, "meh": 2},
                  words={"neg": NEGATIVE, "pos": POSITIVE, "meh": NEUTRAL})
    assert locate(tmp_path, ["neg", "pos"]).classes == ("neg", "pos")
    with pytest.raises(TextgenError, match="class folder not found"):
        locate(tmp_path, ["neg", "nope"])


@pytest.mark.parametrize(("classes", "width"), [(["neg", "pos"], 1), (["a", "b", "c"], 3)])
def test_model_output_shapes(classes, width):
    import tensorflow as tf

    from textgen.classifier import ClassifierConfig, build_classifier

    config = ClassifierConfig(class_names=classes, max_tokens=50, seq_length=8, embed_dim=4,
                              units=4)
    texts = tf.data.Dataset.from_tensor_slices(["good film", "bad film", "meh"]).batch(2)
    model = build_classifier(config, texts)
    out = model.predict(tf.constant(["a good film", "Bad!<br />film", "x"]), verbose=0)
    assert out.shape == (3, width)
    assert np.all((out >= 0) & (out <= 1))
    if width > 1:
        assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_metrics_match_hand_computed_values():
    from textgen.classifier import Metrics

    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1])
    m = Metrics.from_labels(y_true, y_pred, ["a", "b", "c"])
    assert m.confusion.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    assert m.accuracy == pytest.approx(6 / 9)
    per = m.per_class()
    assert per["a"]["precision"] == pytest.approx(2 / 3)
    assert per["a"]["recall"] == pytest.approx(2 / 3)
    assert per["b"]["precision"] == pytest.approx(2 / 4)
    assert per["b"]["recall"] == pytest.approx(1.0)
    assert per["b"]["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert per["c"]["precision"] == pytest.approx(1.0) and per["c"]["recall"] == pytest.approx(0.5)
    assert per["c"]["support"] == 4


@pytest.fixture(scope="module")
def easy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("easy")
    write_reviews(root / "train", {"neg": 60, "pos": 60}, seed=1)
    write_reviews(root / "test", {"neg": 20, "pos": 20}, seed=2)
    return root


def test_cli_train_evaluate_predict_on_an_easy_task(cli, easy_data, tmp_path):
    ckpt = str(tmp_path / "ck")
    train = cli("classify", "train", str(easy_data), "--epochs", "8", "--max-tokens", "100",
                "--seq-length", "12", "--embed-dim", "16", "--units", "16", "--batch-size", "16",
                "--learning-rate", "0.01", "--checkpoint-dir", ckpt)
    assert train.exit_code == 0, train.stderr
    assert "test accuracy" in train.stderr
    run = tmp_path / "ck" / easy_data.name
    assert (run / "best.keras").is_file() and (run / "history.csv").is_file()

    evaluation = cli("classify", "evaluate", str(easy_data / "test"), "--json",
                     "--checkpoint-dir", ckpt)
    assert evaluation.exit_code == 0, evaluation.stderr
    metrics = json.loads(evaluation.stdout)
    assert metrics["accuracy"] >= 0.9 and metrics["examples"] == 40
    assert sum(map(sum, metrics["confusion_matrix"])) == 40
    table = cli("classify", "evaluate", str(easy_data), "--checkpoint-dir", ckpt)
    assert "precision" in table.stdout and "confusion matrix" in table.stdout

    predicted = cli("classify", "predict", "a wonderful brilliant film", "an awful boring mess",
                    "--checkpoint-dir", ckpt)
    assert predicted.exit_code == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    assert all(0.5 <= float(line.split("\t")[1]) <= 1 for line in lines)


def test_predict_reads_stdin_and_files_and_prints_json(cli, easy_data, tmp_path, monkeypatch):
    import io

    ckpt = str(tmp_path / "ck")
    assert cli("classify", "train", str(easy_data / "train"), "--epochs", "1",
               "--max-tokens", "100", "--seq-length", "12", "--units", "8",
               "--checkpoint-dir", ckpt, "--run-name", "easy").exit_code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("loved it\nhated it\n\n"))
    result = cli("classify", "predict", "-", "--json", "--checkpoint-dir", ckpt)
    data = json.loads(result.stdout)
    assert [d["text"] for d in data] == ["loved it", "hated it"]
    assert {"label", "probability", "probabilities"} <= set(data[0])
    lines = tmp_path / "lines.txt"
    lines.write_text("one\ntwo\nthree\n", encoding="utf-8")
    from_file = cli("classify", "predict", "--file", str(lines), "--checkpoint-dir", ckpt)
    assert len(from_file.stdout.strip().splitlines()) == 3


def test_modes_do_not_mix(cli, tiny_run, easy_data, tmp_path):
    ckpt = tmp_path / "ck"
    assert cli("classify", "train", str(easy_data / "train"), "--epochs", "1", "--units", "4",
               "--max-tokens", "50", "--checkpoint-dir", str(ckpt), "--run-name", "clf"
               ).exit_code == 0
    sample = cli("sample", "--model", str(ckpt / "clf"))
    assert sample.exit_code == 2 and "is a classify run" in sample.stderr
    predict = cli("classify", "predict", "hello", "--model", str(tiny_run.path))
    assert predict.exit_code == 2 and "is a generate run" in predict.stderr
    none = cli("classify", "predict", "hi", "--checkpoint-dir", str(tmp_path / "nothing"))
    assert none.exit_code == 2 and "textgen classify train" in none.stderr


def test_cli_errors_for_bad_folders(cli, tmp_path):
    missing = cli("classify", "train", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = cli("classify", "train", "--classes", "pos")
    assert bad.exit_code == 2 and "--classes needs two" in bad.stderr


def _extract_imdb_subset(archive: Path, dest: Path, per_class_train: int, per_class_test: int):
    """Pull a balanced subset of aclImdb out of the tarball (without unpacking all of it)."""
    wanted = {("train", "pos"): per_class_train, ("train", "neg"): per_class_train,
              ("test", "pos"): per_class_test, ("test", "neg"): per_class_test}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if len(parts) != 4 or not member.isfile():
                continue
            key = (parts[1], parts[2])
            if wanted.get(key, 0) > 0:
                wanted[key] -= 1
                target = dest / parts[1] / parts[2] / parts[3]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
            if not any(wanted.values()):
                break


@pytest.mark.slow
def test_imdb_subset_reaches_80_percent(cli, tmp_path):
    archive = SHARED / "datasets" / "imdb.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (the shared IMDb data set is not on this machine)")
    data = tmp_path / "imdb"
    _extract_imdb_subset(archive, data, per_class_train=2500, per_class_test=1000)
    result = cli("classify", "train", str(data), "--epochs", "4", "--batch-size", "64",
                 "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(cli("classify", "evaluate", str(data / "test"), "--json",
                             "--checkpoint-dir", str(tmp_path / "ck")).stdout)
    assert metrics["accuracy"] >= 0.80, metrics


def test_last_tokens_keeps_the_end_of_each_review():
    import keras

    from textgen.classifier import LastTokens

    ids = np.array([[5, 6, 7, 8, 0, 0], [9, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    out = keras.ops.convert_to_numpy(LastTokens(3)(ids))
    assert out.tolist() == [[6, 7, 8], [9, 0, 0], [4, 5, 6]]
    empty = keras.ops.convert_to_numpy(LastTokens(2)(np.zeros((2, 0), dtype="int64")))
    assert empty.tolist() == [[0, 0], [0, 0]]
