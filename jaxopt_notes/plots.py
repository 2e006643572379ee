"""The thin plotting layer: draws what :mod:`jaxopt_notes.figures` computes, and writes the
gallery (one PNG per figure plus an index). Headless: matplotlib's Agg backend.

Nothing here computes a curve; every array comes from a ``figures.*_data`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from jaxopt_notes import figures  # noqa: E402

DPI = 110
PATH_STYLES = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange")


def save(figure: Figure, path: Path) -> Path:
    """Writes ``figure`` as a PNG and closes it."""
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_ewa(data: figures.EwaData) -> Figure:
    figure, axes = plt.subplots(figsize=(9, 4.5))
    days = np.arange(1, len(data.series) + 1)
    axes.scatter(days, data.series, s=6, color="tab:blue", alpha=0.45, label="daily temperature theta_t")
    colours = {0.9: "tab:red", 0.98: "tab:green", 0.5: "goldenrod"}
    for beta, average in data.averages.items():
        span = 1 / (1 - beta)
        axes.plot(days, average, lw=2, color=colours.get(beta), label=f"beta = {beta} (about {span:.0f} days)")
    axes.set(
        title="Exponentially weighted averages: v_t = beta v_(t-1) + (1 - beta) theta_t",
        xlabel="day of the year",
        ylabel="temperature (degrees C)",
        xlim=(0, len(days) + 1),
    )
    axes.legend(loc="upper left", fontsize=9)
    axes.grid(alpha=0.3)
    return figure


def plot_bias_correction(data: figures.BiasCorrectionData) -> Figure:
    figure, axes = plt.subplots(figsize=(9, 4.5))
    days = np.arange(1, len(data.series) + 1)
    axes.scatter(days, data.series, s=6, color="tab:blue", alpha=0.45, label="daily temperature theta_t")
    axes.plot(days, data.raw, lw=2, color="tab:purple", label=f"v_t, beta = {data.beta} (starts at v_0 = 0)")
    axes.plot(days, data.corrected, lw=2, color="tab:green", label="v_t / (1 - beta^t), bias corrected")
    axes.set(
        title="Bias correction: the raw average starts far too low, the corrected one does not",
        xlabel="day of the year",
        ylabel="temperature (degrees C)",
        xlim=(0, len(days) + 1),
    )
    axes.legend(loc="upper left", fontsize=9)
    axes.grid(alpha=0.3)
    return figure


def plot_paths(data: figures.PathsData, title: str) -> Figure:
    figure, axes = plt.subplots(figsize=(9, 4.2))
    levels = np.geomspace(0.02, data.grid_cost.max(), 14)
    axes.contour(data.grid_x, data.grid_y, data.grid_cost, levels=levels, colors="0.6", linewidths=0.8)
    for colour, (name, path) in zip(PATH_STYLES, data.paths.items(), strict=False):
        axes.plot(path[:, 0], path[:, 1], "-o", ms=3, lw=1.3, color=colour, label=name)
    axes.plot(*path[0], "k^", ms=8)
    axes.plot(0, 0, "k*", ms=12, label="minimum")
    axes.set(
        title=title,
        xlabel="w0 (along the valley)",
        ylabel="w1 (across the valley)",
        xlim=(data.grid_x.min(), data.grid_x.max()),
        ylim=(data.grid_y.min(), data.grid_y.max()),
    )
    axes.legend(loc="lower right", fontsize=9)
    return figure


def plot_schedules(data: figures.SchedulesData) -> Figure:
    figure, axes = plt.subplots(figsize=(9, 4.5))
    for name, rates in data.rates.items():
        axes.plot(data.epoch, rates, lw=2, label=name)
    # The notes' printed numbers, as a check that the library's curve passes through them.
    axes.plot(
        [1.5, 2.5, 3.5, 4.5],
        [0.1, 0.067, 0.05, 0.04],
        "ko",
        ms=4,
        label="notes' worked example: 0.1, 0.067, 0.05, 0.04",
    )
    axes.set(
        title="Learning-rate decay over epochs (alpha0 = 0.2)",
        xlabel="epoch (numbered from 1, as in the notes)",
        ylabel="learning rate alpha",
        xlim=(1, data.epoch[-1]),
        ylim=(0, 0.21),
    )
    axes.legend(fontsize=9)
    axes.grid(alpha=0.3)
    return figure


@dataclass(frozen=True)
class GalleryEntry:
    """One figure of the gallery: its file name, what it shows in one line, and how to draw it."""

    name: str
    caption: str
    draw: Callable[[bool], Figure]


GALLERY = (
    GalleryEntry(
        "ewa.png",
        "Notes section 2: a year of noisy daily temperatures and their exponentially weighted averages "
        "for beta = 0.9 (about 10 days), 0.98 (about 50 days: smoother but lagging) and 0.5 (about 2 days: noisy).",
        lambda quick: plot_ewa(figures.ewa_data()),
    ),
    GalleryEntry(
        "bias_correction.png",
        "Notes section 3: with v_0 = 0 the raw average (purple) starts near zero; dividing by 1 - beta^t (green) "
        "fixes the start and fades out as t grows.",
        lambda quick: plot_bias_correction(figures.bias_correction_data()),
    ),
    GalleryEntry(
        "momentum_paths.png",
        "Notes section 4: on elongated contours gradient descent oscillates across the valley; momentum averages "
        "the oscillation away and moves along the valley.",
        lambda quick: plot_paths(
            figures.momentum_paths_data(), "Gradient descent vs momentum on elongated contours (40 steps)"
        ),
    ),
    GalleryEntry(
        "adaptive_paths.png",
        "Notes sections 5-6: RMSprop and Adam divide each coordinate's step by the root mean square of its "
        "gradients, so the steep direction no longer dominates.",
        lambda quick: plot_paths(figures.adaptive_paths_data(), "RMSprop and Adam on the same contours (40 steps)"),
    ),
    GalleryEntry(
        "schedules.png",
        "Notes section 7: the learning rate over 20 epochs for each decay form, with the notes' worked example "
        "(alpha0 = 0.2, decay_rate = 1: 0.1, 0.067, 0.05, 0.04).",
        lambda quick: plot_schedules(figures.schedules_data()),
    ),
)


def write_gallery(out: str | Path, *, quick: bool = False) -> list[Path]:
    """Draws every figure of :data:`GALLERY` into ``out`` (created if needed) and writes
    ``index.md`` showing them with their captions; returns the paths written, index last.
    ``quick`` shrinks the training runs behind the figures (for tests)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [save(entry.draw(quick), out / entry.name) for entry in GALLERY]
    lines = ["# The notes' figures, regenerated by `jaxopt-notes figures`", ""]
    for entry in GALLERY:
        lines += [f"## {entry.name}", "", entry.caption, "", f"![{entry.name}]({entry.name})", ""]
    index = out / "index.md"
    index.write_text("\n".join(lines))
    return [*written, index]


