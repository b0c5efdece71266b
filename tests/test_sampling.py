"""The sampler's choice rules and the one-step recurrences against the full Keras model."""

from __future__ import annotations

import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.generate.config import GeneratorConfig
from textgen.generate.model import build_generator, build_step_model
from textgen.generate.sampling import (
    NumpyStepper,
    choose_next,
    load_sampler,
    next_char_distribution,
    read_keras_weights,
)

PROBS = np.array([0.05, 0.4, 0.1, 0.3, 0.15])


def test_temperature_zero_is_argmax_without_dividing_by_zero():
    rng = np.random.default_rng(0)
    picks = {choose_next(PROBS, rng, temperature=0) for _ in range(50)}
    assert picks == {1}


def test_top_k_never_picks_outside_the_k_likeliest():
    rng = np.random.default_rng(0)
    picks = {choose_next(PROBS, rng, temperature=1.5, top_k=2) for _ in range(500)}
    assert picks == {1, 3}


def test_top_p_keeps_the_smallest_set_reaching_p():
    dist = next_char_distribution(PROBS, 1.0, top_p=0.7)  # 0.4 + 0.3 = 0.7
    assert set(np.flatnonzero(dist)) == {1, 3}
    assert dist.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    picks = {choose_next(PROBS, rng, temperature=1.0, top_p=0.5) for _ in range(500)}
    assert picks == {1, 3}


def test_low_temperature_sharpens_high_temperature_flattens():
    cold, hot = next_char_distribution(PROBS, 0.5), next_char_distribution(PROBS, 2.0)
    assert cold[1] > PROBS[1] > hot[1]


def _full_model_probs(model, ids):
    return model.predict(np.array([ids]), verbose=0)[0]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_numpy_stepper_matches_the_keras_model(cell, tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    config = GeneratorConfig(vocab_size=11, units=24, embed_dim=8, layers=2, cell=cell)
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


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keras_step_model_matches_the_full_model(cell):
    import keras

    keras.utils.set_random_seed(4)
    config = GeneratorConfig(vocab_size=9, units=16, embed_dim=8, layers=2, cell=cell)
    model = build_generator(config)
    step = build_step_model(config, model)
    ids = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1]
    expected = _full_model_probs(model, ids)
    n_states = 2 * config.layers if cell == "lstm" else config.layers
    states = [np.zeros((1, config.units), np.float32) for _ in range(n_states)]
    got = []
    for i in ids:
        probs, *states = step.predict([np.array([[i]]), *states], verbose=0)
        got.append(probs[0])
    assert np.max(np.abs(np.array(got) - expected)) < 1e-5


def test_same_rng_seed_gives_the_same_text(tiny_run):
    sampler = load_sampler(tiny_run)
    a = sampler.generate("To be", 80, temperature=1.0, rng_seed=7)
    b = sampler.generate("To be", 80, temperature=1.0, rng_seed=7)
    c = sampler.generate("To be", 80, temperature=1.0, rng_seed=8)
    assert a == b != c
    assert a.startswith("To be") and len(a) == 85


def test_streaming_callback_sees_the_seed_then_each_character(tiny_run):
    sampler = load_sampler(tiny_run)
    pieces: list[str] = []
    text = sampler.generate("To", 10, temperature=0.5, rng_seed=1, on_text=pieces.append)
    assert pieces[0] == "To" and len(pieces) == 11 and "".join(pieces) == text


def test_unknown_seed_characters_are_named_or_skipped(tiny_run):
    sampler = load_sampler(tiny_run)
    with pytest.raises(TextgenError, match="'Z'"):
        sampler.generate("Zebra", 5)
    text = sampler.generate("Zebra", 5, skip_unknown=True, rng_seed=0)
    assert text.startswith("ebra")
