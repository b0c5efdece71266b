"""Reading texts, the vocabulary, the position split and the per-batch windows."""

from __future__ import annotations

import re

import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.generate.data import (
    MIN_STEPS_PER_EPOCH,
    Vocabulary,
    bundled_corpus_path,
    evaluation_dataset,
    split_by_position,
    steps_per_epoch,
    training_dataset,
)
from textgen.reading import read_text


def test_bundled_corpus_is_the_othello_speech():
    text = read_text(bundled_corpus_path())
    assert text.startswith("Her father loved me; oft invited me;")
    assert text.rstrip().endswith("Here comes the lady; let her witness it.")


def test_crlf_and_cr_are_normalised(tmp_path):
    path = tmp_path / "dos.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n")
    assert read_text(path) == "one\ntwo\nthree\n"


def test_utf8_text_with_bom_and_emoji(tmp_path):
    path = tmp_path / "u.txt"
    path.write_bytes("\ufeffcafé ☕ 🎭\n".encode())
    text = read_text(path)
    assert text == "café ☕ 🎭\n"
    vocab = Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"abc\xffdef"), "offset 3"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, setup, message):
    path = tmp_path / "corpus.txt"
    setup(path)
    with pytest.raises(TextgenError) as info:
        read_text(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_vocabulary_is_sorted_stable_and_round_trips():
    vocab = Vocabulary.from_text("hello world")
    assert vocab.chars == (" ", "d", "e", "h", "l", "o", "r", "w")
    assert Vocabulary.from_text("world hello") == vocab
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    ids = vocab.encode("hello")
    assert ids.tolist() == [3, 2, 4, 4, 5]
    assert vocab.decode(ids) == "hello"


def test_encoding_unknown_characters_names_them():
    vocab = Vocabulary.from_text("abc")
    assert vocab.unknown("abxyx") == ["x", "y"]
    with pytest.raises(TextgenError, match="'x'"):
        vocab.encode("abx")


def test_split_keeps_the_last_fraction_for_validation():
    ids = np.arange(1000, dtype=np.uint16)
    split = split_by_position(ids, seq_length=10, val_split=0.1)
    assert len(split.train) == 900 and len(split.validation) == 100
    assert split.validation[0] == 900  # by position, not shuffled


def test_corpus_shorter_than_a_window_is_refused():
    with pytest.raises(TextgenError) as info:
        split_by_position(np.zeros(50, dtype=np.uint16), seq_length=100, val_split=0.1)
    assert re.search("too short.*smaller --seq-length or a longer", info.value.for_cli())
    assert re.search("too short.*smaller seq_length or a longer", str(info.value))
    # Held out by a large --val-split: that is what to lower.
    with pytest.raises(TextgenError) as info:
        split_by_position(np.zeros(3000, dtype=np.uint16), seq_length=100, val_split=0.99)
    assert re.search("plus 2,970 for validation.*a smaller --val-split", info.value.for_cli())
    # Long enough for training alone: holding nothing out is the way (it was not said).
    with pytest.raises(TextgenError) as info:
        split_by_position(np.zeros(150, dtype=np.uint16), seq_length=100, val_split=0.1)
    assert ("use a smaller --seq-length, --val-split 0 (no validation figure) or a longer "
            "text") in info.value.for_cli()
    assert len(split_by_position(np.zeros(150, dtype=np.uint16), 100, 0.0).train) == 150
    with pytest.raises(TextgenError) as info:  # no smaller share would do: none would
        split_by_position(np.zeros(180, dtype=np.uint16), seq_length=100, val_split=0.9)
    assert "--val-split 0 (no validation figure)" in info.value.for_cli()


def test_a_file_whose_every_byte_was_dropped_by_ignore_is_not_called_empty(tmp_path):
    from textgen.reading import Decoding, read_text

    path = tmp_path / "allbad.bin"
    path.write_bytes(b"\xff\xfe\xfa\xfb" * 3)
    with pytest.raises(TextgenError) as info:
        read_text(path, Decoding("utf-8", "ignore"))
    assert info.value.for_cli() == (f"{path}: none of its 12 bytes is utf-8 text (decode errors "
                                    "ignored dropped them all); give its real --encoding")
    from textgen.classify.data import read_class_folders  # a class folder's example too

    for name in ("neg", "pos"):
        (tmp_path / "cf" / name).mkdir(parents=True)
        (tmp_path / "cf" / name / "a.txt").write_text("fine words")
    (tmp_path / "cf" / "pos" / "b.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(TextgenError, match="b.txt: none of its 3 bytes is utf-8 text"):
        read_class_folders(tmp_path / "cf", decoding=Decoding("utf-8", "ignore"))
    bom = tmp_path / "bom.txt"  # an empty file saved with a byte-order mark is empty
    bom.write_bytes(b"\xef\xbb\xbf")
    for decoding in (Decoding(), Decoding("utf-8", "ignore")):
        with pytest.raises(TextgenError, match="the file is empty"):
            read_text(bom, decoding)


def test_short_texts_still_get_enough_steps_per_epoch():
    assert steps_per_epoch(2000, 100, 64) == MIN_STEPS_PER_EPOCH
    assert steps_per_epoch(1_000_000, 100, 64) == 157


def test_training_windows_predict_the_next_character_at_every_position():
    text = "abcdefghijklmnopqrstuvwxyz" * 20
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    x, y = next(iter(training_dataset(ids, seq_length=12, batch_size=5, vocab_size=26, seed=0)))
    x, y = x.numpy(), y.numpy()
    assert x.shape == (5, 12) and y.shape == (5, 12, 26)
    assert set(np.unique(y)) == {0.0, 1.0} and np.all(y.sum(axis=-1) == 1)  # one-hot
    targets = y.argmax(axis=-1)
    assert np.all(targets[:, :-1] == x[:, 1:])  # target i is input i + 1
    assert np.all(targets == (x + 1) % 26)  # the alphabet's next letter


def test_training_offsets_are_seeded_and_vary():
    ids = np.arange(5000, dtype=np.uint16) % 50
    def starts(seed):
        return [b[0][:, 0].numpy().tolist() for b in
                training_dataset(ids, 10, 4, 50, seed=seed).take(3)]
    assert starts(1) == starts(1)
    assert starts(1) != starts(2)


def test_one_hot_targets_keep_their_time_axis_for_length_one_windows():
    ids = np.arange(100, dtype=np.uint16) % 7
    x, y = next(iter(training_dataset(ids, seq_length=1, batch_size=3, vocab_size=7, seed=0)))
    assert x.shape == (3, 1) and y.shape == (3, 1, 7)


def test_evaluation_windows_cover_the_text_in_order():
    ids = np.arange(95, dtype=np.uint16)
    batches = list(evaluation_dataset(ids, seq_length=10, batch_size=4, vocab_size=95))
    xs = np.concatenate([b[0].numpy() for b in batches])
    weights = np.concatenate([b[2].numpy() for b in batches])
    # 94 predictions: 9 whole windows, then one ending with the text whose first 6 were scored
    assert xs.shape == (10, 10)
    assert xs[:, 0].tolist() == [*range(0, 90, 10), 84]
    assert (weights[-1, :6] == 0).all() and (weights > 0).sum() == 94
    assert weights.sum() == pytest.approx(xs.size)  # Keras' mean over windows is per character
    for cap, windows in ((3, 3), (9, 9), (10, 10)):  # the end window counts against the cap
        limited = evaluation_dataset(ids, seq_length=10, batch_size=4, vocab_size=95,
                                     max_windows=cap)
        assert sum(len(b[0]) for b in limited) == windows


@pytest.mark.parametrize("length", [95, 101, 186])
def test_evaluation_scores_every_prediction_once(length):
    """Keras' evaluate over the windows equals the mean cross-entropy of every character."""
    import keras

    vocab = 7
    ids = (np.arange(length, dtype=np.uint16) * 5 + np.arange(length) // 3) % vocab
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None,)), keras.layers.Embedding(vocab, 4),
                              keras.layers.Dense(vocab, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    probs = model.predict(ids[None, :-1].astype(np.int32), verbose=0)[0]
    expected = -np.log(probs[np.arange(length - 1), ids[1:]]).mean()
    data = evaluation_dataset(ids, seq_length=10, batch_size=4, vocab_size=vocab)
    assert model.evaluate(data, verbose=0) == pytest.approx(expected, rel=1e-5)
