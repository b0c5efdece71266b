"""Classify mode: loading review folders, the model, metrics, the CLI and its errors."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    SHARED,
    run_without_tensorflow,
    write_reviews,
)
from textgen.classify.data import bundled_reviews_path, load_split, locate
from textgen.errors import TextgenError


def test_loader_finds_classes_ignores_unsup_and_removes_html_breaks(tmp_path):
    root = write_reviews(tmp_path / "train", {"neg": 5, "pos": 5})
    (root / "unsup").mkdir()
    (root / "unsup" / "0.txt").write_text("unlabelled", encoding="utf-8")
    (root / "pos" / "br.txt").write_text("Great<br /><br />fun", encoding="utf-8")
    data = locate(tmp_path)
    assert data.classes == ("neg", "pos") and data.test is None
    assert data.counts == {"neg": 5, "pos": 6}
    train, val = load_split(data.train, val_split=0.2, seed=1, batch_size=4)
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
    data = locate(tmp_path)
    assert data.train.source == tmp_path / "train" and data.test.source == tmp_path / "test"
    assert data.test.counts == {"neg": 2, "pos": 2}


def test_a_test_folder_is_read_for_the_training_classes_it_holds(tmp_path):
    """As `classify evaluate` reads it: a class it lacks is no error, one the training data
    lacks is counted as left out."""
    words = {"pos": ["good"], "neg": ["bad"], "meh": ["fine"], "odd": ["strange"]}
    write_reviews(tmp_path / "train", {"neg": 3, "pos": 3, "meh": 3}, words=words)
    write_reviews(tmp_path / "test", {"neg": 2, "pos": 2, "odd": 3}, words=words)
    data = locate(tmp_path)
    assert data.classes == ("meh", "neg", "pos")
    assert data.test.counts == {"meh": 0, "neg": 2, "pos": 2} and data.test.left_out == {"odd": 3}


def test_classify_train_scores_the_test_folder_on_the_classes_the_model_knows(cli, tmp_path):
    words = {"pos": POSITIVE, "neg": NEGATIVE, "odd": ["strange"]}
    write_reviews(tmp_path / "train", {"neg": 8, "pos": 8}, words=words)
    write_reviews(tmp_path / "test", {"neg": 2, "pos": 2, "odd": 3}, words=words)
    train = cli("classify", "train", str(tmp_path), "--epochs", "1",
                "--checkpoint-dir", str(tmp_path / "ck"))
    assert train.exit_code == 0, train.stderr
    text = " ".join(train.stderr.split())
    assert ("note: test/: 3 examples of classes the model does not know were left out: odd (3); "
            "the figures are over the model's classes (neg, pos) only") in text
    assert "on 4 test examples" in text


def test_bundled_reviews_are_balanced():
    data = locate(bundled_reviews_path())
    assert data.classes == ("neg", "pos") and data.counts == {"neg": 120, "pos": 120}
    assert data.test is not None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "no such folder"),
        (lambda root: write_reviews(root, {"pos": 3}), "at least two class subfolders"),
        (lambda root: (write_reviews(root, {"pos": 3}), (root / "neg").mkdir()),
         "class 'neg' has no files"),
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


@pytest.mark.parametrize("arch", ["lstm", "ngrams"])
@pytest.mark.parametrize(("classes", "width"), [(["neg", "pos"], 1), (["a", "b", "c"], 3)])
def test_model_output_shapes(classes, width, arch):
    import tensorflow as tf

    from textgen.classify.config import ClassifierConfig
    from textgen.classify.model import build_classifier

    config = ClassifierConfig(class_names=classes, max_tokens=50, seq_length=8, embed_dim=4,
                              units=4, arch=arch)
    data = tf.data.Dataset.from_tensor_slices((["good film", "bad film", "meh"], [1, 0, 1]))
    model = build_classifier(config, data.batch(2))
    out = model.predict(tf.constant(["a good film", "Bad!<br />film", "x"]), verbose=0)
    assert out.shape == (3, width)
    assert np.all((out >= 0) & (out <= 1))
    if width > 1:
        assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(("arch", "bidirectional", "classes", "cell"), [
    ("lstm", False, ["neg", "pos"], "lstm"), ("lstm", True, ["neg", "pos"], "lstm"),
    ("lstm", False, ["a", "b", "c"], "lstm"), ("ngrams", False, ["neg", "pos"], "lstm"),
    ("lstm", True, ["neg", "pos"], "gru"), ("lstm", False, ["a", "b", "c"], "simplernn")])
def test_batched_prediction_matches_the_keras_model(arch, bidirectional, classes, cell,
                                                    tmp_path):
    """The NumPy classifier read from the saved file (no TensorFlow) and Keras' model.predict
    give the Keras model's probabilities: several batches, empty, unknown, upper-case and
    truncated texts, HTML breaks, both directions, each cell."""
    import keras
    import tensorflow as tf

    from textgen.classify import inference
    from textgen.classify.config import ClassifierConfig
    from textgen.classify.inference import NumpyClassifier
    from textgen.classify.model import build_classifier
    from textgen.classify.prediction import KerasClassifier

    config = ClassifierConfig(class_names=classes, max_tokens=50, seq_length=8, embed_dim=4,
                              units=4, arch=arch, bidirectional=bidirectional, cell=cell)
    words = ["good", "bad", "film", "plot", "acting", "great", "awful", "meh", "fine", "dull"]
    pairs = [" ".join(words[i : i + 3]) for i in range(8)]  # word pairs for the n-gram model
    data = tf.data.Dataset.from_tensor_slices((pairs, [i % len(classes) for i in range(8)]))
    model = build_classifier(config, data.batch(2))
    rng = np.random.default_rng(0)
    for weight in model.weights:  # large random weights: outputs far from uniform
        scale = 0.3 if weight.path.endswith("bias") else 1.0
        weight.assign(rng.normal(0, scale, weight.shape).astype("float32"))
    model.save(tmp_path / "model.keras")
    odd = ["Good!", "x", "ΟΔΟΣ", "FILM.", "bad<br />plot", "Ünïcode"]
    texts = [" ".join(rng.choice(words + odd, size=rng.integers(1, 12))) for _ in range(13)]
    texts += ["", "x", "Good!<br />film " * 30, "GOOD<BR/>bad"]
    saved = NumpyClassifier.read(tmp_path / "model.keras")
    assert saved is not None
    kind = inference.SequenceClassifier if arch == "lstm" else inference.NgramClassifier
    assert isinstance(saved.model, kind)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference, "BATCH_SIZE", 5)  # several batches, the last one partial
        probs = saved.probabilities(texts)
    predicted = KerasClassifier(model).probabilities(texts)
    direct = keras.ops.convert_to_numpy(model(tf.constant(texts), training=False))
    if direct.shape[-1] == 1:
        direct = np.concatenate([1 - direct, direct], axis=-1)
    assert probs.shape == (len(texts), len(classes))
    # The texts get different predictions, far more apart than the tolerance below.
    assert np.ptp(direct, axis=0).max() > 0.01
    np.testing.assert_allclose(probs, direct, atol=1e-5)
    np.testing.assert_allclose(predicted, direct, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert saved.probabilities([]).shape == (0, len(classes))


def test_words_are_the_saved_vectorizers_tokens():
    """The NumPy tokenizer splits as the saved TextVectorization does: Unicode lower-casing
    (final sigma, dotted I), HTML breaks, RE2's whitespace, letters/marks/digits only."""
    import tensorflow as tf

    from textgen.classify.inference import words
    from textgen.classify.model import standardize_review

    texts = ["İstanbul ΟΔΟΣ Σ ΑΣ. Straße ǅ ﬁ ẞ Ⅻ ＡＢ 𐐀 K Ω", "a\u0085b\u00a0c\u2028d<BR\u000b/>e",
             "<br\t/>f<br>g x_y 3.5 ½ ² don't", "", "  ", "café cafe\u0301 日本語です！",
             "z\x00A Wonderful\x00film"]  # TensorFlow's lower-casing stopped at a NUL
    expected = [t.decode().split() for t in standardize_review(tf.constant(texts)).numpy()]
    assert [words(t) for t in texts] == expected


