"""Training curves as PNG images (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

from textgen.modes import mode_of
from textgen.runs import RunDir, write_output


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def plot_runs(runs: list[RunDir], output: Path) -> Path:
    """The runs' figure (render_png) written through write_output: atomically to a file,
    directly to a device or pipe."""
    write_output(output, render_png(runs), "-o")
    return output


def render_png(runs: list[RunDir]) -> bytes:
    """Loss and validation loss per epoch for each run, the run's headline figure on a second
    axis, and a marker at each run's best epoch, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, loss_axis = plt.subplots(figsize=(8, 4.8), dpi=100)
    figure_axis = loss_axis.twinx()
    labels, all_epochs = set(), []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        meta = run.read_meta()
        rows = run.read_history()
        epochs = [int(r["epoch"]) for r in rows]
        all_epochs += epochs
        prefix = f"{run.name}: " if len(runs) > 1 else ""
        dots = {"marker": "o", "markersize": 3}  # a run of one epoch is one point, not nothing
        loss_axis.plot(epochs, _column(rows, "loss"), color=color, linestyle="--",
                       label=f"{prefix}loss", **dots)
        if any("val_loss" in r for r in rows):
            loss_axis.plot(epochs, _column(rows, "val_loss"), color=color,
                           label=f"{prefix}val loss", **dots)
        figure = mode_of(meta).figure
        key, label = figure.key, figure.label
        values = _column(rows, key)
        if not values:  # no validation split: the training figure, named as such
            key, label, values = figure.fallback, figure.unit, _column(rows, figure.fallback)
        if values:
            figure_axis.plot(epochs[: len(values)], values, color=color, linestyle=":",
                             label=f"{prefix}{label}", **dots)
            labels.add(label)
        best = meta.get("training", {}).get("best_epoch")
        if best and best in epochs and values:
            figure_axis.plot([best], [values[epochs.index(best)]], marker="*", markersize=14,
                             color=color, linestyle="none", label=f"{prefix}best epoch {best}")
    loss_axis.set_xlabel("epoch")
    loss_axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    first, last = min(all_epochs), max(all_epochs)
    if last - first < 2:  # one or two epochs: half an epoch of margin, whole-number ticks
        loss_axis.set_xlim(first - 0.5, last + 0.5)
    loss_axis.set_ylabel("loss (nats)")
    figure_axis.set_ylabel(" / ".join(sorted(labels)) or "")
    handles = loss_axis.get_legend_handles_labels()
    more = figure_axis.get_legend_handles_labels()
    loss_axis.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="best")
    loss_axis.set_title(", ".join(r.name for r in runs))
    loss_axis.grid(alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png")
    plt.close(fig)
    return image.getvalue()


def plot_history(run: RunDir) -> Path | None:
    """The run's own history.png (after training); None when it has no history yet."""
    if not run.read_history():
        return None
    return plot_runs([run], run.path / "history.png")
