"""Classify's sizing rule: its choices on a ladder of sizes (no training), and tiny sets that
learn with no flags, say what was chosen and leave a small run folder."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from textgen.classify.config import DEFAULT_LEARNING_RATE, TOPICS_NGRAMS_LEARNING_RATE, Arch
from textgen.classify.sizing import (
    MIN_STEPS,
    MIN_VALIDATION,
    TOPICS_RATE_BATCH,
    DataSize,
    choose_training,
)
from textgen.errors import written_for_cli

# (examples, words in 90% of them, classes): 20 one-liners to IMDb's 25,000 reviews and 20
# Newsgroups' 11,314 posts.
LADDER = [(20, 6, 2), (240, 6, 2), (250, 450, 2), (1_000, 450, 2), (5_000, 450, 2),
          (25_000, 450, 2), (200, 1500, 20), (1_000, 1500, 20), (11_314, 600, 20)]


def planned_steps(values: dict, examples: int) -> int:
    trained_on = examples - int(examples * values["val_split"])
    per_pass = -(-trained_on // values["batch_size"])
    return values["epochs"] * (values["steps_per_epoch"] or per_pass)


@pytest.mark.parametrize(("examples", "words", "classes"), LADDER)
def test_the_rule_plans_enough_steps_and_decays_over_them(examples, words, classes):
    choice = choose_training(DataSize(examples, words, classes), {})
    values = choice.values
    steps = planned_steps(values, examples)
    assert values["arch"] == Arch.ngrams
    assert steps >= MIN_STEPS  # 20 examples still get a few hundred updates
    assert 0 < values["warmup_steps"] < steps / 10  # a share of the run, never all of it
    # The rate ends the planned epochs at a tenth of the peak, whatever their number.
    assert values["lr_decay"] ** values["epochs"] == pytest.approx(0.1, rel=1e-3)
    # ... under the exponential schedule: another is planned with no decay (the note named one)
    for schedule in ("cosine", "plateau"):
        other = choose_training(DataSize(examples, words, classes), {"lr_schedule": schedule})
        assert "lr_decay" not in other.values and "lr_decay" not in other.reason
    if classes > 2:  # topics: each example's step as where the rate was measured
        assert values["learning_rate"] == pytest.approx(
            TOPICS_NGRAMS_LEARNING_RATE * values["batch_size"] / TOPICS_RATE_BATCH, rel=0.05)
    else:  # rate x steps at least as where the rate was measured (at most 10x the rate)
        base = DEFAULT_LEARNING_RATE[Arch.ngrams]
        assert values["learning_rate"] * steps >= 0.97 * min(base * 3520, 10 * base * steps)
        assert base <= values["learning_rate"] <= 10 * base
    assert choice.reason.startswith("chose arch='ngrams', batch_size=")  # as Python writes it
    assert f"{examples:,} examples" in choice.reason


def test_the_rule_holds_out_data_only_where_it_says_something():
    by_size = {n: choose_training(DataSize(n, 100, 2), {}) for n, _, _ in LADDER}
    for n, choice in by_size.items():
        held = int(n * choice.values["val_split"])
        assert held == 0 or held >= MIN_VALIDATION
    assert by_size[20].values["val_split"] == 0 and by_size[25_000].values["val_split"] == 0.1
    assert "20 examples: accuracy on the 2 a validation split would hold says little" in (
        by_size[20].notes[0])
    assert by_size[20].notes[0].endswith(
        "score it with `textgen.evaluate_data(data, run)` on labelled texts it has not seen")
    assert by_size[25_000].notes == []
    # a train/ and test/ root: its test/ is scored at the end (it was told to score it)
    with_test = choose_training(DataSize(20, 100, 2, has_test=True), {})
    assert with_test.notes[0].endswith("converged; test/ scores it when training ends")
    # Small sets get small batches (steps to learn from); large ones 64.
    batches = [by_size[n].values["batch_size"] for n in (20, 250, 1_000, 5_000, 25_000)]
    assert batches == sorted(batches) and batches[0] == 8 and batches[-1] == 64
    assert by_size[25_000].values["steps_per_epoch"] is None  # an epoch is one pass
    assert by_size[20].values["steps_per_epoch"] > 1  # an epoch is many passes


def test_options_the_user_gives_win_and_the_rest_follow_them():
    data = DataSize(240, 6, 2)
    choice = choose_training(data, {"arch": "lstm", "batch_size": 16, "val_split": 0.2})
    values = choice.values
    assert not {"arch", "batch_size", "val_split"} & set(values)
    assert values["epochs"] == 4 and values["learning_rate"] == 0.002  # the LSTM's own
    assert values["seq_length"] == 8  # one-liners: no 200 steps of padding
    assert planned_steps({**values, "batch_size": 16, "val_split": 0.2}, 240) >= MIN_STEPS
    # Given epochs are passes: one epoch is one pass over the data, however small.
    one = choose_training(data, {"epochs": 1}).values
    assert one["steps_per_epoch"] is None and planned_steps({**one, "epochs": 1}, 240) == 30
    assert one["learning_rate"] == 0.01  # the most the rate is raised for a short plan
    assert choice.notes == []  # the user chose the split
    assert "--batch-size" not in choice.reason and "--arch" not in choice.reason
    everything = choose_training(data, choose_training(data, {}).values)
    assert everything.values == {} and everything.reason.startswith("chose nothing")


def test_data_size_reads_the_texts():
    size = DataSize.of(["one two three"] * 9 + ["a " * 50], 2)
    assert size == DataSize(10, 50, 2)
    assert DataSize.of(["just one"], 3) == DataSize(1, 2, 3)


TABLE = {"pos": ["I loved this film", "a wonderful, moving story",
                 "great acting and a great plot", "the best movie of the year"],
         "neg": ["I hated this film", "a boring, tedious mess",
                 "terrible acting and a dull plot", "the worst movie of the year"]}


def write_table(path: Path) -> Path:
    """The issue's 240-row table: 8 distinct, trivially separable one-liners, 30 copies each."""
    rows = [(text, label) for label, texts in TABLE.items() for text in texts] * 30
    random.Random(0).shuffle(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    return path


@pytest.mark.parametrize("arch", [[], ["--arch", "lstm"]], ids=["no-flags", "lstm"])
def test_the_240_row_table_fits_itself(cli, tmp_path, arch):
    table = write_table(tmp_path / "table.csv")
    ckpt = str(tmp_path / "ck")
    train = cli("classify", "train", str(table), *arch, "--checkpoint-dir", ckpt)
    assert train.exit_code == 0, train.stderr
    assert "note: chose " in train.stderr and "240 examples" in train.stderr
    evaluation = cli("classify", "evaluate", str(table), "--json", "--checkpoint-dir", ckpt)
    assert evaluation.exit_code == 0, evaluation.stderr
    assert json.loads(evaluation.stdout)["accuracy"] >= 0.95


def test_twenty_reviews_learn_and_leave_a_small_run(cli, tmp_path):
    pos = ["a wonderful film", "brilliant and moving", "I loved every minute", "superb acting",
           "a delightful story", "a masterpiece", "funny and warm", "great fun",
           "beautifully shot", "the best film this year"]
    neg = ["an awful film", "boring and slow", "I hated every minute", "dreadful acting",
           "a tedious story", "a complete mess", "dull and cold", "a waste of time",
           "badly shot", "the worst film this year"]
    for label, texts in (("pos", pos), ("neg", neg)):
        (tmp_path / "reviews" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "reviews" / label / f"{i}.txt").write_text(text, encoding="utf-8")
    ckpt = tmp_path / "ck"
    train = cli("classify", "train", str(tmp_path / "reviews"), "--checkpoint-dir", str(ckpt))
    assert train.exit_code == 0, train.stderr
    text = " ".join(train.stderr.split())
    assert "note: 20 examples: accuracy on the 2 a validation split would hold says little" in (
        text)
    assert "score it with `textgen classify evaluate` on labelled texts" in text
    run = ckpt / "reviews"
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert meta["chosen"]["reason"].startswith("chose --arch ngrams")
    assert meta["chosen"]["val_split"] == 0 and meta["training"]["val_split"] == 0
    assert meta["config"]["arch"] == "ngrams"
    # Without a validation split the figures are the training ones, and said to be.
    assert meta["training"]["monitor"] == "loss"
    assert "validation loss" not in train.stdout + text
    listed = json.loads(cli("runs", "--checkpoint-dir", str(ckpt), "--json").stdout)
    assert listed[0]["best_metric"] == "accuracy" and listed[0]["best_value"] > 0.5
    table = cli("runs", "--checkpoint-dir", str(ckpt)).stdout
    assert " accuracy (training) " in table
    assert max(len(line) for line in table.splitlines()) > 80  # piped: never cut to 80
    # The n-gram run's own settings and the words it kept, not the LSTM's and the cap.
    info = json.loads(cli("info", "reviews", "--json", "--checkpoint-dir", str(ckpt)).stdout)
    assert "units" not in info["hyperparameters"] and "max_tokens" in info["hyperparameters"]
    assert 20 < info["vocabulary_size"] < 200  # the 20 texts' words and pairs

    predicted = cli("classify", "predict", *pos[:3], *neg[:3], "--json", "--checkpoint-dir",
                    str(ckpt))
    results = json.loads(predicted.stdout)
    assert [r["label"] for r in results] == ["pos"] * 3 + ["neg"] * 3
    assert min(r["probability"] for r in results) > 0.6  # learnt, not a coin toss

    # The folder is small: a vocabulary of the words the texts hold and no optimizer state
    # in best.keras (last.keras keeps it for resuming).
    sizes = {f.name: f.stat().st_size for f in run.iterdir() if f.is_file()}
    assert sum(sizes.values()) < 1_000_000, sizes
    assert sizes["best.keras"] < sizes["last.keras"]


def test_a_tiny_lstm_has_a_vocabulary_of_its_texts(tmp_path):
    import tensorflow as tf

    from textgen.classify.config import ClassifierConfig
    from textgen.classify.model import build_classifier

    texts = ["a wonderful film", "an awful film", "great fun", "a waste of time"]
    data = tf.data.Dataset.from_tensor_slices((texts, [1, 0, 1, 0])).batch(2)
    model = build_classifier(ClassifierConfig(arch="lstm"), data)
    # 10 distinct words, padding and the unknown-word slot: not the 20,000 of max_tokens.
    assert model.get_layer("embedding").input_dim == 12


def test_a_time_budget_is_part_of_the_plan():
    """--max-time bounds the planned steps: the rate decays over whichever runs out first,
    and the note says so; the choices themselves stay those of the data."""
    timed = choose_training(DataSize(1000, 100, 2), {"max_time": 5.0})
    plain = choose_training(DataSize(1000, 100, 2), {})
    assert "or 5 minutes, whichever comes first" in timed.reason
    assert "minutes" not in plain.reason
    assert timed.values == plain.values


def test_topics_train_on_every_example_without_feature_dropout_and_with_more_words():
    choice = choose_training(DataSize(11_314, 500, 20), {})
    topics = choice.values
    reviews = choose_training(DataSize(25_000, 500, 2), {}).values
    assert topics["val_split"] == 0 and reviews["val_split"] == 0.1
    assert choice.notes == ["11,314 examples in 20 classes: the model trains on all of them "
                            "(held-out accuracy would cost it data and change nothing of the "
                            "plan); score it with `textgen.evaluate_data(data, run)` on labelled "
                            "texts it has not seen, or give val_split=0.1 to watch it during "
                            "training"]
    with written_for_cli():  # the command line's note names its own command and flag
        typed = choose_training(DataSize(11_314, 500, 20), {}).notes[0]
    assert typed.endswith("score it with `textgen classify evaluate` on labelled texts it has "
                          "not seen, or give --val-split 0.1 to watch it during training")
    # each example's step as on 20 Newsgroups: smaller batches, a proportionally lower rate
    rates = {n: choose_training(DataSize(n, 1500, 20), {}).values for n in (200, 1_000, 11_314)}
    assert [(v["batch_size"], v["learning_rate"]) for v in rates.values()] == [
        (8, 1.2), (32, 5.0), (64, 10.0)]
    watched = choose_training(DataSize(11_314, 500, 20), {"val_split": 0.1})
    assert watched.notes == [] and "val_split" not in watched.values
    assert topics["dropout"] == 0.0 and topics["max_tokens"] == 300_000
    assert "dropout" not in reviews and reviews["max_tokens"] == 100_000  # the config's 0.5
    assert "dropout" not in choose_training(DataSize(11_314, 500, 20), {"dropout": 0.3}).values


def test_the_reason_counts_the_held_out_examples_as_the_split_holds_them_out():
    """Each class keeps one example to train on: 2 examples at --val-split 0.5 hold out none
    (the note said 1), 30 + 30 at 0.99 hold out 58 (it said 59)."""
    two = choose_training(DataSize(2, 2, 2, (1, 1)), {"val_split": 0.5})
    assert "2 examples (none held out)" in two.reason
    most = choose_training(DataSize(60, 2, 2, (30, 30)), {"val_split": 0.99})
    assert "60 examples (58 held out)" in most.reason
    assert DataSize(60, 2, 2).held_out(0.99) == 59  # classes unknown: the plain share