def test_a_model_of_another_shape_is_predicted_through_keras(tmp_path):
    """A .keras file the NumPy reader does not reproduce (here a plain Dense on numbers, and
    a file that is not a model) gives None: prediction falls back to Keras."""
    import keras

    from textgen.classify.inference import NumpyClassifier

    inputs = keras.Input(shape=(3,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(tmp_path / "other.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    assert NumpyClassifier.read(tmp_path / "other.keras") is None
    assert NumpyClassifier.read(tmp_path / "broken.keras") is None


def test_overfitting_note_names_the_best_epoch():
    from textgen.classify.train import overfitting_note
    from textgen.errors import written_for_cli

    note = overfitting_note({"best_epoch": 2, "epochs_done": 10})
    assert "epoch 2 of 10" in note and "a new run with epochs=2 decays" in note
    with written_for_cli():
        assert "a new run with --epochs 2 decays" in overfitting_note(
            {"best_epoch": 2, "epochs_done": 10})
    assert overfitting_note({"best_epoch": 9, "epochs_done": 10}) is None  # still improving
    assert overfitting_note({"best_epoch": None, "epochs_done": 3}) is None  # no validation


def test_max_tokens_default_depends_on_the_architecture():
    from textgen.classify.config import ClassifierConfig

    assert ClassifierConfig(arch="lstm").max_tokens == 20000
    assert ClassifierConfig(arch="ngrams").max_tokens == 100000
    assert ClassifierConfig(arch="ngrams", max_tokens=500).max_tokens == 500


def test_input_dropout_reaches_the_recurrent_layer_and_old_runs_read_as_without():
    import tensorflow as tf

    from textgen.classify.config import ClassifierConfig
    from textgen.classify.model import build_classifier
    from textgen.errors import TextgenError

    data = tf.data.Dataset.from_tensor_slices((["good film", "bad film"], [1, 0])).batch(2)
    for cell, bidirectional in (("lstm", False), ("gru", True)):
        config = ClassifierConfig(arch="lstm", max_tokens=50, seq_length=8, embed_dim=4,
                                  units=4, cell=cell, bidirectional=bidirectional,
                                  input_dropout=0.25)
        model = build_classifier(config, data)
        rnn = model.get_layer("bidirectional").forward_layer if bidirectional else \
            model.get_layer(cell)
        assert rnn.dropout == 0.25
    saved = ClassifierConfig().to_dict()
    assert saved["input_dropout"] == ClassifierConfig.input_dropout > 0  # today's default
    del saved["input_dropout"]  # a run saved before the option existed
    assert ClassifierConfig.from_dict(saved).input_dropout == 0.0
    with pytest.raises(TextgenError, match=r"^input_dropout must be in \[0, 1\), got 1.0"):
        ClassifierConfig(input_dropout=1.0)


def test_train_help_and_config_share_each_architectures_defaults(cli):
    from textgen.classify.config import DEFAULT_LEARNING_RATE, DEFAULT_LR_DECAY, ClassifierConfig

    result = cli("classify", "train", "--help")
    assert result.exit_code == 0
    help_text = " ".join(result.stdout.replace("│", " ").split())  # unwrapped, unboxed
    shown = ", ".join(f"{value:g} ({arch})" for arch, value in DEFAULT_LEARNING_RATE.items())
    assert f"Default: {shown}" in help_text
    assert "10% of the peak (0.79 over 10)" in help_text  # chosen from the planned epochs
    # the defaults the data chooses say so (--help showed dropout 0.5 and seq-length 200,
    # where 200 rows of five classes train with 0 and 8)
    for option, shown in (("--dropout", "0.5; 0 for topics, ngrams with more than two classes"),
                          ("--seq-length", "the words 90% of the texts fit in, at most 200"),
                          ("--epochs", "10, lstm 4; epochs stretched to make 1,000 steps"),
                          ("--batch-size", "64, halved for small data down to 8")):
        after = help_text[help_text.index(f"{option} "):]
        assert f"[default: ({shown}" in after[:after.index("]")], (option, after[:200])
    result = cli("train", "--help")
    help_text = " ".join(result.stdout.replace("│", " ").split())
    assert "[default: (20; fine-tuning: chosen for the text, at most 10; with --max-time: " \
           "none)]" in help_text and "[default: (off; fine-tuning: 3)]" in help_text
    for arch, decay in DEFAULT_LR_DECAY.items():
        assert ClassifierConfig(arch=arch).lr_decay == decay


def test_naive_bayes_ratios_match_hand_computed_values():
    import tensorflow as tf
    from keras.layers import TextVectorization

    from textgen.classify.model import (
        feature_counts,
        inverse_document_frequencies,
        naive_bayes_ratios,
        standardize_review,
    )

    texts = ["great fun", "great film", "dull film", "dull dull plot"]
    labels = [1, 1, 0, 0]
    vectorize = TextVectorization(output_mode="multi_hot", sparse=True,
                                  standardize=standardize_review)
    vectorize.adapt(texts)
    counts = feature_counts(vectorize, tf.data.Dataset.from_tensor_slices(
        (texts, labels)).batch(3), classes=2)
    ratios = naive_bayes_ratios(counts)
    vocabulary = vectorize.get_vocabulary()
    # Reviews holding each word (a review counts once), plus 1: class 1 / class 0.
    pos = {"[UNK]": 1, "great": 3, "fun": 2, "film": 2, "dull": 1, "plot": 1}
    neg = {"[UNK]": 1, "great": 1, "fun": 1, "film": 2, "dull": 3, "plot": 2}
    expected = [np.log((pos[w] / sum(pos.values())) / (neg[w] / sum(neg.values())))
                for w in vocabulary]
    np.testing.assert_allclose(ratios, expected, rtol=1e-6)
    # Texts holding each word, of 4: "film" 2 of 4 -> log(5/3) + 1; "[UNK]" none -> log 5 + 1.
    idf = dict(zip(vocabulary, inverse_document_frequencies(counts, 4), strict=True))
    assert idf["film"] == pytest.approx(np.log(5 / 3) + 1)
    assert idf["[UNK]"] == pytest.approx(np.log(5) + 1) and idf["plot"] > idf["dull"]


def test_sparse_layers_weight_and_drop_features():
    import tensorflow as tf

    from textgen.classify.model import FeatureWeights, SparseDropout

    features = tf.SparseTensor([[0, 1], [0, 3], [1, 0]], [1.0, 1.0, 1.0], [2, 4])
    weighted = FeatureWeights(np.array([2.0, -1.0, 5.0, 0.5], dtype="float32"))(features)
    np.testing.assert_allclose(tf.sparse.to_dense(weighted).numpy(),
                               [[0, -1.0, 0, 0.5], [2.0, 0, 0, 0]])
    unit = FeatureWeights(np.array([2.0, -1.0, 5.0, 0.5], dtype="float32"), normalize=True)
    norm = np.sqrt(1.25)
    np.testing.assert_allclose(tf.sparse.to_dense(unit(features)).numpy(),
                               [[0, -1.0 / norm, 0, 0.5 / norm], [1.0, 0, 0, 0]], rtol=1e-6)
    dropout = SparseDropout(0.5, seed=1)
    assert dropout(features, training=False) is features
    many = tf.SparseTensor([[0, i] for i in range(4000)], tf.ones(4000), [1, 4000])
    kept = dropout(many, training=True).values.numpy()
    assert 1700 < kept.size < 2300 and np.allclose(kept, 2.0)  # about half, scaled by 2


def test_metrics_match_hand_computed_values():
    from textgen.classify.metrics import Metrics

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
    # A tiny model (16-dim word vectors) learns this in 8 epochs without the input dropout
    # that suits the default 128 dimensions.
    train = cli("classify", "train", str(easy_data), "--arch", "lstm", "--epochs", "8",
                "--max-tokens", "100", "--seq-length", "12", "--embed-dim", "16", "--units", "16",
                "--batch-size", "16", "--input-dropout", "0", "--learning-rate", "0.01",
                "--checkpoint-dir", ckpt)
    assert train.exit_code == 0, train.stderr
    # what an accuracy must beat: always answering the commonest class (a tie: the first)
    assert "(always answering 'neg': 0.5000)" in train.stderr
    assert "always answering 'neg'" in train.stdout
    # the best epoch is the lowest loss's: its accuracy is so named, not "best accuracy"
    assert re.search(r"(val|training) accuracy at the best epoch", train.stdout), train.stdout
    run = tmp_path / "ck" / easy_data.name
    assert (run / "best.keras").is_file() and (run / "history.csv").is_file()

    evaluation = cli("classify", "evaluate", str(easy_data / "test"), "--json",
                     "--checkpoint-dir", ckpt)
    assert evaluation.exit_code == 0, evaluation.stderr
    metrics = json.loads(evaluation.stdout)
    assert metrics["accuracy"] >= 0.9 and metrics["examples"] == 40
    assert sum(map(sum, metrics["confusion_matrix"])) == 40
    assert (metrics["commonest_class"], metrics["commonest_share"]) == ("neg", 0.5)
    assert metrics["training_data"] is False
    table = cli("classify", "evaluate", str(easy_data), "--checkpoint-dir", ckpt)
    assert "precision" in table.stdout and "confusion matrix" in table.stdout
    assert "always answering 'neg': accuracy 0.5000" in table.stdout
    assert "note: this is the data run" not in table.stderr
    trained_on = cli("classify", "evaluate", str(easy_data / "train"), "--checkpoint-dir", ckpt)
    assert trained_on.exit_code == 0 and " ".join(trained_on.stderr.split()).startswith(
        f"note: this is the data run {easy_data.name} was trained on: the figures say how well "
        "it learnt these texts, not how it does on new ones")

    predicted = cli("classify", "predict", "a wonderful brilliant film", "an awful boring mess",
                    "--checkpoint-dir", ckpt)
    assert predicted.exit_code == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    assert all(0.5 <= float(line.split("\t")[1]) <= 1 for line in lines)

    # Predicting and evaluating need no TensorFlow: the NumPy classifier reads the file.
    for args in (["predict", "a wonderful brilliant film"], ["evaluate", str(easy_data / "test")]):
        code, imported, stderr = run_without_tensorflow("classify", *args, "--checkpoint-dir",
                                                        ckpt, blocked=True)
        assert code == 0 and not imported, stderr


def test_ngrams_arch_trains_saves_and_predicts(cli, easy_data, tmp_path):
    ckpt = str(tmp_path / "ck")
    train = cli("classify", "train", str(easy_data), "--arch", "ngrams", "--epochs", "6",
                "--batch-size", "16", "--learning-rate", "0.01", "--checkpoint-dir", ckpt,
                "--run-name", "ngrams")
    assert train.exit_code == 0, train.stderr
    run = json.loads((tmp_path / "ck" / "ngrams" / "run.json").read_text())
    assert run["config"]["arch"] == "ngrams" and run["config"]["max_tokens"] == 100000
    from textgen.classify.prediction import load_keras_classifier
    from textgen.runs import find_model

    model = load_keras_classifier(find_model(tmp_path / "ck" / "ngrams", tmp_path, "classify"))
    weights = model.get_layer("feature_weights").get_weights()[0]
    vocabulary = model.get_layer("vectorize").get_vocabulary()
    assert weights[vocabulary.index("wonderful")] > 0 > weights[vocabulary.index("awful")]
    from textgen.runs import load_keras_model

    last = load_keras_model(tmp_path / "ck" / "ngrams" / "last.keras", compile=True)
    # The chosen schedule decays the rate to a tenth of the peak over the 6 planned epochs
    # (early stopping may end it sooner).
    done = json.loads((tmp_path / "ck" / "ngrams" / "run.json").read_text())
    epochs_done = done["training"]["epochs_done"]
    decay = run["config"]["lr_decay"]
    assert run["config"]["lr_schedule"] == "exponential"
    assert decay == pytest.approx(0.1 ** (1 / 6), rel=1e-3)
    assert float(last.optimizer.learning_rate) == pytest.approx(0.01 * decay**epochs_done,
                                                                 rel=1e-3)
    evaluation = cli("classify", "evaluate", str(easy_data / "test"), "--json",
                     "--model", "ngrams", "--checkpoint-dir", ckpt)
    assert json.loads(evaluation.stdout)["accuracy"] >= 0.9
    predicted = cli("classify", "predict", "a wonderful brilliant film", "an awful boring mess",
                    "--json", "--model", "ngrams", "--checkpoint-dir", ckpt)
    assert [d["label"] for d in json.loads(predicted.stdout)] == ["pos", "neg"]


def test_predict_reads_stdin_and_files_and_prints_json(cli, easy_data, tmp_path, monkeypatch):
    import io

    ckpt = str(tmp_path / "ck")
    assert cli("classify", "train", str(easy_data / "train"), "--arch", "lstm", "--epochs", "1",
               "--max-tokens", "100", "--seq-length", "12", "--units", "8",
               "--checkpoint-dir", ckpt, "--run-name", "easy").exit_code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("loved it\n\nhated it\n"))
    result = cli("classify", "predict", "-", "--json", "--checkpoint-dir", ckpt)
    data = json.loads(result.stdout)
    assert [d["text"] for d in data] == ["loved it", "hated it"]
    assert [d["line"] for d in data] == [1, 3]  # the answers can be matched to the lines
    assert "note: stdin: skipped 1 blank line" in result.stderr
    assert all(d["known_words"] >= 1 for d in data)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n  \n"))  # given, but blank
    blank = cli("classify", "predict", "-", "--checkpoint-dir", ckpt)
    assert blank.exit_code == 2
    assert "no texts to classify: stdin (-) held none (only blank lines, or nothing)" in (
        " ".join(blank.stderr.split()))
    no_column = tmp_path / "other.csv"  # read with the run's columns: the run is named
    no_column.write_text("body\nloved it\n")
    missing = cli("classify", "predict", "--file", str(no_column), "--model", "easy",
                  "--checkpoint-dir", ckpt)
    assert missing.exit_code == 2 and missing.stderr.startswith(
        f"error: run easy: {no_column}:1: the header has no 'text' column")
    # - twice read stdin once, the second nothing; a JSON array file was read line by line
    twice = cli("classify", "predict", "-", "-", "--checkpoint-dir", ckpt)
    assert twice.exit_code == 2 and "- is given more than once; stdin is read once" in twice.stderr
    array = tmp_path / "texts.json"
    array.write_text('[\n  {"text": "loved it"}\n]\n')
    as_array = cli("classify", "predict", "--file", str(array), "--checkpoint-dir", ckpt)
    assert as_array.exit_code == 2 and as_array.stdout == ""
    assert f"--file {array}: a .json file; give its texts as JSON Lines" in (
        " ".join(as_array.stderr.split()))
    from textgen import predict_texts

    once = predict_texts((t for t in ["loved it"]), str(tmp_path / "ck" / "easy"))
    assert [r["text"] for r in once] == ["loved it"]  # a generator is read once
    with pytest.raises(TextgenError, match="texts must be a list of strings"):
        predict_texts(None, str(tmp_path / "ck" / "easy"))
    with pytest.raises(TextgenError, match=r"^texts\[1\] is empty; give each text some words"):
        predict_texts(["loved it", "  "], str(tmp_path / "ck" / "easy"))
    with pytest.raises(TextgenError, match=r"^texts\[1\] must be a string, got int"):
        predict_texts(["loved it", 5], str(tmp_path / "ck" / "easy"))
    with pytest.raises(TextgenError, match=r"^texts\[0\] is empty"):  # a NUL reads as a space
        predict_texts(["\0 \0"], str(tmp_path / "ck" / "easy"))
    # invisible: a zero-width space and a byte-order mark (labelled by the prior alone)
    with pytest.raises(TextgenError, match=r"^texts\[0\] is empty"):
        predict_texts(["\u200b\ufeff"], str(tmp_path / "ck" / "easy"))
    invisible = cli("classify", "predict", "\u200b", "--checkpoint-dir", ckpt)  # as a space is
    assert invisible.exit_code == 2
    assert "error: text 1 is empty; give each text some words" in invisible.stderr
    table = tmp_path / "invisible.csv"
    table.write_text("text,label\nloved it,pos\n\u200b,neg\n", encoding="utf-8")
    for command in (["predict", "--file"], ["evaluate"]):  # evaluate scored it silently
        refused = cli("classify", *command, str(table), "--checkpoint-dir", ckpt)
        assert refused.exit_code == 2
        assert f"{table}:3: empty text in 'text'; fill it in or remove the row" in " ".join(
            refused.stderr.split())
    folders = tmp_path / "invisible"
    for label, text in (("pos", "loved it"), ("pos", "\u200b"), ("neg", "hated it")):
        (folders / label).mkdir(parents=True, exist_ok=True)
        (folders / label / f"{len(list((folders / label).iterdir()))}.txt").write_text(
            text, encoding="utf-8")
    refused = cli("classify", "evaluate", str(folders), "--checkpoint-dir", ckpt)
    assert refused.exit_code == 2  # a class folder's file too (it was scored)
    assert "1 of the 2 files of class 'pos' is empty" in " ".join(refused.stderr.split())
    blind = cli("classify", "predict", "zzqx vvbn", "loved it", "--json", "--checkpoint-dir",
                ckpt)
    assert [d["known_words"] for d in json.loads(blind.stdout)] == [0, 2]
    assert "note: 1 of the 2 texts holds no word the model knows" in " ".join(
        blind.stderr.split())
    assert {"label", "probability", "probabilities"} <= set(data[0])
    lines = tmp_path / "lines.txt"
    lines.write_text("one\ntwo\nthree\n", encoding="utf-8")
    from_file = cli("classify", "predict", "--file", str(lines), "--checkpoint-dir", ckpt)
    assert len(from_file.stdout.strip().splitlines()) == 3
    # One text per line feed: a form feed or U+0085 inside a line does not split it, and the
    # output keeps one line per text, escaping what would break it.
    lines.write_text("loved\x0cit \\o/\nhated\x85it\nloved \x1b]0;pwned\x07\x1b[2J\n",
                     encoding="utf-8")
    odd = cli("classify", "predict", "--file", str(lines), "--checkpoint-dir", ckpt)
    assert [line.split("\t")[2] for line in odd.stdout.splitlines()] == [
        "loved\\x0cit \\\\o/", "hated\\x85it", "loved \\x1b]0;pwned\\x07\\x1b[2J"]
    assert "\x1b" not in odd.stdout  # no escape code reaches the terminal
    table = tmp_path / "rows.csv"
    table.write_text('title,body\nLoved,"it, truly\tso"\nHated,it\n', encoding="utf-8")
    joined = cli("classify", "predict", "--file", str(table), "--text-column", "title,body",
                 "--checkpoint-dir", ckpt)
    assert [line.split("\t")[2] for line in joined.stdout.splitlines()] == [
        "Loved\\nit, truly\\tso", "Hated\\nit"]
    # Arguments are bytes like stdin: one not valid in UTF-8 is refused, not written out.
    bad = cli("classify", "predict", "caf\udce9", "--json", "--checkpoint-dir", ckpt)
    assert bad.exit_code == 2 and bad.stdout == ""
    assert "text 1 is not valid UTF-8 (byte 0xe9 at offset 3)" in bad.stderr


def test_modes_do_not_mix(cli, tiny_run, easy_data, tmp_path):
    ckpt = tmp_path / "ck"
    assert cli("classify", "train", str(easy_data / "train"), "--arch", "lstm", "--epochs", "1",
               "--units", "4", "--max-tokens", "50", "--checkpoint-dir", str(ckpt),
               "--run-name", "clf").exit_code == 0
    sample = cli("sample", "--model", str(ckpt / "clf"))
    assert sample.exit_code == 2 and "is a classify run" in sample.stderr
    assert "use it with textgen classify" in " ".join(sample.stderr.split())
    predict = cli("classify", "predict", "hello", "--model", str(tiny_run.path))
    assert predict.exit_code == 2 and "is a generate run" in predict.stderr
    # the CLI's words, not the Python API's (textgen.load_sampler)
    assert "use it with textgen sample/evaluate" in " ".join(predict.stderr.split())
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
    # The n-gram model: real reviews in seconds (the LSTM's full-split figures are in
    # benchmarks/classify.py).
    result = cli("classify", "train", str(data), "--arch", "ngrams", "--epochs", "4",
                 "--batch-size", "64", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(cli("classify", "evaluate", str(data / "test"), "--json",
                             "--checkpoint-dir", str(tmp_path / "ck")).stdout)
    assert metrics["accuracy"] >= 0.82, metrics


def test_last_tokens_keeps_the_end_of_each_review():
    import keras

    from textgen.classify.model import LastTokens

    ids = np.array([[5, 6, 7, 8, 0, 0], [9, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    out = keras.ops.convert_to_numpy(LastTokens(3)(ids))
    assert out.tolist() == [[6, 7, 8], [9, 0, 0], [4, 5, 6]]
    empty = keras.ops.convert_to_numpy(LastTokens(2)(np.zeros((2, 0), dtype="int64")))
    assert empty.tolist() == [[0, 0], [0, 0]]


def test_evaluate_says_how_many_examples_hold_no_word_the_model_knows(cli, tiny_classifier_run,
                                                                       tmp_path):
    """Such an example gets the model's prior whatever its label: predict said so, evaluate
    scored them silently (every one the same class)."""
    table = tmp_path / "strange.csv"
    table.write_text("text,label\n" + "".join(f"xq{i} zz{i},{'pos' if i % 2 else 'neg'}\n"
                                              for i in range(10))
                     + "a wonderful brilliant film,pos\n")
    result = cli("classify", "evaluate", str(table), "--model", str(tiny_classifier_run.path))
    assert result.exit_code == 0, result.stderr
    assert ("note: 10 of the 11 examples hold no word the model knows: their label is the "
            "model's prior") in result.stderr
    as_json = cli("classify", "evaluate", str(table), "--model", str(tiny_classifier_run.path),
                  "--json")
    assert json.loads(as_json.stdout)["without_known_words"] == 10
    table.write_text("text,label\nxq zz,neg\na wonderful brilliant film,pos\n")
    one = cli("classify", "evaluate", str(table), "--model", str(tiny_classifier_run.path))
    assert ("note: 1 of the 2 examples holds no word the model knows: its label is the "
            "model's prior, not a reading of it") in " ".join(one.stderr.split())


def test_evaluate_names_the_class_folders_sub_folders_it_does_not_read(cli, tiny_classifier_run,
                                                                       tmp_path):
    """As training does: evaluate scored the class's own files and left pos/more/ out
    without a word."""
    data = write_reviews(tmp_path / "data", {"neg": 3, "pos": 3})
    write_reviews(data / "pos" / "more", {"x": 2}, words={"x": ["great"]})
    result = cli("classify", "evaluate", str(data), "--model", str(tiny_classifier_run.path))
    assert result.exit_code == 0, result.stderr
    assert ("note: sub-folders of class folders are not read: pos/more/; move their files "
            "into the class folder to score them") in " ".join(result.stderr.split())
    assert "on 6 examples" in " ".join(result.stdout.split())
    # a root holding test/: named from the folder given; training's own scoring of test/ too
    root = tmp_path / "root"
    write_reviews(root / "train", {"neg": 4, "pos": 4})
    write_reviews(root / "test", {"neg": 3, "pos": 3})
    write_reviews(root / "test" / "pos" / "more", {"x": 2}, words={"x": ["great"]})
    scored = cli("classify", "evaluate", str(root), "--model", str(tiny_classifier_run.path))
    assert "not read: test/pos/more/" in scored.stderr
    from textgen.classify.train import train_classifier

    trained = train_classifier(root, epochs=1, arch="ngrams", checkpoint_dir=tmp_path / "ck")
    assert any("not read: test/pos/more/" in note for note in trained.notes)