def plot_compare(results, target: float, title: str) -> Figure:
    """One panel per optimizer of ``compare``: the raw minibatch cost faint, its smoothed cost
    bold, against epochs; panels share their axes."""
    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    figure, grid = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.3 * rows), sharex=True, sharey=True, squeeze=False
    )
    everything = np.concatenate([result.history.cost for result in results])
    top = max(result.history.cost[0] for result in results)
    bottom = min(np.nanpercentile(everything, 0.1), target, *(result.final_cost for result in results))
    for axes, colour, result in zip(grid.ravel(), plt.cm.tab10.colors, results, strict=False):
        history = result.history
        # Step i's cost is measured before its update, at i / steps_per_epoch epochs of training.
        epoch = np.arange(len(history.cost)) / result.steps_per_epoch
        if result.steps_per_epoch == 1:
            axes.plot(epoch, history.cost, "o-", color=colour, lw=2, label="cost J (whole set, no noise)")
        else:
            axes.plot(epoch, history.cost, color=colour, alpha=0.25, lw=0.6, label="minibatch cost J")
            axes.plot(epoch, history.smoothed_cost, color=colour, lw=2, label="smoothed (EWA, bias corrected)")
        axes.plot(
            len(history.cost) / result.steps_per_epoch, result.final_cost, "k*", ms=9, label="final cost (whole set)"
        )
        axes.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:.4f}")
        axes.set_title(f"{result.label} (alpha {result.learning_rate:g}, batch {result.batch_size:,})", fontsize=10)
        axes.grid(alpha=0.3)
        if top > 4 * bottom > 0:  # a cost falling by orders of magnitude reads better on a log scale
            axes.set_yscale("log")
            axes.set_ylim(bottom / 1.2, top * 1.2)
        else:
            axes.set_ylim(bottom - 0.05 * (top - bottom), top + 0.05 * (top - bottom))
    for axes in grid.ravel()[len(results) :]:
        axes.set_visible(False)
    for axes in grid[-1]:
        axes.set_xlabel("epoch")
    for axes in grid[:, 0]:
        axes.set_ylabel("cost J")
    for axes in grid.ravel()[: min(2, len(results))]:
        axes.legend(fontsize=8, loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure
