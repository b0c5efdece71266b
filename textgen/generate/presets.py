"""Named sets of training options, chosen knowingly with `--preset NAME`.

A preset fills in the options the user did not give on the command line; explicit options win.
"""

from __future__ import annotations

from textgen.errors import TextgenError

# Measured on a 2-core AVX512-BF16 CPU on tinyshakespeare: see benchmarks/README.md.
PRESETS: dict[str, dict[str, object]] = {
    "cpu-10min": {
        "cell": "gru",
        "layers": 2,
        "units": 384,
        "batch_size": 128,
        "seq_length": 100,
        "dropout": 0.0,
        "learning_rate": 4e-3,
        "lr_schedule": "cosine",
        "max_time": 10.0,
        "epochs": 100_000,  # the time budget ends training
        "precision": "auto",
    },
}


def preset_values(name: str | None) -> dict[str, object]:
    """The preset's options (precision auto: bfloat16 only where the CPU computes it)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise TextgenError(f"unknown --preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
