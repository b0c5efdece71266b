"""Precision: what `auto` resolves to on a machine, and what a new run records."""

from __future__ import annotations

import json

from tests.conftest import TINY_GENERATOR


def test_precision_auto_picks_bfloat16_only_where_the_cpu_computes_it():
    from textgen.generate.config import GeneratorConfig, Precision, resolve_precision
    from textgen.tf_setup import cpu_supports_bfloat16

    assert GeneratorConfig(vocab_size=2).precision == Precision.auto
    assert resolve_precision(Precision.auto, True, 0) == Precision.mixed_bfloat16
    assert resolve_precision(Precision.auto, False, 0) == Precision.float32
    assert resolve_precision(Precision.auto, True, 1) == Precision.float32  # a GPU: cuDNN
    assert resolve_precision(Precision.float32, True, 0) == Precision.float32
    assert resolve_precision(Precision.mixed_bfloat16, False, 0) == Precision.mixed_bfloat16
    assert cpu_supports_bfloat16("model name : Intel Xeon\nflags : fpu avx512f avx512_bf16\n")
    assert cpu_supports_bfloat16("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_supports_bfloat16("model name : bf16 avx512_bf16 lookalike\nflags : fpu avx2\n")


def test_a_new_run_records_the_precision_auto_chose(cli, tiny_corpus, tmp_path):
    from textgen.tf_setup import cpu_supports_bfloat16

    result = cli("train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "1",
                 "--checkpoint-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    expected = "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
    assert f"note: precision {expected}" in result.stderr
    meta = json.loads((tmp_path / "hamlet" / "run.json").read_text())
    assert meta["config"]["precision"] == expected


def test_bfloat16_asked_for_where_it_is_emulated_is_said(cli, tiny_corpus, tmp_path,
                                                          monkeypatch):
    """`--precision mixed_bfloat16` on a CPU without it trained slower without a word."""
    from textgen.generate import train
    from textgen.generate.config import Precision

    args = ["train", str(tiny_corpus), *TINY_GENERATOR, "--epochs", "1", "--precision",
            "mixed_bfloat16", "--checkpoint-dir", str(tmp_path)]
    monkeypatch.setattr(train, "machine_precision", lambda precision: Precision.float32)
    result = cli(*args, "--run-name", "emulated")
    assert result.exit_code == 0, result.stderr
    assert ("note: precision mixed_bfloat16: no native bfloat16 here (no AVX512-BF16, AMX or "
            "GPU), so it is emulated, most likely slower than --precision float32"
            ) in result.stderr
    monkeypatch.setattr(train, "machine_precision", lambda precision: Precision.mixed_bfloat16)
    result = cli(*args, "--run-name", "native")
    assert result.exit_code == 0 and "emulated" not in result.stderr


def test_a_programs_global_keras_policy_never_reaches_textgens_models(tiny_corpus, tmp_path):
    """A program's `set_global_policy("mixed_float16")` and `set_floatx("float64")` reached the
    layers that take the global policy (Dropout): a float32 run saved mixed_float16 layers
    and its figures differed from the same seed's. They stay the program's, untouched."""
    import keras

    from textgen import evaluate_text, train_generator
    from textgen.runs import load_keras_model

    tiny = dict(units=16, embed_dim=8, seq_length=16, batch_size=4, steps_per_epoch=4,
                epochs=1, base="none", precision="float32", layers=2,
                checkpoint_dir=tmp_path)
    plain = train_generator(tiny_corpus, run_name="plain", **tiny)
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.config.set_floatx("float64")
    try:
        changed = train_generator(tiny_corpus, run_name="changed", **tiny)
        scores = evaluate_text(tiny_corpus, changed.run)
        assert keras.config.dtype_policy().name == "mixed_float16"
        assert keras.config.floatx() == "float64"
    finally:
        keras.config.set_floatx("float32")
        keras.mixed_precision.set_global_policy("float32")
    model = load_keras_model(changed.run.path / "last.keras")
    assert {layer.dtype_policy.name for layer in model.layers[1:]} == {"float32"}
    def figures(run) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in run.read_history()]

    assert figures(changed.run) == figures(plain.run)
    assert scores == evaluate_text(tiny_corpus, plain.run)
