"""The thin plotting layer: draws what :mod:`jaxopt_notes.notes._figure_data` computes, and writes the
gallery (one PNG per figure plus an index). Headless and free of global state: figures are
plain ``matplotlib.figure.Figure`` objects, never pyplot's, so no backend is switched and
nothing needs closing.

Nothing here computes a curve; every array comes from a ``figures.*_data`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
except ImportError as error:  # the one place matplotlib is needed: say how to get it
    raise ImportError(
        "the figures need matplotlib, which the core library does not install: pip install 'jaxopt-notes[cli]'"
    ) from error

from jaxopt_notes.notes import _figure_data
from jaxopt_notes.notes._escape import EscapeRow
from jaxopt_notes.notes._running_example import CONTENDERS, Result

DPI = 110
PATH_STYLES = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange")


def save(figure: Figure, path: Path) -> Path:
    """Writes ``figure`` as a PNG and closes it."""
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_ewa(data: _figure_data.EwaData) -> Figure:
    figure = Figure(figsize=(9, 4.5))
    axes = figure.subplots()
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


def plot_bias_correction(data: _figure_data.BiasCorrectionData) -> Figure:
    figure = Figure(figsize=(9, 4.5))
    axes = figure.subplots()
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


def plot_paths(data: _figure_data.PathsData, title: str) -> Figure:
    figure = Figure(figsize=(9, 4.2))
    axes = figure.subplots()
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


def plot_schedules(data: _figure_data.SchedulesData) -> Figure:
    figure = Figure(figsize=(9, 4.5))
    axes = figure.subplots()
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


def plot_batch_vs_minibatch(data: _figure_data.BatchVsMinibatchData) -> Figure:
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2, sharey=True)
    left.plot(np.arange(len(data.batch_cost)), data.batch_cost, color="tab:blue", lw=2)
    left.set(title=f"Batch gradient descent (each step: all m = {data.m:,})", xlabel="step (= epoch)", ylabel="cost J")
    right.plot(np.arange(len(data.minibatch_cost)), data.minibatch_cost, color="tab:orange", lw=1)
    right.set(
        title=f"Minibatch gradient descent (each step: {data.minibatch_size} examples)", xlabel="minibatch step t"
    )
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.suptitle("Cost per step: smooth with the whole set, noisy but trending down with minibatches")
    figure.tight_layout()
    return figure


def plot_minibatch_size(data: _figure_data.MinibatchSizeData) -> Figure:
    figure = Figure(figsize=(15, 4.6))
    by_epoch, by_time, bars = figure.subplots(1, 3, gridspec_kw={"width_ratios": [5, 5, 4]})
    sizes = list(data.smoothed_cost)
    names = [f"m = {size:,}" if size == data.m else str(size) for size in sizes]
    labels = [
        name + (" (batch GD)" if size == data.m else " (SGD)" if size == 1 else "")
        for name, size in zip(names, sizes, strict=True)
    ]
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(sizes)))
    for size, label, colour in zip(sizes, labels, colours, strict=True):
        style = {"marker": "o"} if size == data.m else {}
        by_epoch.plot(data.epoch[size], data.smoothed_cost[size], color=colour, lw=1.5, label=label, **style)
        by_time.plot(data.seconds[size][1:], data.smoothed_cost[size][1:], color=colour, lw=1.5, **style)
    by_epoch.set(
        title="Cost against epochs seen",
        xlabel="epochs (passes over the training set)",
        ylabel=f"cost J, smoothed over about {data.window:,} examples",
    )

    by_time.set(title="Cost against compute time", xlabel="seconds of training (log scale)", xscale="log")
    by_time.legend(*by_epoch.get_legend_handles_labels(), title="minibatch size", fontsize=8, loc="lower left")
    by_time.sharey(by_epoch)
    bars.bar(names, [1000 * data.seconds_per_epoch[size] for size in sizes], color=colours)
    bars.set(title="Time per epoch (compiled)", xlabel="minibatch size", ylabel="milliseconds per epoch")
    bars.tick_params(axis="x", labelrotation=30)
    for axes in (by_epoch, by_time):
        axes.grid(alpha=0.3)
    bars.grid(alpha=0.3, axis="y")
    figure.suptitle(f"Choosing the minibatch size (m = {data.m:,}, gradient descent with alpha 0.05)")
    figure.tight_layout()
    return figure


RACE_COLOURS = ("tab:red", "tab:blue", "tab:cyan", "tab:green", "tab:purple")


def _race_label(row: EscapeRow) -> str:
    return f"{row.name}: " + ("no escape" if row.steps is None else f"{row.steps} steps")


def draw_race_paths(axes: Axes, data: _figure_data.EscapeData) -> None:
    """The racers' paths over the problem's contours."""
    axes.contour(
        data.grid_x, data.grid_y, data.grid_cost, levels=20, colors="0.65", linewidths=0.7, negative_linestyles="solid"
    )
    axes.contour(
        data.grid_x, data.grid_y, data.grid_cost, levels=[data.problem.escape_level], colors="k", linestyles="--"
    )
    for colour, row in zip(RACE_COLOURS, data.rows, strict=False):
        axes.plot(row.path[:, 0], row.path[:, 1], "-", marker=".", ms=3, lw=1.3, color=colour, label=_race_label(row))
    axes.plot(*data.rows[0].path[0], "k^", ms=8)
    axes.set(xlabel="w0", ylabel="w1", title=f"{data.problem.name}: paths (dashed: escape level)")


def draw_race_costs(axes: Axes, data: _figure_data.EscapeData) -> None:
    """Each racer's cost per step, log-scaled steps, up to its escape."""
    for colour, row in zip(RACE_COLOURS, data.rows, strict=False):
        axes.plot(np.arange(1, len(row.losses) + 1), row.losses, color=colour, lw=1.8, label=_race_label(row))
    axes.axhline(data.problem.escape_level, color="k", ls="--", lw=0.8, label="escape level")
    axes.set(
        xscale="log", xlabel="updates + 1 (log scale)", ylabel="cost J", title=f"{data.problem.name}: cost per step"
    )
    axes.grid(alpha=0.3)


