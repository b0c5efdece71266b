"""The sampler's choice rules and the one-step recurrences against the full Keras model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.generate.config import GeneratorConfig
from textgen.generate.drawing import (
    GOLDEN_GAMMA,
    Uniforms,
    choose_next,
    choose_next_ids,
    next_char_distribution,
    next_char_distributions,
    splitmix64,
)
from textgen.generate.limits import TextLimits
from textgen.generate.model import build_generator
from textgen.generate.sampling import SamplingSettings, load_sampler
from textgen.generate.stepper import NumpyStepper, read_keras_weights

PROBS = np.array([0.05, 0.4, 0.1, 0.3, 0.15])


def test_temperature_zero_is_argmax_without_dividing_by_zero():
    rng = Uniforms(0)
    picks = {choose_next(PROBS, rng, temperature=0) for _ in range(50)}
    assert picks == {1}


def test_top_k_never_picks_outside_the_k_likeliest():
    rng = Uniforms(0)
    picks = {choose_next(PROBS, rng, temperature=1.5, top_k=2) for _ in range(500)}
    assert picks == {1, 3}


def test_top_p_keeps_the_smallest_set_reaching_p():
    dist = next_char_distribution(PROBS, 1.0, top_p=0.7)  # 0.4 + 0.3 = 0.7
    assert set(np.flatnonzero(dist)) == {1, 3}
    assert dist.sum() == pytest.approx(1.0)
    rng = Uniforms(1)
    picks = {choose_next(PROBS, rng, temperature=1.0, top_p=0.5) for _ in range(500)}
    assert picks == {1, 3}


def test_low_temperature_sharpens_high_temperature_flattens():
    cold, hot = next_char_distribution(PROBS, 0.5), next_char_distribution(PROBS, 2.0)
    assert cold[1] > PROBS[1] > hot[1]


MIXED_SETTINGS = [(0.8, None, None), (0, None, None), (1.3, 5, None), (1.0, None, 0.6),
                  (0.5, 3, 0.9), (2.0, None, None)]


def test_each_row_is_drawn_as_it_would_be_alone():
    # One vectorised call for rows with mixed settings gives each row exactly (bit for bit)
    # what it gives alone, so a request's text does not depend on the rest of the batch.
    probs = np.random.default_rng(7).dirichlet(np.ones(30), size=6).astype(np.float32)
    together = next_char_distributions(probs, MIXED_SETTINGS)
    for row, settings, reshaped in zip(probs, MIXED_SETTINGS, together, strict=True):
        assert np.array_equal(next_char_distribution(row, *settings), reshaped)
    draws = choose_next_ids(probs, [Uniforms(i) for i in range(6)], MIXED_SETTINGS)
    alone = [choose_next(row, Uniforms(i), *settings)
             for i, (row, settings) in enumerate(zip(probs, MIXED_SETTINGS, strict=True))]
    assert draws == alone
    assert draws[1] == int(np.argmax(probs[1]))  # the greedy row


def test_uniform_draws_are_splitmix64_and_any_integer_seeds_them():
    # splitmix64's published first output for seed 0 (Vigna's reference implementation)
    assert splitmix64(0 + GOLDEN_GAMMA) == 0xE220A8397B1DCDAF
    draws = [Uniforms(0).random() for _ in range(1)] + [Uniforms(-1).random()]
    assert draws[0] == (0xE220A8397B1DCDAF >> 11) / 2**53
    assert Uniforms(-1).random() == Uniforms(2**64 - 1).random()  # seeds are taken mod 2**64
    stream = Uniforms(42)
    values = [stream.random() for _ in range(2000)]
    assert all(0 <= v < 1 for v in values) and 0.45 < np.mean(values) < 0.55
    assert len(set(values)) == len(values)


def _full_model_probs(model, ids):
    return model.predict(np.array([ids]), verbose=0)[0]


CELL_VARIANTS = [("lstm", False), ("gru", False), ("simplernn", False), ("lstm", True),
                 ("gru", True)]  # (cell, layer_norm)


@pytest.mark.parametrize(("cell", "layer_norm"), CELL_VARIANTS)
def test_numpy_stepper_matches_the_keras_model(cell, layer_norm, tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    config = GeneratorConfig(vocab_size=11, units=24, embed_dim=8, layers=2, cell=cell,
                             layer_norm=layer_norm, precision="float32")
    model = build_generator(config)
    # Non-zero biases so that every weight array takes part in the check.
    model.set_weights([w + np.random.default_rng(0).normal(0, 0.3, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    path = tmp_path / "m.keras"
    model.save(path)
    weights = read_keras_weights(path)
    assert [w.shape for w in weights] == [w.shape for w in model.get_weights()]
    ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    expected = _full_model_probs(model, ids)
    stepper = NumpyStepper(config, weights)
    got = np.array([stepper.step(i) for i in ids])
    assert np.max(np.abs(got - expected)) < 1e-5
    # Batched: three sequences side by side, each as it is alone.
    state = stepper.zero_state(3)
    rows = np.array([ids, ids[::-1], [0] * len(ids)]).T
    batched = np.array([stepper.advance(state, row) for row in rows])  # (time, 3, vocab)
    assert np.max(np.abs(batched[:, 0] - expected)) < 1e-5
    assert np.max(np.abs(batched[:, 1] - _full_model_probs(model, ids[::-1]))) < 1e-5


@pytest.mark.parametrize(("cell", "layer_norm"), CELL_VARIANTS)
def test_the_model_with_states_one_step_at_a_time_matches_the_full_model(cell, layer_norm):
    import keras

    keras.utils.set_random_seed(4)
    config = GeneratorConfig(vocab_size=9, units=16, embed_dim=8, layers=2, cell=cell,
                             layer_norm=layer_norm, precision="float32")
    model = build_generator(config)
    step = build_generator(config, with_states=True)
    step.set_weights(model.get_weights())
    ids = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1]
    expected = _full_model_probs(model, ids)
    n_states = 2 * config.layers if cell == "lstm" else config.layers
    states = [np.zeros((1, config.units), np.float32) for _ in range(n_states)]
    got = []
    for i in ids:
        probs, *states = step.predict([np.array([[i]]), *states], verbose=0)
        got.append(probs[0, 0])
    assert np.max(np.abs(np.array(got) - expected)) < 1e-5


def test_same_rng_seed_gives_the_same_text(tiny_run):
    sampler = load_sampler(tiny_run)
    a = sampler.generate("To be", 80, temperature=1.0, rng_seed=7)
    b = sampler.generate("To be", 80, temperature=1.0, rng_seed=7)
    c = sampler.generate("To be", 80, temperature=1.0, rng_seed=8)
    assert a == b != c
    assert a.startswith("To be") and len(a) == 85


def test_a_request_alone_and_among_fifteen_others_gives_the_same_text(tiny_run):
    """Continuous batching: each sequence has its own settings and random generator, and
    sequences joining later, ending earlier or being cancelled change nothing for it."""
    from textgen.generate.sampling import GenerationBatch

    sampler = load_sampler(tiny_run)
    request = SamplingSettings(temperature=0.9, length=120, top_p=0.95, rng_seed=11)
    alone = sampler.sample_with_reason("To be", request)
    batch = GenerationBatch(sampler)
    others = [batch.join("Whether" if i % 2 else "\n", SamplingSettings(
        temperature=0.5 + i / 10, length=20 + 13 * i, top_k=(i % 4) + 1, rng_seed=i))
        for i in range(8)]
    for _ in range(7):
        batch.step()  # the request joins a batch already under way
    streamed: list[str] = []
    mine = batch.join("To be", request, streamed.append)
    later = [batch.join("And by", SamplingSettings(length=300, rng_seed=100 + i))
             for i in range(7)]
    batch.step()
    batch.cancel(later[0])  # a client that went away (the one reading "And by" for all 7)
    peak = batch.size
    batch.run()
    assert mine.result() == alone and "".join(streamed) == alone.text
    assert peak == 16 and not batch.active and batch.state.rows == 0
    assert later[0].finish_reason == "cancelled" and later[0].text == ["And by"]
    assert all(g.result() == sampler.sample_with_reason(
        "".join(g.text[:1]), g.settings) for g in others + later[1:])


def test_samples_joining_with_one_seed_read_it_once_and_draw_as_alone(tiny_run, monkeypatch):
    """`n` samples of a long prompt: the seed is read in one row, not n (a step of 16 rows
    costs several of one), and each sample is the text it would be alone."""
    sampler = load_sampler(tiny_run)
    seed = "To be, or not to be, that is the question:\n" * 3
    settings = [SamplingSettings(temperature=1.0, length=30, rng_seed=i) for i in range(4)]
    alone = [sampler.sample_with_reason(seed, s) for s in settings]
    rows_stepped: list[int] = []
    advance = sampler.stepper.advance
    monkeypatch.setattr(sampler.stepper, "advance",
                        lambda state, ids: (rows_stepped.append(len(ids)), advance(state, ids))[1])
    together = sampler.sample_many([seed] * 4, settings)
    assert together == alone
    # one row until the seed's last character, which each sample reads in its own row
    assert rows_stepped[:len(seed) - 1] == [1] * (len(seed) - 1)
    assert rows_stepped[len(seed) - 1] == 4 and len(rows_stepped) == len(seed) + 29


def test_streaming_callback_sees_the_seed_then_pieces_of_at_most_a_line(tiny_run):
    from textgen.generate.sampling import CHUNK

    sampler = load_sampler(tiny_run)
    pieces: list[str] = []
    text = sampler.generate("To", 200, temperature=0.5, rng_seed=1, on_text=pieces.append)
    assert pieces[0] == "To" and "".join(pieces) == text
    assert all(len(p) <= CHUNK and "\n" not in p[:-1] for p in pieces[1:])
    assert len(pieces) >= 1 + 200 // CHUNK  # streamed while generated, not at the end


def test_unknown_seed_characters_are_named_or_skipped(tiny_run):
    sampler = load_sampler(tiny_run)
    with pytest.raises(TextgenError, match="'Z'"):
        sampler.generate("Zebra", 5)
    text = sampler.generate("Zebra", 5, skip_unknown=True, rng_seed=0)
    assert text.startswith("ebra")
    # `--seed 'To\nbe'` in a shell holds a backslash and an n: said so (--stop reads escapes)
    with pytest.raises(TextgenError, match=r"'\\\\' \(U\+005C\) \(\\n here is a backslash and an "
                                           r"n, not a line break\); remove them"):
        sampler.generate("To\\nbe", 5)


def test_a_seed_typed_in_another_unicode_form_reads_as_the_training_text_wrote_it(tiny_run):
    """'Cafe' + U+0301 (macOS, PDFs) was refused as an unknown lone accent where the model
    knows 'é', and skip_unknown dropped the accent."""
    from dataclasses import replace

    from textgen.generate.data import Vocabulary

    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    vocab = Vocabulary.from_text("Caf\u00e9 ")
    assert vocab.known_form(decomposed) == composed
    assert vocab.known_form(composed) == composed
    assert Vocabulary.from_text(decomposed).known_form(composed) == decomposed
    # a form is taken only where it knows more: \u212b (angstrom sign) stays, unknown either way
    assert vocab.known_form("\u212b") == "\u212b"
    sampler = load_sampler(tiny_run)  # its text with an 'é' (only the seed is read here)
    sampler.vocab = replace(sampler.vocab, chars=tuple(sorted({*sampler.vocab.chars, "\u00e9"})))
    assert sampler.prepare_seed("To be e\u0301") == "To be \u00e9"
    assert sampler.prepare_seed("To be e\u0301", skip_unknown=True) == "To be \u00e9"
    # and a stop text, which could never match the composed characters the model writes
    stop = SamplingSettings(stop=("e\u0301\n",))
    assert sampler.prepare_settings(stop).stop == ("\u00e9\n",)


def test_stateful_evaluation_equals_the_windowed_figure_over_one_window(tiny_run, tmp_path):
    """With one window spanning the whole text the two figures are the same computation; the
    stateful figure does not depend on the window length."""
    from textgen.generate.evaluate import evaluate_text
    from textgen.runs import find_model

    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be, that is the question:\nWhether 'tis nobler\n" * 3)
    chosen = find_model(tiny_run.path, mode="generate", checkpoint="last")
    whole = evaluate_text(text, chosen, window=len(text.read_text()))
    assert whole["bits_per_char_stateful"] == pytest.approx(whole["bits_per_char"], rel=1e-4)
    short = evaluate_text(text, chosen, window=4)
    assert short["bits_per_char_stateful"] == pytest.approx(whole["bits_per_char_stateful"])
    assert short["bits_per_char"] != pytest.approx(whole["bits_per_char"], rel=1e-3)
    # the keyword is the CLI's --checkpoint, and its error names it so
    assert load_sampler(tiny_run, checkpoint="best").run.path == tiny_run.path
    with pytest.raises(TextgenError, match="^checkpoint must be one of best, last"):
        load_sampler(tiny_run, checkpoint="newest")


def test_parallel_streams_score_a_long_text_as_one_stream_does(tiny_run, monkeypatch):
    """The stateful figure runs a long text as parallel parts, each with a lead-in of context:
    the same figure as one stream through the whole text (which takes far longer)."""
    import keras

    from textgen.generate import evaluate
    from textgen.generate.sampling import read_vocabulary

    config = GeneratorConfig.from_dict(json.loads(tiny_run.meta.read_text())["config"])
    trained = keras.saving.load_model(tiny_run.last, safe_mode=True)
    rng = np.random.default_rng(1)
    text = "".join(rng.choice(["To be, or not to be, ", "that is the question:\n",
                               "Whether 'tis nobler in the mind "], size=500))
    ids = read_vocabulary(tiny_run, config).encode(text)
    streams = []  # the batch each call ran: one row per stream
    build = evaluate.build_generator

    def counting_build(config, **options):
        model = build(config, **options)

        class Counting:
            inputs = model.inputs
            set_weights = model.set_weights

            def __call__(self, values, training=False):
                streams.append(int(values[0].shape[0]))
                return model(values, training=training)

        return Counting()

    monkeypatch.setattr(evaluate, "build_generator", counting_build)
    parallel = evaluate.stateful_nats(config, trained, ids)
    monkeypatch.setattr(evaluate, "MAX_STREAMS", 1)
    single = evaluate.stateful_nats(config, trained, ids)
    assert streams[0] == len(ids) // evaluate.MIN_PART_CHARS >= 4 and streams[-1] == 1
    assert parallel == pytest.approx(single, abs=2e-3)


def test_the_stream_model_carries_state_across_calls(tiny_run):
    """Two calls of half the text each, the state handed over, give the probabilities of one
    call over the whole text."""
    import keras

    config = GeneratorConfig.from_dict(json.loads(tiny_run.meta.read_text())["config"])
    trained = keras.saving.load_model(tiny_run.last, safe_mode=True)
    stream = build_generator(config, with_states=True, precision="float32")
    stream.set_weights(trained.get_weights())
    ids = np.random.default_rng(0).integers(0, config.vocab_size, size=(1, 30)).astype("int32")
    zeros = [np.zeros((1, config.units), "float32") for _ in stream.inputs[1:]]
    whole = stream.predict([ids, *zeros], verbose=0)[0]
    first, *states = stream.predict([ids[:, :13], *zeros], verbose=0)
    second = stream.predict([ids[:, 13:], *states], verbose=0)[0]
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    # The stream model computes in float32; the run may have trained in bfloat16.
    tolerance = 1e-5 if config.precision == "float32" else 2e-3
    np.testing.assert_allclose(whole, trained.predict(ids, verbose=0), atol=tolerance)


def test_a_stop_text_ends_the_sample_right_after_it_and_never_in_the_seed(tiny_run):
    sampler = load_sampler(tiny_run.path)
    seed = "To be"
    full = sampler.generate(seed, length=200, rng_seed=3, temperature=1.0)
    generated = full[len(seed):]
    stop = generated[40:43]
    first = generated.index(stop)
    stopped = sampler.sample_with_reason(
        seed, SamplingSettings(length=200, rng_seed=3, temperature=1.0, stop=("zzzz", stop)))
    assert stopped.text == seed + generated[: first + len(stop)]
    assert stopped.finish_reason == "stop"
    # A stop text inside the seed does not count; --length stays the upper bound.
    in_seed = sampler.sample_with_reason(
        seed, SamplingSettings(length=5, rng_seed=3, temperature=1.0, stop=("To be",)))
    assert in_seed.finish_reason == "length" and len(in_seed.text) == len(seed) + 5
    assert sampler.generate(seed, length=200, rng_seed=3, temperature=1.0, stop=stop) \
        == stopped.text
    with pytest.raises(TextgenError, match="^stop needs a non-empty text"):
        SamplingSettings(stop=("",))


@pytest.mark.parametrize(("values", "message"), [
    ({"top_k": 2.5}, "top_k must be a whole number >= 1, or off, got 2.5"),
    ({"top_k": "2"}, "top_k must be a whole number >= 1, or off, got '2'"),
    ({"length": 5.0}, "length must be a whole number >= 1, got 5.0"),
    ({"length": True}, "length must be a whole number >= 1, got True"),
    ({"temperature": "0.5"}, "temperature must be a finite number >= 0 (0 = greedy), got '0.5'"),
    ({"top_p": "0.5"}, "top_p must be a number in (0, 1], or off, got '0.5'"),
    ({"rng_seed": 1.5}, "rng_seed must be a whole number, or off, got 1.5"),
    ({"skip_unknown": 1}, "skip_unknown must be True or False, got 1"),
    ({"stop": 5}, "stop needs a non-empty text (or several)"),
])
def test_settings_of_the_wrong_type_are_named_not_a_traceback(values, message):
    """The Python API passes values untyped (these raised IndexError or TypeError)."""
    with pytest.raises(TextgenError) as info:
        SamplingSettings(**values)
    assert str(info.value).startswith(message)


def test_settings_take_numpy_numbers_and_no_stop_as_python_values():
    settings = SamplingSettings(length=np.int64(7), temperature=np.float32(0.5),
                                top_k=np.int32(3), rng_seed=np.int64(-1), stop=None)
    assert (settings.length, settings.top_k, settings.rng_seed, settings.stop) == (7, 3, -1, ())
    assert type(settings.length) is int and type(settings.temperature) is float


def test_the_python_api_takes_a_run_in_any_form(tiny_run, tmp_path):
    """load_sampler and evaluate_text take what the API hands out: a training result, a
    ModelChoice, a RunDir, a path or a name."""
    from types import SimpleNamespace

    from textgen import evaluate_text, find_model

    chosen = find_model(tiny_run.path, mode="generate", checkpoint="last")
    texts = {load_sampler(form, "last").generate("To", 20, rng_seed=1) for form in (
        SimpleNamespace(run=tiny_run), chosen, tiny_run, tiny_run.path, str(tiny_run.path))}
    assert len(texts) == 1
    corpus = tmp_path / "scored.txt"
    corpus.write_text("To be, or not to be\n" * 5)
    assert evaluate_text(corpus, str(tiny_run.path))["bits_per_char"] == pytest.approx(
        evaluate_text(corpus, chosen.run)["bits_per_char"])
    with pytest.raises(TextgenError, match="model must be a run name, a run folder"):
        load_sampler(42)


def test_the_python_api_names_a_wrong_argument(tiny_run, tmp_path):
    """Each of these raised a TypeError, an IndexError or a TensorFlow trace from inside."""
    from textgen import evaluate_text, find_model, train_generator

    sampler = load_sampler(tiny_run)
    corpus = tmp_path / "t.txt"
    corpus.write_text("To be, or not to be\n" * 5)
    for call, message in (
            (lambda: sampler.generate(5), "seed must be a string or None, got 5"),
            (lambda: sampler.generate("To", on_text=5), "on_text must be a function"),
            (lambda: sampler.sample_with_reason("To", None), "settings must be SamplingSett"),
            (lambda: sampler.sample_many(["a", "b"], [SamplingSettings()]), "2 seeds, 1 sett"),
            # a str read a character a seed; one object for a list: errors from inside, or
            # (on_end) raised only after all the samples were made
            (lambda: sampler.sample_many("Her", [SamplingSettings(length=3)] * 3),
             "seeds must be a list with one item per sample, got 'Her'"),
            (lambda: sampler.sample_many(["a", "b"], SamplingSettings(length=3)),
             "settings must be a list with one item per sample"),
            (lambda: sampler.sample_many(["a", "b"], [SamplingSettings(length=3)] * 2,
                                         on_text=print), "on_text must be a list with one"),
            (lambda: sampler.sample_many(["a", "b"], [SamplingSettings(length=3)] * 2,
                                         on_end=5), "on_end must be a function taking the"),
            (lambda: find_model(tiny_run, mode="classifier"), "mode must be one of generate"),
            (lambda: evaluate_text(corpus, tiny_run, window=-5), "window must be a whole numb"),
            (lambda: evaluate_text(corpus, tiny_run, batch_size=0), "batch_size must be a who"),
            (lambda: evaluate_text([corpus], tiny_run), "path must be a path (a str or pathl"),
            (lambda: train_generator(5), "corpus must be a path (a str or pathlib.Path), got"),
            (lambda: train_generator(""), "corpus is empty; give a file or folder name"),
            (lambda: train_generator(corpus, checkpoint_dir=""), "checkpoint_dir is empty")):
        with pytest.raises(TextgenError) as info:
            call()
        assert str(info.value).startswith(message)
    assert evaluate_text(corpus, tiny_run, decoding="latin-1")["chars"] == 100


def test_the_cli_says_why_each_sample_ended_and_writes_a_file(cli, tiny_run, tmp_path):
    args = ["sample", "--model", str(tiny_run.path), "--rng-seed", "3", "--length", "300",
            "--temperature", "1", "--num-samples", "2"]
    plain = cli(*args, "--json")
    texts = json.loads(plain.stdout)["samples"]
    stop = texts[0][20:22]
    result = cli(*args, "--json", "--stop", stop, "--stop", "qqq")
    data = json.loads(result.stdout)
    assert data["finish_reasons"][0] == "stop" and data["samples"][0].endswith(stop)
    out = tmp_path / "samples.txt"
    written = cli(*args, "-o", str(out))
    assert written.exit_code == 0 and written.stdout == ""
    assert out.read_text() == texts[0] + "\n\n" + texts[1] + "\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    bad = cli(*args, "-o", str(tmp_path / "no" / "such.txt"))
    assert bad.exit_code == 2 and f"the folder {tmp_path / 'no'} does not exist" in bad.stderr
    folder = cli(*args, "-o", str(tmp_path))
    assert folder.exit_code == 2 and "is a folder; give a file's name in it" in folder.stderr


def test_samples_keep_to_the_texts_characters_and_runs(tiny_run):
    """text_limits (the default): no character the training text lacks, none repeated more
    times in a row than the text repeats it; alone and in a batch alike; off, the model's own
    odds. Here the limits are made tight (no 'e', nothing twice in a row) to show the rule."""
    import re
    from dataclasses import replace

    sampler = load_sampler(tiny_run)
    meta = tiny_run.read_meta()
    assert meta["text_runs"][" "] >= 1 and all(n >= 1 for n in meta["text_runs"].values())
    assert list(sampler.limits.longest_runs) == [meta["text_runs"].get(c, 0)
                                                 for c in sampler.vocab.chars]
    tight = replace(sampler, limits=replace(sampler.limits, longest_runs=np.array(
        [0 if c == "e" else 1 for c in sampler.vocab.chars])))
    settings = [SamplingSettings(temperature=1.0, length=2000, rng_seed=seed) for seed in (1, 2)]
    alone = [tight.sample("To", s) for s in settings]
    together = [s.text for s in tight.sample_many(["To", "To"], settings)]
    assert alone == together
    for text in alone:
        generated = text[2:]
        assert "e" not in generated and not re.search(r"(.)\1", text[1:])
    free = tight.sample("To", replace(settings[0], text_limits=False))
    assert "e" in free[2:] and re.search(r"(.)\1", free)


def test_lines_start_as_the_texts_lines_start_alone_in_a_batch_and_exported(tiny_run):
    """After a line break, text_limits allow only characters some line of the text starts
    with (a fine-tuned model would indent, as its base's books do). Made tight here (lines
    start with 'T' only) to show the rule; the export keeps it as `textgen sample` does."""
    import re
    from dataclasses import replace

    from textgen.generate.export import sampling_module
    from textgen.generate.stepper import load_generator_weights

    sampler = load_sampler(tiny_run)
    meta = tiny_run.read_meta()
    assert meta["line_starts"] == "AOTW"  # TINY_TEXT's lines
    starts = sampler.limits.line_starts
    assert [c for c, ok in zip(sampler.vocab.chars, starts, strict=True) if ok] == list("AOTW")
    tight = replace(sampler, limits=replace(sampler.limits, line_starts=np.array(
        [c == "T" for c in sampler.vocab.chars])))
    settings = [SamplingSettings(temperature=1.5, length=600, rng_seed=seed) for seed in (4, 5)]
    alone = [tight.sample("To\n", s) for s in settings]
    assert alone == [s.text for s in tight.sample_many(["To\n", "To\n"], settings)]
    for text in alone:
        assert text.count("\n") >= 3 and not re.search(r"\n[^T]", text)
    free = tight.sample("To\n", replace(settings[0], text_limits=False))
    assert re.search(r"\n[^T]", free)
    module = sampling_module(tight.stepper.config, tight.vocab,
                             load_generator_weights(tiny_run.last), "\n", tight.limits)
    import tensorflow as tf

    for text, s in zip(alone, settings, strict=True):
        exported = module.generate(
            seed=tf.constant("To\n"), length=tf.constant(s.length),
            temperature=tf.constant(s.temperature, tf.float64),
            rng_seed=tf.constant(s.rng_seed, tf.int64), top_k=tf.constant(0),
            top_p=tf.constant(0.0, tf.float64))["text"].numpy().decode()
        assert exported == text
    # The hottest finite temperature keeps the limits too (all allowed characters near equal)
    hot = module.generate(
        seed=tf.constant("To\n"), length=tf.constant(600), temperature=tf.constant(
            1e308, tf.float64), rng_seed=tf.constant(1, tf.int64), top_k=tf.constant(0),
        top_p=tf.constant(0.0, tf.float64))["text"].numpy().decode()
    assert hot.count("\n") >= 3 and not re.search(r"\n[^T]", hot)


def test_lines_end_near_the_texts_longest_alone_in_a_batch_and_exported(tiny_run):
    """Past the text's longest line a space becomes a line break, and a line a word longer
    than that ends at once (hard-wrapped prose stays hard-wrapped). Made tight here (lines
    of 12, words of 4) to show the rule; the export keeps it as `textgen sample` does."""
    from dataclasses import replace

    import tensorflow as tf

    from textgen.generate.export import sampling_module
    from textgen.generate.stepper import load_generator_weights

    meta = tiny_run.read_meta()
    assert (meta["longest_line"], meta["longest_word"]) == (44, 10)  # TINY_TEXT's
    sampler = load_sampler(tiny_run)
    assert (sampler.limits.longest_line, sampler.limits.line_end) == (44, 54)
    tight = replace(sampler, limits=replace(sampler.limits, longest_line=12, longest_word=4))
    settings = [SamplingSettings(temperature=1.5, length=600, rng_seed=seed) for seed in (6, 7)]
    seed = "To be or not"  # 12 characters: the rule applies from the first character drawn
    alone = [tight.sample(seed, s) for s in settings]
    assert alone == [s.text for s in tight.sample_many([seed, seed], settings)]
    for text in alone:
        lines = text.split("\n")
        assert len(lines) >= 30 and max(map(len, lines)) <= 16
        assert not any(" " in line[12:] for line in lines)
        assert any(len(line) > 12 for line in lines)  # a word in progress ends its line
    free = tight.sample(seed, replace(settings[0], text_limits=False))
    assert max(map(len, free.split("\n"))) > 16
    module = sampling_module(tight.stepper.config, tight.vocab,
                             load_generator_weights(tiny_run.last), "\n", tight.limits)
    for text, s in zip(alone, settings, strict=True):
        exported = module.generate(
            seed=tf.constant(seed), length=tf.constant(s.length),
            temperature=tf.constant(s.temperature, tf.float64),
            rng_seed=tf.constant(s.rng_seed, tf.int64), top_k=tf.constant(0),
            top_p=tf.constant(0.0, tf.float64))["text"].numpy().decode()
        assert exported == text
    # A run trained before textgen recorded its lines keeps no line rule.
    old = {k: v for k, v in meta.items() if k not in ("longest_line", "longest_word")}
    assert TextLimits.of_run(sampler.vocab, old).longest_line == 0
    for damaged in ({"longest_line": -5}, {"longest_word": -1}, {"longest_line": 0},
                    {"longest_line": 10**30}):  # past int64: the export crashed on it
        assert TextLimits.of_run(sampler.vocab, {**meta, **damaged}).longest_line == 0
    # A text without spaces has no word to finish: its lines end at its longest.
    spaceless = {**meta, "text_runs": {c: n for c, n in meta["text_runs"].items() if c != " "}}
    assert TextLimits.of_run(sampler.vocab, spaceless).line_end == 44
    # and a stop text's words do not lengthen them (the stop's lines may)
    widened = TextLimits.of_run(sampler.vocab, spaceless).with_stops(["To be or\n\n"],
                                                                      sampler.vocab)
    assert widened.line_end == 44


def test_the_longest_line_and_word_are_read_across_the_pieces_of_a_long_text(monkeypatch):
    from textgen.generate import data

    monkeypatch.setattr(data, "RUN_PIECE", 3)
    assert data.line_lengths("ab\ncdefg h\n\nxy") == {"longest_line": 7, "longest_word": 5}
    assert data.line_lengths("abcdefgh\nx y") == {"longest_line": 8, "longest_word": 8}
    assert data.line_lengths("a b\tcdef\n") == {"longest_line": 8, "longest_word": 4}
    assert data.line_lengths("no breaks at all") is None


def test_line_starts_are_read_across_the_pieces_of_a_long_text(monkeypatch):
    from textgen.generate import data

    monkeypatch.setattr(data, "RUN_PIECE", 3)
    assert data.line_starts("ab\ncd\n\nEf\nx") == "\nEacx"  # breaks at pieces' edges
    assert data.line_starts("no breaks at all") is None


def test_a_stop_text_counts_as_text_for_the_limits(tiny_run):
    """A text without blank lines still lets a sample stop at "\\n\\n" when asked to (chat
    replies end so), alone and in a batch; without the stop, no blank line is written."""
    from dataclasses import replace

    sampler = load_sampler(tiny_run)
    assert sampler.limits.longest_runs[sampler.vocab.chars.index("\n")] == 1
    tight = replace(sampler, limits=replace(sampler.limits, line_starts=np.array(
        [c == "T" for c in sampler.vocab.chars])))
    settings = [SamplingSettings(temperature=1.5, length=3000, rng_seed=seed, stop="\n\n")
                for seed in range(4)]
    alone = [tight.sample_with_reason("To\n", s) for s in settings]
    assert alone == tight.sample_many(["To\n"] * 4, settings)
    assert any(s.finish_reason == "stop" for s in alone)
    for sample in alone:  # the one blank line ends the sample, begun in the seed or not
        assert "\n\n" not in sample.text[:-1]
        assert (sample.finish_reason == "stop") == sample.text.endswith("\n\n")
    unstopped = tight.sample("To\n", replace(settings[0], stop=()))
    assert "\n\n" not in unstopped and unstopped.count("\n") >= 3
    # A sample never ends empty: a stop begun in the seed (or whole in the first characters)
    # cannot be finished before the sample has text of its own.
    begun = [tight.sample_with_reason("To\n", replace(settings[0], rng_seed=seed, length=60))
             for seed in range(40)]
    assert begun == tight.sample_many(["To\n"] * 40, [replace(settings[0], rng_seed=seed,
                                                              length=60) for seed in range(40)])
    assert all(not b.text.startswith("To\n\n") for b in begun)
    firsts = {sampler.sample("To\n", SamplingSettings(temperature=2.0, length=1, rng_seed=seed,
                                                      stop="T"))[3] for seed in range(60)}
    assert firsts == {"A", "O", "W"}  # the lines' other starts: never the stop itself
    # Rows whose stop texts widen the limits alike share them (one pass a step for all).
    assert tight.limits_for(replace(settings[0], stop="zzq")) is tight.limits  # not in the text
    assert tight.limits_for(settings[0]) is tight.limits_for(replace(settings[0],
                                                                     stop=("q\n\n",)))


def test_a_completion_loses_only_the_generated_part_of_a_stop_text_begun_in_its_prompt():
    from textgen.serve.app import without_stop

    assert without_stop("\n", "stop", ("\n\n",), "To\n") == ""
    assert without_stop("be\n\n", "stop", ("\n\n",), "To\n") == "be"
    assert without_stop("be\n", "length", ("\n\n",), "To\n") == "be\n"


def _blas_thread_counts() -> list[int]:
    import numpy  # noqa: F401  (its BLAS loaded, for threadpoolctl to see)
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_threads_are_shared_by_overlapping_samples_and_given_back():
    """Two samples overlapping in two threads, ending in either order: BLAS stays on the
    count set until the last ends, then gets its threads back (never left at one for good)."""
    from textgen.generate.blas_threads import BlasThreads

    before = _blas_thread_counts()
    assert before
    chooser = BlasThreads()
    with chooser.one():
        assert set(_blas_thread_counts()) == {1}
        chooser.__enter__()  # a batch starts while one sequence samples
    assert set(_blas_thread_counts()) == {1}  # the batch's count still: one until timed
    chooser.__exit__(None, None, None)
    assert _blas_thread_counts() == before
    # a limit the program set is kept: nothing above it is tried, and it is there after
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        with chooser:
            assert {chooser.timed(_blas_thread_counts)[0] for _ in range(40)} == {1}
        assert set(_blas_thread_counts()) == {1}
    assert _blas_thread_counts() == before


class FakeBlas:
    """A BLAS whose steps take longer on one count: a machine idle (two threads pay) or busy
    (a second thread waits on its partner)."""

    def __init__(self, slow_on: int) -> None:
        self.num_threads, self.slow_on, self.counts_set = 2, slow_on, []

    def set_num_threads(self, count: int) -> None:
        self.num_threads = count
        self.counts_set.append(count)

    def step(self) -> int:
        time.sleep(0.004 if self.num_threads == self.slow_on else 0.0005)
        return self.num_threads


@pytest.mark.parametrize(("slow_on", "faster"), [(1, 2), (2, 1)])
def test_a_batch_steps_on_the_blas_thread_count_its_trials_time_faster(monkeypatch, slow_on,
                                                                       faster):
    """Two BLAS threads are 1.9x faster idle and 1.6-4x slower beside busy programs (the
    batch's count was fixed at two): the steps are timed on each now and then."""
    import threadpoolctl

    from textgen.generate import blas_threads as module

    blas = FakeBlas(slow_on)

    class FakeController:
        def select(self, user_api: str) -> FakeController:
            self.lib_controllers = [blas]
            return self

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", FakeController)
    chooser = module.BlasThreads()
    with chooser:
        counts = [chooser.timed(blas.step) for _ in range(module.TRIAL_STEPS)]
        assert counts.count(1) == counts.count(2)  # the trial times both alike
        assert chooser.chosen == faster
        assert {chooser.timed(blas.step) for _ in range(100)} == {faster}
    assert blas.num_threads == 2  # the program's default back
    # a trial that agrees with the last winner (one thread, the first choice) makes the next
    # come twice as late; one that changes it, at the shortest cycle
    first_cycle = module.SHORTEST_CYCLE_STEPS * (2 if faster == 1 else 1)
    assert chooser._cycle == first_cycle
    with chooser:
        for _ in range(first_cycle - 100):  # to the end of the second trial
            chooser.timed(blas.step)
    assert chooser.chosen == faster and chooser._cycle == 2 * first_cycle


def test_the_text_does_not_depend_on_the_blas_thread_count(tiny_run, monkeypatch):
    """(On a machine whose BLAS has one thread the two runs are the same run.)"""
    from threadpoolctl import threadpool_limits

    from textgen.generate import blas_threads as module

    sampler = load_sampler(tiny_run)
    settings = [SamplingSettings(length=300, temperature=0.8, rng_seed=i) for i in range(8)]
    monkeypatch.setattr(module, "TRIAL_STEPS", 0)  # no trials: the count chosen throughout
    monkeypatch.setattr(module.blas_threads, "chosen", max(_blas_thread_counts()))
    every_thread = sampler.sample_many(["To"] * 8, settings)
    with threadpool_limits(limits=1, user_api="blas"):  # kept: one thread throughout
        one = sampler.sample_many(["To"] * 8, settings)
    assert [s.text for s in every_thread] == [s.text for s in one]
