"""Named sets of training options, chosen knowingly with `--preset NAME`.

A preset fills in the options the user did not give on the command line; explicit options win.
"""

from __future__ import annotations

from textgen.errors import FIELD, FieldError, TextgenError
from textgen.generate.base import NO_BASE
from textgen.generate.config import Cell, GeneratorConfig, Precision
from textgen.training.options import BUDGET_EPOCHS, LRSchedule

# Measured on a 2-core AVX512-BF16 CPU on tinyshakespeare: see docs/performance.md. Values are
# typed as the config and training options hold them (enums, not strings).
PRESETS: dict[str, dict[str, object]] = {
    "cpu-10min": {
        "cell": Cell.gru,
        "layers": 2,
        "units": 384,
        "batch_size": 128,
        "seq_length": GeneratorConfig.seq_length,
        "dropout": 0.0,
        "learning_rate": 4e-3,
        "lr_schedule": LRSchedule.cosine,
        "max_time": 10.0,
        "epochs": BUDGET_EPOCHS,
        "precision": Precision.auto,
        "base": NO_BASE,  # a GRU of its own size: no shipped base (2x512 LSTMs) fits it
    },
}


def preset_values(name: str | None) -> dict[str, object]:
    """The preset's options (precision auto: bfloat16 only where the CPU computes it)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise FieldError("preset", f"must be one of {', '.join(PRESETS)}; got {name!r}")
    return dict(PRESETS[name])


def check_resumed_preset(name: str, meta: dict, run: str) -> None:
    """A resumed run keeps the options it started with: --preset on a resume must name the
    preset the run started with (it then changes nothing); another would be options the user
    never typed, refused or silently replacing the run's own (its budget)."""
    started = meta.get("preset")
    if started == name:
        return
    was = "without a preset" if started is None else "with {started}"
    raise TextgenError(f"{{preset}}: the run {run} was started {was}, and a resumed run keeps "
                       "the options it started with; leave out --preset, or start a new run "
                       "with {overwrite} or another {run_name}",
                       {"preset": ("preset", name), "started": ("preset", started),
                        "overwrite": ("overwrite", True), "run_name": ("run_name", FIELD)})


def preset_summary(name: str) -> str:
    """A preset in a few words for --help (`2x384 GRU, batches of 128, ...`)."""
    p = PRESETS[name]
    base = "--base none" if p["base"] == NO_BASE else f"--base {p['base']}"
    return (f"{p['layers']}x{p['units']} {p['cell'].name.upper()}, batches of {p['batch_size']}, "
            f"{p['lr_schedule']} schedule over --max-time {p['max_time']:g}, bfloat16 where the "
            f"CPU computes it, {base}")