def plot_saddle_surface(data: _figure_data.EscapeData) -> Figure:
    figure = Figure(figsize=(11, 5))
    surface = figure.add_subplot(1, 2, 1, projection="3d")
    surface.plot_surface(data.grid_x, data.grid_y, data.grid_cost, cmap="coolwarm", alpha=0.4, linewidth=0)
    for colour, row in zip(RACE_COLOURS, data.rows, strict=False):
        surface.plot(row.path[:, 0], row.path[:, 1], row.losses, color=colour, lw=2.2, zorder=10)
    surface.scatter([0], [0], [0], color="k", s=30)
    surface.set(xlabel="w0", ylabel="w1", zlabel="cost J", title="J = w0^2/2 + w1^4/4 - w1^2/2")
    surface.view_init(elev=28, azim=-130)
    paths = figure.add_subplot(1, 2, 2)
    draw_race_paths(paths, data)
    paths.legend(fontsize=8, loc="lower left")
    figure.suptitle("A saddle point: zero gradient, curving up along w0 and down along w1; every optimizer escapes")
    figure.tight_layout()
    return figure


def plot_plateau(data: _figure_data.EscapeData) -> Figure:
    figure = Figure(figsize=(12, 4.6))
    paths, costs = figure.subplots(1, 2)
    draw_race_paths(paths, data)
    draw_race_costs(costs, data)
    costs.legend(fontsize=8, loc="upper right")
    figure.suptitle(
        "A plateau: J = sigmoid(-2 w0) + w1^2/2 is nearly flat for w0 << 0; adaptive steps leave it fastest"
    )
    figure.tight_layout()
    return figure


def plot_escape_race(saddle: _figure_data.EscapeData, plateau: _figure_data.EscapeData) -> Figure:
    """The ``saddle`` command's figure: paths and costs for both problems."""
    figure = Figure(figsize=(12, 9))
    grid = figure.subplots(2, 2)
    for column, data in enumerate((saddle, plateau)):
        draw_race_paths(grid[0, column], data)
        draw_race_costs(grid[1, column], data)
        grid[1, column].legend(fontsize=8, loc="upper right")
    figure.suptitle("Escape race (notes section 8): steps until the cost falls below the escape level")
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class GalleryEntry:
    """One figure of the gallery: its file name, what it shows in one line, and how to draw it."""

    name: str
    caption: str
    draw: Callable[[bool], Figure]


