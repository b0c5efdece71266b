"""Training curves as PNG images (matplotlib, no display needed)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from textgen.modes import mode_of
from textgen.runs import RunDir, write_output

MIN_LOSS_SPAN = 0.05  # nats: the least the loss axis shows either side of its curves


def _points(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    """The epochs that have a value of `key`, and those values (a row may leave one empty)."""
    kept = [row for row in rows if row.get(key) not in (None, "")]
    return [int(row["epoch"]) for row in kept], [float(row[key]) for row in kept]


def _label(name: str) -> str:
    """A run's name as a figure can draw it: a file name's bytes that are not UTF-8 (lone
    surrogates in Python's str, which matplotlib refuses) as the replacement character."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def plot_runs(runs: list[RunDir], output: Path) -> Path:
    """The runs' figure (render_png) written through write_output: atomically to a file,
    directly to a device or pipe."""
    write_output(output, render_png(runs), "-o")
    return output


def render_png(runs: list[RunDir]) -> bytes:
    """The runs' figure (draw) as PNG bytes."""
    import matplotlib.pyplot as plt

    image = io.BytesIO()
    with warnings.catch_warnings():
        # A run name in a script the default font lacks (Chinese, say) is drawn as boxes:
        # the curves are what matters, so no multi-line warning per missing glyph.
        warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)
        # Long run names leave the legend no room to lay out: the figure is drawn all the same.
        warnings.filterwarnings("ignore", message="Tight layout not applied",
                                category=UserWarning)
        fig = draw(runs)
        fig.savefig(image, format="png")
    plt.close(fig)
    return image.getvalue()


def draw(runs: list[RunDir]) -> Any:
    """A matplotlib figure: loss and validation loss per epoch for each run, the run's headline
    figure, and a marker at each run's best epoch. A figure that is the loss in other units
    (bits/char) is the loss axis's scale on the right; another (accuracy) has its own lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, MaxNLocator

    fig, loss_axis = plt.subplots(figsize=(8, 4.8), dpi=100)
    figures = {mode_of(run.read_meta()).figure for run in runs}
    shared = figures.pop() if len(figures) == 1 else None
    per_nat = shared.per_nat if shared else None
    figure_axis = loss_axis.twinx() if per_nat is None else loss_axis
    labels, all_epochs = set(), []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        meta = run.read_meta()
        rows = run.read_history()
        all_epochs += [int(r["epoch"]) for r in rows]
        prefix = f"{_label(run.name)}: " if len(runs) > 1 else ""
        dots = {"marker": "o", "markersize": 3}  # a run of one epoch is one point, not nothing
        loss_axis.plot(*_points(rows, "loss"), color=color, linestyle="--",
                       label=f"{prefix}loss", **dots)
        if any(r.get("val_loss") for r in rows):
            loss_axis.plot(*_points(rows, "val_loss"), color=color,
                           label=f"{prefix}val loss", **dots)
        figure = mode_of(meta).figure
        key, label = figure.key, figure.label
        epochs, values = _points(rows, key)
        if not values:  # no validation split: the training figure, named as such
            key, label = figure.fallback, figure.unit
            epochs, values = _points(rows, key)
        if per_nat is not None:  # drawn already, as the loss it is a multiple of: the loss
            # itself (rebuilt from the rounded figure, the star sat off its point)
            epochs, values = _points(rows, "val_loss" if key == figure.key else "loss")
        elif values:
            figure_axis.plot(epochs, values, color=color, linestyle=":",
                             label=f"{prefix}{label}", **dots)
        if values:
            labels.add(label)
        best = meta.get("training", {}).get("best_epoch")
        if best and best in epochs and values:
            figure_axis.plot([best], [values[epochs.index(best)]], marker="*", markersize=14,
                             color=color, linestyle="none", label=f"{prefix}best epoch {best}")
    loss_axis.set_xlabel("epoch")
    first, last = min(all_epochs), max(all_epochs)
    if last - first < 2:  # one or two epochs: half an epoch of margin, a tick at each
        loss_axis.set_xlim(first - 0.5, last + 0.5)
        loss_axis.xaxis.set_major_locator(FixedLocator(range(first, last + 1)))
    else:
        loss_axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    low, high = loss_axis.dataLim.y0, loss_axis.dataLim.y1
    if high - low < MIN_LOSS_SPAN:  # one epoch or a flat curve: matplotlib would zoom in on
        middle = (high + low) / 2   # rounding error, its axis labelled 1e-6+3.79733
        loss_axis.set_ylim(middle - MIN_LOSS_SPAN, middle + MIN_LOSS_SPAN)
    loss_axis.set_ylabel("loss (nats)")
    if per_nat is not None:  # the same lines, read in the figure's units
        scale = loss_axis.secondary_yaxis(
            "right", functions=(lambda y: y * per_nat, lambda y: y / per_nat))
        scale.set_ylabel(shared.unit)
    else:
        figure_axis.set_ylabel(" / ".join(sorted(labels)) or "")
    handles = loss_axis.get_legend_handles_labels()
    more = figure_axis.get_legend_handles_labels() if figure_axis is not loss_axis else ([], [])
    loss_axis.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="best")
    loss_axis.set_title(", ".join(_label(r.name) for r in runs))
    loss_axis.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_history(run: RunDir) -> Path | None:
    """The run's own history.png (after training); None when it has no history yet."""
    if not run.read_history():
        return None
    return plot_runs([run], run.plot)
