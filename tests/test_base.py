"""Fine-tuning from a base: the shipped bases, the choice between them, and any earlier run
used as one."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.conftest import TINY_TEXT, run_without_tensorflow
from textgen.errors import TextgenError
from textgen.generate.base import (
    NO_BASE,
    bits_per_char,
    choose_base,
    describe_new_chars,
    export_base,
    extended_vocabulary,
    fine_tuning_weights,
    load_base,
    shipped_bases,
)
from textgen.generate.config import GeneratorConfig
from textgen.generate.data import Vocabulary
from textgen.generate.sampling import load_sampler
from textgen.generate.stepper import NumpyStepper, load_generator_weights

# The tiny stand-in base's shape: every fine-tuning test trains this (seconds).
TINY_BASE = ["--units", "24", "--layers", "1", "--embed-dim", "8", "--seq-length", "16",
             "--batch-size", "4", "--steps-per-epoch", "4"]
NEW_TEXT = "Ödipus sang: la la la, über alles.\n" * 12  # 'Ö' and 'ü' are new to the base


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tiny_corpus):
    """A 1x24 LSTM run trained from scratch on TINY_TEXT: the base the tests fine-tune."""
    from textgen.generate.train import train_generator

    ckpt = tmp_path_factory.mktemp("bases")
    result = train_generator(tiny_corpus, checkpoint_dir=ckpt, run_name="tinybase", epochs=2,
                             steps_per_epoch=6, batch_size=4, seq_length=16, units=24,
                             layers=1, embed_dim=8, base=NO_BASE)
    return result.run


def test_the_fine_tuned_vocabulary_is_the_sorted_union_and_rows_move_with_their_characters(
        tiny_base):
    base = load_base(str(tiny_base.path))
    vocab, new = extended_vocabulary(base, NEW_TEXT)
    assert new == sorted(set(NEW_TEXT) - set(base.vocab.chars))
    assert list(vocab.chars) == sorted(set(base.vocab.chars) | set(NEW_TEXT))
    weights = fine_tuning_weights(base, vocab)
    embedding, kernel, bias = weights[0], weights[-2], weights[-1]
    assert embedding.shape == (len(vocab), 8) and kernel.shape == (24, len(vocab))
    for char in base.vocab.chars:  # a known character keeps its rows, at its new id
        old, now = base.vocab.chars.index(char), vocab.chars.index(char)
        np.testing.assert_array_equal(embedding[now], base.weights[0][old])
        np.testing.assert_array_equal(kernel[:, now], base.weights[-2][:, old])
    for char in new:  # a new one: the average input, as unlikely as the rarest known one
        now = vocab.chars.index(char)
        np.testing.assert_allclose(embedding[now], base.weights[0].mean(0), rtol=1e-6)
        assert bias[now] == pytest.approx(base.weights[-1].min())
    for got, want in zip(weights[1:-2], base.weights[1:-2], strict=True):
        np.testing.assert_array_equal(got, want)  # the recurrent layers as they were


def said(result) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def test_fine_tuning_a_run_on_a_new_text(cli, tiny_base, tmp_path, monkeypatch):
    corpus = tmp_path / "song.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    ckpt = tmp_path / "ck"
    result = cli("train", str(corpus), "--base", str(tiny_base.path), "--epochs", "1",
                 "--seq-length", "16", "--batch-size", "4", "--steps-per-epoch", "4",
                 "--checkpoint-dir", str(ckpt))
    assert result.exit_code == 0, result.stderr
    assert f"fine-tuning the base {tiny_base.path.resolve()} (1x24 lstm" in said(result)
    assert "added 2 characters the base never saw: 'Ö' (U+00D6), 'ü' (U+00FC)" in said(result)
    meta = json.loads((ckpt / "song" / "run.json").read_text())
    assert meta["config"]["base"] == str(tiny_base.path.resolve())
    assert (meta["config"]["layers"], meta["config"]["units"]) == (1, 24)
    assert meta["base"]["new_chars"] == ["Ö", "ü"]
    assert len(meta["base"]["sha256"]) == 64
    # the rate follows how well the base predicts the text's training part
    from textgen.generate.data import validation_length
    from textgen.generate.sizing import learning_rate_for

    train_chars = len(NEW_TEXT) - validation_length(len(NEW_TEXT), 16, 0.1)
    bits = bits_per_char(load_base(str(tiny_base.path)), NEW_TEXT[:train_chars])[0]
    assert meta["chosen"]["learning_rate"] == learning_rate_for(24, None, True, bits)
    vocab = json.loads((ckpt / "song" / "vocab.json").read_text())
    assert set(vocab) == set(load_base(str(tiny_base.path)).vocab.chars) | set(NEW_TEXT)

    # textgen info shows the base, its weights' hash and what it added (on a terminal wide
    # enough for the temporary path not to wrap the row)
    monkeypatch.setenv("COLUMNS", "300")
    shown = cli("info", str(ckpt / "song"))
    assert shown.exit_code == 0, shown.stderr
    assert f"weights sha256 {meta['base']['sha256'][:12]}" in " ".join(shown.stdout.split())

    # --resume keeps the base it started from; the same base named again by a relative path
    # is no change (a note said "resuming with the run's --base /abs/... (not rel/...)").
    monkeypatch.chdir(tiny_base.path.parent)
    again = cli("train", str(corpus), "--resume", "--epochs", "2", "--base", tiny_base.path.name,
                "--checkpoint-dir", str(ckpt))
    assert again.exit_code == 0, again.stderr
    assert "resuming with the run's --base" not in again.stderr
    resumed = json.loads((ckpt / "song" / "run.json").read_text())
    assert resumed["base"] == meta["base"] and resumed["config"]["base"] == meta["config"]["base"]
    assert resumed["training"]["epochs_done"] == 2

    # the fine-tuned run samples a character only the new text has, without TensorFlow
    code, imported, stderr = run_without_tensorflow(
        "sample", "--model", str(ckpt / "song"), "--seed", "Ödipus", "--length", "20",
        "--rng-seed", "1", blocked=True)
    assert code == 0 and not imported, stderr


def test_an_architecture_option_that_differs_from_the_base_trains_from_scratch(
        cli, tiny_base, tiny_corpus, tmp_path):
    result = cli("train", str(tiny_corpus), "--base", str(tiny_base.path), *TINY_BASE,
                 "--units", "16", "--epochs", "1", "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "training from scratch: --units 16 differs from the base" in said(result)
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["config"]["base"] == NO_BASE and "base" not in meta
    assert meta["config"]["units"] == 16
    # the shipped bases share one shape: said once, not a clause per base
    shipped = cli("train", str(tiny_corpus), *TINY_BASE, "--units", "16", "--embed-dim", "8",
                  "--epochs", "1", "--checkpoint-dir", str(tmp_path), "--run-name", "auto")
    assert shipped.exit_code == 0, shipped.stderr
    assert ("training from scratch: --layers 1, --units 16, --embed-dim 8 differ from the bases "
            "english and verse (2x512 lstm, --embed-dim 64) (pass --base none to say so)"
            ) in said(shipped)


def test_a_text_mostly_outside_the_bases_characters_trains_from_scratch(
        cli, tiny_base, tiny_corpus, tmp_path):
    corpus = tmp_path / "poem.txt"
    corpus.write_text("床前明月光，疑是地上霜。举头望明月，低头思故乡。\n" * 20, encoding="utf-8")
    result = cli("train", str(corpus), "--base", str(tiny_base.path), "--epochs", "1",
                 "--seq-length", "8", "--batch-size", "4", "--steps-per-epoch", "2",
                 "--units", "24", "--layers", "1", "--embed-dim", "8",
                 "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    assert "training from scratch: the base" in said(result)
    assert "knows only 4% of this text's characters" in said(result)
    # 89.8% known said "only 90%" against a bar of 90%: rounded down, it says 89%
    near = tmp_path / "near.txt"
    near.write_text(tiny_corpus.read_text(encoding="utf-8")[:898] + "床" * 102, encoding="utf-8")
    result = cli("train", str(near), "--base", str(tiny_base.path), "--epochs", "1",
                 "--seq-length", "8", "--batch-size", "4", "--steps-per-epoch", "2",
                 "--units", "24", "--layers", "1", "--embed-dim", "8",
                 "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    assert ("knows only 89% of this text's characters (a base helps where it knows at least "
            "90%)") in said(result)


def test_a_share_below_a_bar_is_never_rounded_up_to_it_nor_an_exact_one_down():
    from fractions import Fraction

    from textgen.generate.train import percent_below

    shares = [(898, 1000), (8999999, 10**7), (27000008, 30000009), (200, 1000), (9, 10),
              (4, 100), (1, 1)]
    assert [percent_below(Fraction(*s)) for s in shares] == [89, 89, 89, 20, 90, 4, 100]
    from textgen.generate.base import MIN_COVERAGE

    assert not Fraction(9, 10) < MIN_COVERAGE  # exactly the bar is no shortfall


def test_an_unknown_base_is_one_line_that_says_what_to_do(cli, tiny_corpus, tmp_path):
    result = cli("train", str(tiny_corpus), "--base", "klingon", "--checkpoint-dir",
                 str(tmp_path))
    assert result.exit_code != 0
    assert "--base 'klingon' is not a shipped base (english, verse)" in said(result)
    assert "--base none trains from scratch" in said(result)
    assert "Traceback" not in result.stderr
    # Refused before TensorFlow loads (it was after, 5-10 s later), as other bad options are.
    code, imported, stderr = run_without_tensorflow(
        "train", str(tiny_corpus), "--base", "klingon", "--checkpoint-dir", str(tmp_path))
    assert code == 2 and not imported
    assert "--base 'klingon' is not a shipped base (english, verse) nor a generator run: " \
           "no run named 'klingon'" in stderr
    # a shipped base's name miscased or mistyped is named
    code, imported, stderr = run_without_tensorflow(
        "train", str(tiny_corpus), "--base", "English", "--checkpoint-dir", str(tmp_path))
    assert code == 2 and not imported
    assert "--base 'English' is not a shipped base (english, verse: did you mean english?)" \
        in stderr


def test_a_run_cannot_be_the_base_of_the_run_that_overwrites_it(cli, tiny_run, tiny_corpus,
                                                                  tmp_path):
    """--base NAME --run-name NAME --overwrite trained from the run it deleted: run.json named
    as its base a folder whose model was gone, with the hash of weights nobody had."""
    import shutil

    shutil.copytree(tiny_run.path, tmp_path / "mine")
    result = cli("train", str(tiny_corpus), "--base", "mine", "--run-name", "mine",
                 "--overwrite", "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 2
    assert said(result) == (f"error: --base {(tmp_path / 'mine').resolve()} is the run "
                            "--overwrite replaces: its model would be gone from under the new "
                            "one; give the new run another --run-name")
    assert (tmp_path / "mine" / "last.keras").is_file()  # untouched


def test_fine_tuning_with_every_model_option_given(cli, tiny_base, tmp_path):
    """With nothing left to choose, the config made before the base was known was kept: the
    text's own vocabulary, and Keras refused the base's weights (reported as a bug)."""
    corpus = tmp_path / "song.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    result = cli("train", str(corpus), "--base", str(tiny_base.path), *TINY_BASE,
                 "--cell", "lstm", "--no-layer-norm", "--dropout", "0.1", "--learning-rate",
                 "0.001", "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "ck" / "song" / "run.json").read_text())
    assert meta["base"]["new_chars"] == ["Ö", "ü"]


def test_a_base_run_that_cannot_be_used_is_one_line(cli, tiny_base, tiny_run, tiny_corpus,
                                                     tmp_path):
    import shutil

    args = ["train", str(tiny_corpus), *TINY_BASE, "--epochs", "1", "--checkpoint-dir",
            str(tmp_path / "ck")]
    # another run's model file copied in: a traceback ("this is a bug in textgen")
    swapped = shutil.copytree(tiny_base.path, tmp_path / "swapped")
    shutil.copy(tiny_run.path / "best.keras", swapped / "best.keras")
    result = cli(*args, "--base", str(swapped))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"{swapped / 'best.keras'}: does not match run.json (" in said(result)
    # a run without a model yet: its advice as the command line writes it (resume=True)
    unfinished = shutil.copytree(tiny_base.path, tmp_path / "unfinished")
    for model in unfinished.glob("*.keras"):
        model.unlink()
    result = cli(*args, "--base", str(unfinished))
    assert result.exit_code == 2 and "(or resume its training: --resume)" in said(result)
    # an empty name (an unset $BASE) is said as such
    result = cli(*args, "--base", "")
    assert result.exit_code == 2
    assert "--base an empty name is not a shipped base" in said(result)
    # best.keras deleted: said once (it was said twice, by two paths)
    no_best = shutil.copytree(tiny_base.path, tmp_path / "nobest")
    (no_best / "best.keras").unlink()
    result = cli(*args, "--base", str(no_best), "--run-name", "fromlast")
    assert result.exit_code == 0, result.stderr
    assert said(result).count("best.keras is missing; using last.keras") == 1


def test_an_exported_base_restores_its_weights_within_float16_precision(tiny_base, tmp_path):
    folder = export_base(tiny_base.path, tmp_path / "mini", {"trained_on": "a test"})
    description = json.loads((folder / "base.json").read_text())
    assert description["trained_on"] == "a test" and description["config"]["dropout"] == 0.0
    original = load_generator_weights(tiny_base.best)
    with np.load(folder / "weights.npz") as stored:
        assert all(stored[f"w{i}"].dtype == np.float16 for i in range(len(original)))
        restored = [stored[f"w{i}"].astype(np.float32) for i in range(len(original))]
    for got, want in zip(restored, original, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["english", "verse"])
def test_each_shipped_base_knows_english(name):
    assert name in shipped_bases()
    base = load_base(name)
    assert {"e", "E", " ", "\n", ",", "'", "\u2014"} <= set(base.vocab.chars)
    assert base.about["held_out_bits_per_char"] < 2.3  # letter frequencies alone: ~4
    stepper = NumpyStepper(base.config, base.weights)
    text = "The Duke of Venice said that "
    ids = Vocabulary(base.vocab.chars).encode(text)
    for i in ids[:-1]:
        stepper.step(int(i))
    out = []
    probs = stepper.step(int(ids[-1]))
    for _ in range(30):  # greedy: the likeliest character each time
        out.append(base.vocab.chars[int(np.argmax(probs))])
        probs = stepper.step(int(np.argmax(probs)))
    words = "".join(out).split()
    assert len(words) >= 4 and all(w.strip(".,;'").isalpha() for w in words[:-1]), out
    assert "".join(out).startswith(base.about["greedy_check"]["continuation"])


def test_a_base_that_is_a_classifier_run_is_refused(tiny_classifier_run, tiny_corpus):
    with pytest.raises(TextgenError, match=r"base '.*moods' is not a shipped base"):
        load_base(str(tiny_classifier_run.path))


def test_sampling_a_run_fine_tuned_from_a_run_uses_its_extended_vocabulary(
        tiny_base, tmp_path):
    from textgen.generate.train import train_generator

    corpus = tmp_path / "song.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    result = train_generator(corpus, checkpoint_dir=tmp_path, base=str(tiny_base.path),
                             epochs=1, steps_per_epoch=2, batch_size=4, seq_length=16)
    sampler = load_sampler(result.run)
    assert "Ö" in sampler.vocab.chars and "T" in sampler.vocab.chars  # both texts' letters
    assert sampler.generate("Tü", length=10, rng_seed=3).startswith("Tü")


def test_a_base_scores_windows_spread_over_the_text_as_fine_tuning_would_start(tiny_base):
    base = load_base(str(tiny_base.path))
    bits, scored = bits_per_char(base, TINY_TEXT, windows=3, window=20)
    assert scored == 3 * 19  # each window's first character only starts it
    stepper, nats = NumpyStepper(base.config, base.weights), 0.0
    for start in np.linspace(0, len(TINY_TEXT) - 20, 3).astype(int):  # one at a time, by hand
        stepper.reset()
        ids = base.vocab.encode(TINY_TEXT[start:start + 20])
        for now, following in zip(ids[:-1], ids[1:], strict=True):
            nats -= np.log(stepper.step(int(now))[following])
    assert bits == pytest.approx(nats / scored / np.log(2), rel=1e-5)
    # 'Ö' and 'ü', new to the base, cost what their new rows, fitted to the text, predict for
    # them: more than the known 'O' and 'u' in their places
    assert "Ö" not in base.vocab.chars and "ü" not in base.vocab.chars
    with_new, scored = bits_per_char(base, NEW_TEXT)
    without = bits_per_char(base, NEW_TEXT.replace("Ö", "O").replace("ü", "u"))[0]
    assert scored > 0 and without < with_new < 30
    assert bits_per_char(base, "Ö") == (pytest.approx(np.nan, nan_ok=True), 0)  # nothing to score


def test_the_default_fine_tunes_the_shipped_base_that_predicts_the_text_best(
        cli, tiny_base, tmp_path, monkeypatch):
    from textgen.generate import train

    chant = tmp_path / "chant.txt"
    chant.write_text("to be or not " * 60, encoding="utf-8")
    made = cli("train", str(chant), "--base", NO_BASE, *TINY_BASE, "--epochs", "2",
               "--checkpoint-dir", str(tmp_path / "bases"), "--run-name", "chant-base")
    assert made.exit_code == 0, made.stderr
    chant_base = (tmp_path / "bases" / "chant-base").resolve()
    monkeypatch.setattr(train, "shipped_bases", lambda: [str(tiny_base.path), str(chant_base)])
    result = cli("train", str(chant), "--epochs", "1", "--seq-length", "16", "--batch-size",
                 "4", "--steps-per-epoch", "2", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    assert (f"fine-tuning the base {chant_base} (1x24 lstm), the shipped base that predicts "
            "this text best") in said(result)
    meta = json.loads((tmp_path / "ck" / "chant" / "run.json").read_text())
    assert meta["config"]["base"] == str(chant_base)
    scores = meta["base_scores"]
    assert scores[str(chant_base)] < scores[str(tiny_base.path.resolve())]
    # two scores alike to two decimals are shown to three (a tie was shown as a win)
    found = train.choose_base

    def close(bases, text, starts=None):
        best, _, scored = found(bases, text, starts)
        return best, {b.name: 1.9554 if b is best else 1.9577 for b in bases}, scored

    monkeypatch.setattr(train, "choose_base", close)
    result = cli("train", str(chant), "--epochs", "1", "--seq-length", "16", "--batch-size",
                 "4", "--steps-per-epoch", "2", "--checkpoint-dir", str(tmp_path / "ck"),
                 "--run-name", "close")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"best \(1\.955 bits/char against \S+ 1\.958, over", said(result))



def test_the_default_trains_from_scratch_where_the_base_is_worse_than_guessing(
        cli, tiny_base, tmp_path, monkeypatch):
    """Noise of 6 characters the base rarely writes (the line break ends the held-out part):
    it predicts them more than a bit worse than guessing evenly (log2 6 = 2.58), so `auto`
    trains from scratch and says why; a
    --base named by the user is still fine-tuned."""
    from textgen.generate import train

    monkeypatch.setattr(train, "shipped_bases", lambda: [str(tiny_base.path)])
    noise = "".join(np.random.default_rng(1).choice(list("qWOA:;"), 3000)) + "\n"
    corpus = tmp_path / "noise.txt"
    corpus.write_text(noise, encoding="utf-8")
    args = ["--epochs", "1", "--seq-length", "16", "--batch-size", "4", "--steps-per-epoch",
            "2", "--checkpoint-dir", str(tmp_path / "ck")]
    result = cli("train", str(corpus), *args)
    assert result.exit_code == 0, result.stderr
    assert re.search(r"training from scratch: the shipped base that predicts this text best, "
                     r".*, does so at [\d.]+ bits/char, more than 1 bit worse than guessing "
                     r"evenly among its 6 characters \(2\.58\)", said(result))
    meta = json.loads((tmp_path / "ck" / "noise" / "run.json").read_text())
    assert meta["config"]["base"] == NO_BASE
    named = cli("train", str(corpus), "--base", str(tiny_base.path), "--run-name", "named",
                *args)
    assert named.exit_code == 0 and "fine-tuning the base" in said(named)

@pytest.mark.parametrize(("chars", "hinted"), [(400_000, True), (20_000, False)])
def test_a_large_text_far_from_the_base_is_told_to_try_from_scratch_too(
        cli, tiny_base, tmp_path, chars, hinted):
    """Random characters of the base's alphabet: no model predicts them under log2(its size)
    bits/char, far past FAR_BASE_BITS; only the large text gets the hint."""
    alphabet = sorted(set(TINY_TEXT) - {"\n"})
    noise = "".join(np.random.default_rng(0).choice(alphabet, chars)) + "\n"
    corpus = tmp_path / "noise.txt"
    corpus.write_text(noise, encoding="utf-8")
    result = cli("train", str(corpus), "--base", str(tiny_base.path), "--epochs", "1",
                 "--seq-length", "16", "--batch-size", "4", "--steps-per-epoch", "2",
                 "--val-split", "0.01", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.stderr
    hint = ("--base none trains from scratch, worth a try on a text this far from the base's "
            "books and over 350 kB (on code it did 0.01-0.08 better)")
    assert (hint in said(result)) == hinted
    assert "--base none trains from scratch" in said(result)
    meta = json.loads((tmp_path / "ck" / "noise" / "run.json").read_text())
    assert meta["config"]["base"] == str(tiny_base.path.resolve())  # the base stays


def test_the_shipped_bases_are_near_english_and_far_from_code():
    """The fine-tuning rate's bounds (sizing.NEAR_BASE_BITS, FAR_BASE_BITS) fit the shipped
    bases: the bundled speech keeps the gentle rate, Python code gets the rate from scratch."""
    from pathlib import Path

    from textgen.generate import sizing
    from textgen.generate.data import bundled_corpus_path

    speech = bundled_corpus_path().read_text(encoding="utf-8")
    code = Path(sizing.__file__).read_text(encoding="utf-8")
    for name in ("english", "verse"):
        base = load_base(name)
        assert bits_per_char(base, speech)[0] <= sizing.NEAR_BASE_BITS
        assert bits_per_char(base, code)[0] >= sizing.FAR_BASE_BITS


def test_the_default_picks_verse_for_the_bundled_speech_and_english_for_reviews():
    from textgen.generate.data import bundled_corpus_path

    bases = [load_base(name) for name in ("english", "verse")]
    speech = bundled_corpus_path().read_text(encoding="utf-8")
    assert choose_base(bases, speech)[0].name == "verse"
    reviews = sorted((bundled_corpus_path().parent / "reviews" / "train" / "pos").iterdir())
    prose = "\n".join(p.read_text(encoding="utf-8") for p in reviews)
    assert choose_base(bases, prose)[0].name == "english"


def test_the_rows_of_new_characters_are_fitted_to_the_text(tiny_base):
    base = load_base(str(tiny_base.path))
    text = TINY_TEXT.replace("\n", "\n\t")  # a tab opens every line: new to the base
    vocab, new = extended_vocabulary(base, text)
    assert new == ["\t"]
    averages, fitted = fine_tuning_weights(base, vocab), fine_tuning_weights(base, vocab, text)
    tab = vocab.chars.index("\t")
    others = [i for i in range(len(vocab)) if i != tab]
    # only the tab's rows change: its embedding row, output column and bias
    for got, want, axis in [(fitted[0], averages[0], 0), (fitted[-2], averages[-2], 1),
                            (fitted[-1], averages[-1], 0)]:
        np.testing.assert_array_equal(np.take(got, others, axis), np.take(want, others, axis))
    for got, want in zip(fitted[1:-2], averages[1:-2], strict=True):
        np.testing.assert_array_equal(got, want)
    # it reads like a known character (a tab after a newline: another space or newline)...
    assert any(np.array_equal(fitted[0][tab], fitted[0][i]) for i in others)

    # ...and starts as frequent as it is: over the text, the tab's mean probability is near
    # its share (the tiny base knows too little to place it: the shipped one does, below)
    def mean_tab(weights: list[np.ndarray]) -> float:
        config = GeneratorConfig.from_dict({**base.config.to_dict(), "vocab_size": len(vocab)},
                                           "test")
        stepper, total = NumpyStepper(config, weights), 0.0
        for char_id in vocab.encode(text):
            total += float(stepper.step(int(char_id))[tab])
        return total / len(text)

    share = text.count("\t") / len(text)
    assert share / 2 < mean_tab(fitted) < share * 2
    # a new character only at the very start has nothing to fit on: its averages stay
    alone_vocab, _ = extended_vocabulary(base, "Ö" + TINY_TEXT)
    for got, want in zip(fine_tuning_weights(base, alone_vocab, "Ö" + TINY_TEXT),
                         fine_tuning_weights(base, alone_vocab), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_new_character_on_every_line_is_expected_there_from_the_first_step():
    """The shipped base on the bundled speech with a tab opening each line, as a user's
    indented verse would: the fitted rows expect the tab after a newline, not mid-line."""
    from textgen.generate.data import bundled_corpus_path

    base = load_base("verse")
    text = bundled_corpus_path().read_text(encoding="utf-8").replace("\n", "\n\t")
    vocab, new = extended_vocabulary(base, text)
    assert new == ["\t"]
    config = GeneratorConfig.from_dict({**base.config.to_dict(), "vocab_size": len(vocab)},
                                       "test")
    tab = vocab.chars.index("\t")

    def next_tab(weights: list[np.ndarray], seed: str) -> float:
        stepper = NumpyStepper(config, weights)
        for char_id in vocab.encode(seed):
            probs = stepper.step(int(char_id))
        return float(probs[tab])

    averages, fitted = fine_tuning_weights(base, vocab), fine_tuning_weights(base, vocab, text)
    line_end, mid_line = text[:text.index("\t")], text[:text.index(" oft")]
    assert next_tab(averages, line_end) < 1e-4
    assert next_tab(fitted, line_end) > 0.5
    assert next_tab(fitted, mid_line) < 0.01
    # scored as fine-tuning starts, the tabbed speech is about as near the base as the plain one
    plain = bits_per_char(base, text.replace("\t", ""))[0]
    assert bits_per_char(base, text)[0] < plain + 0.25


def test_a_large_text_is_fitted_on_pieces_spread_over_it(tiny_base, monkeypatch):
    from textgen.generate import new_rows

    monkeypatch.setattr(new_rows, "SAMPLE_PIECES", 2)
    monkeypatch.setattr(new_rows, "PIECE_CHARS", 200)  # the text's first and last 200
    base = load_base(str(tiny_base.path))
    middle = len(TINY_TEXT) // 2
    text = TINY_TEXT[:100] + "Ö" * 5 + TINY_TEXT[100:middle] + "ü" * 5 + TINY_TEXT[middle:]
    vocab, new = extended_vocabulary(base, text)
    assert new == ["Ö", "ü"] and len(text) > 3 * 200
    fitted, averages = fine_tuning_weights(base, vocab, text), fine_tuning_weights(base, vocab)
    seen, unseen = vocab.chars.index("Ö"), vocab.chars.index("ü")
    assert fitted[-1][seen] != averages[-1][seen]  # in the first piece: fitted
    assert fitted[-1][unseen] == averages[-1][unseen]  # between the pieces: averages kept


def test_the_note_counts_new_characters_in_words():
    assert describe_new_chars(["\t"]) == "1 character the base never saw: '\\t' (U+0009)"
    assert describe_new_chars(["Ö", "ü"]).startswith("2 characters the base never saw: 'Ö'")