GALLERY = (
    GalleryEntry(
        "batch_vs_minibatch.png",
        "Notes section 1: the cost at every step of batch gradient descent falls smoothly; with minibatches it "
        "trends down with noise, because every minibatch is a different sample.",
        lambda quick: plot_batch_vs_minibatch(
            _figure_data.batch_vs_minibatch_data(4_000, steps=100) if quick else _figure_data.batch_vs_minibatch_data()
        ),
    ),
    GalleryEntry(
        "minibatch_size.png",
        "Notes section 1: minibatch sizes 1 (stochastic: wanders, never settles, and slow per epoch), 64 to 1024, "
        "and m (batch: one long step per epoch); in between is fastest.",
        lambda quick: plot_minibatch_size(
            _figure_data.minibatch_size_data(4_000, sizes=(1, 64), epochs=2)
            if quick
            else _figure_data.minibatch_size_data()
        ),
    ),
    GalleryEntry(
        "ewa.png",
        "Notes section 2: a year of noisy daily temperatures and their exponentially weighted averages "
        "for beta = 0.9 (about 10 days), 0.98 (about 50 days: smoother but lagging) and 0.5 (about 2 days: noisy).",
        lambda quick: plot_ewa(_figure_data.ewa_data()),
    ),
    GalleryEntry(
        "bias_correction.png",
        "Notes section 3: with v_0 = 0 the raw average (purple) starts near zero; dividing by 1 - beta^t (green) "
        "fixes the start and fades out as t grows.",
        lambda quick: plot_bias_correction(_figure_data.bias_correction_data()),
    ),
    GalleryEntry(
        "momentum_paths.png",
        "Notes section 4: on elongated contours gradient descent oscillates across the valley; momentum averages "
        "the oscillation away and moves along the valley.",
        lambda quick: plot_paths(
            _figure_data.momentum_paths_data(), "Gradient descent vs momentum on elongated contours (40 steps)"
        ),
    ),
    GalleryEntry(
        "adaptive_paths.png",
        "Notes sections 5-6: RMSprop and Adam divide each coordinate's step by the root mean square of its "
        "gradients, so the steep direction no longer dominates.",
        lambda quick: plot_paths(
            _figure_data.adaptive_paths_data(), "RMSprop and Adam on the same contours (40 steps)"
        ),
    ),
    GalleryEntry(
        "schedules.png",
        "Notes section 7: the learning rate over 20 epochs for each decay form, with the notes' worked example "
        "(alpha0 = 0.2, decay_rate = 1: 0.1, 0.067, 0.05, 0.04).",
        lambda quick: plot_schedules(_figure_data.schedules_data()),
    ),
    GalleryEntry(
        "saddle.png",
        "Notes section 8: a saddle point (zero gradient, curving up one way and down the other) and the paths of "
        "gradient descent, momentum, RMSprop and Adam away from it.",
        lambda quick: plot_saddle_surface(_figure_data.escape_data("saddle")),
    ),
    GalleryEntry(
        "plateau.png",
        "Notes section 8: a plateau, a long almost flat shelf; plain gradient descent crawls across it for "
        "about a thousand steps, RMSprop and Adam leave it in tens.",
        lambda quick: plot_plateau(_figure_data.escape_data("plateau")),
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


def plot_compare(results: Sequence[Result], target: float, title: str) -> Figure:
    """One panel per optimizer of ``compare``: the raw minibatch cost faint, its smoothed cost
    bold, against epochs on a log scale (minibatch methods reach the target within a small
    fraction of the first epoch); panels share their axes."""
    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.3 * rows))
    grid = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    everything = np.concatenate([result.history.cost for result in results])
    top = max(result.history.cost[0] for result in results)
    bottom = min(np.nanpercentile(everything, 0.1), target, *(result.final_cost for result in results))

    # The same colour in every run; "tab10" is a ListedColormap, which the stubs do not say.
    colours = dict(zip(CONTENDERS, matplotlib.colormaps["tab10"].colors, strict=False))  # type: ignore[attr-defined]
    for axes, result in zip(grid.ravel(), results, strict=False):
        history, colour = result.history, colours[result.name]
        # cost[i] is measured after i updates, i.e. i / steps_per_epoch epochs; i = 0 has no
        # place on a log axis (it is the initial cost, the top of the panel).
        epoch = np.arange(1, len(history.cost)) / result.steps_per_epoch
        if result.steps_per_epoch == 1:  # one step per epoch: join its costs up to the final one
            axes.plot(
                np.append(epoch, len(history.cost)),
                np.append(history.cost[1:], result.final_cost),
                "o-",
                color=colour,
                lw=2,
                label="cost J (whole set, no noise)",
            )
        else:
            axes.plot(epoch, history.cost[1:], color=colour, alpha=0.25, lw=0.6, label="minibatch cost J")
            axes.plot(epoch, history.smoothed_cost[1:], color=colour, lw=2, label="smoothed (EWA, bias corrected)")
        finished = len(history.cost) / result.steps_per_epoch
        axes.plot(finished, result.final_cost, "k*", ms=9, label="final cost (whole set)")
        axes.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:.4f}")
        steps = result.steps_to(target)
        if steps:
            axes.plot(steps / result.steps_per_epoch, target, "kv", ms=7, label="target reached")
        axes.set_title(f"{result.label} (alpha {result.learning_rate:g}, batch {result.batch_size:,})", fontsize=10)
        axes.set_xscale("log")
        axes.grid(alpha=0.3)
        if top > 4 * bottom > 0:  # a cost falling by orders of magnitude reads better on a log scale
            axes.set_yscale("log")
            axes.set_ylim(bottom / 1.2, top * 1.2)
        else:
            axes.set_ylim(bottom - 0.05 * (top - bottom), top + 0.05 * (top - bottom))
    for axes in grid.ravel()[len(results) :]:
        axes.set_visible(False)
    for axes in grid[-1]:
        axes.set_xlabel("epochs (log scale)")
    for axes in grid[:, 0]:
        axes.set_ylabel("cost J")
    for axes in grid.ravel()[: min(2, len(results))]:
        axes.legend(fontsize=8, loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure
