"""The data behind the notes' lost figures, computed by the library itself.

Each ``*_data`` function here is pure: it runs this library's transforms, schedules and
``fit`` and returns NumPy arrays in a small dataclass; nothing is re-derived for the picture.
The thin plotting layer in :mod:`jaxopt_notes.cli._plots` only draws what these functions return,
so the tests check the numbers here against independent references (NumPy loops, closed forms).

Example:
  >>> from jaxopt_notes.notes import _figure_data as figures
  >>> data = figures.ewa_data()
  >>> sorted(data.averages)
  [0.5, 0.9, 0.98]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import schedules
from jaxopt_notes._adam import adam
from jaxopt_notes._averaging import bias_correction, ewa
from jaxopt_notes._base import GradientTransformation, chain
from jaxopt_notes._momentum import momentum
from jaxopt_notes._rmsprop import rmsprop
from jaxopt_notes._sgd import sgd
from jaxopt_notes.data._batches import steps_per_epoch
from jaxopt_notes.notes import _escape, _running_example
from jaxopt_notes.notes._escape import EscapeProblem, EscapeRow, escape_race
from jaxopt_notes.training._fit import fit
from jaxopt_notes.training._history import smooth


def temperature_series(days: int = 365, *, seed: int = 0) -> np.ndarray:
    """A year of noisy daily temperatures (degrees Celsius): a seasonal sine plus weather noise.

    A stand-in for the notes' figure of one year of daily temperatures.
    """
    day = np.arange(1, days + 1)
    season = 11.0 - 8.0 * np.cos(2 * np.pi * (day - 15) / 365)
    weather = np.random.default_rng(seed).normal(0.0, 3.0, size=days)
    return (season + weather).astype(np.float32)


def run_transform(transform: GradientTransformation, values: np.ndarray) -> np.ndarray:
    """Feeds ``values[0], values[1], ...`` to ``transform.update`` one by one (a ``lax.scan``)
    and returns what it outputs at each step: for :func:`~jaxopt_notes.ewa`, the averages v_t."""
    sequence = jnp.asarray(values)
    state = transform.init(sequence[0])

    def step(state, value):
        output, state = transform.update(value, state)
        return state, output

    _, outputs = jax.lax.scan(step, state, values)
    return np.asarray(outputs)


@dataclass(frozen=True)
class EwaData:
    """Notes section 2: ``series`` and its exponentially weighted average for each beta."""

    series: np.ndarray
    averages: dict[float, np.ndarray]


def ewa_data(betas: Sequence[float] = (0.9, 0.98, 0.5), *, seed: int = 0) -> EwaData:
    """The temperature series averaged by :func:`jaxopt_notes.ewa` (bias correction applied, as
    the notes' figure shows the averages without the start-up dip) for each beta."""
    series = temperature_series(seed=seed)
    return EwaData(series, {beta: run_transform(ewa(beta, debias=True), series) for beta in betas})


@dataclass(frozen=True)
class BiasCorrectionData:
    """Notes section 3: the raw average ``v_t`` (starting near 0) and ``v_t / (1 - beta^t)``."""

    series: np.ndarray
    beta: float
    raw: np.ndarray
    corrected: np.ndarray


def bias_correction_data(beta: float = 0.98, *, seed: int = 0) -> BiasCorrectionData:
    """The raw EWA and the same EWA chained with :func:`jaxopt_notes.bias_correction`."""
    series = temperature_series(seed=seed)
    raw = run_transform(ewa(beta), series)
    corrected = run_transform(chain(ewa(beta), bias_correction(beta)), series)
    return BiasCorrectionData(series, beta, raw, corrected)


def elongated_bowl(w: jax.Array) -> jax.Array:
    """``J(w) = (w0^2 + 25 w1^2) / 2``: contours 5 times longer than wide, the notes' valley
    where gradient descent oscillates across (w1) while it crawls along (w0)."""
    return 0.5 * (w[0] ** 2 + 25.0 * w[1] ** 2)


def _bowl_path(optimizer: GradientTransformation, steps: int) -> np.ndarray:
    return np.asarray(_escape.optimizer_path(optimizer, elongated_bowl, BOWL_START, steps))


@dataclass(frozen=True)
class PathsData:
    """Optimizer paths on a 2-D cost surface, with a grid of the surface for its contours."""

    paths: dict[str, np.ndarray]
    grid_x: np.ndarray
    grid_y: np.ndarray
    grid_cost: np.ndarray


def surface_grid(
    loss: Callable[[jax.Array], jax.Array], xlim: tuple[float, float], ylim: tuple[float, float], n: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``loss`` evaluated on an ``n x n`` grid, for contours: ``(X, Y, J)``."""
    grid_x, grid_y = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    cost = jax.vmap(loss)(jnp.stack([grid_x.ravel(), grid_y.ravel()], axis=1))
    return grid_x, grid_y, np.asarray(cost).reshape(grid_x.shape)


BOWL_START = (-9.0, 1.2)
BOWL_LIMITS = ((-10.0, 2.0), (-1.6, 1.6))


def momentum_paths_data(steps: int = 40) -> PathsData:
    """Notes section 4: gradient descent oscillates across the elongated bowl at a learning
    rate close to its limit (2/25), momentum (beta 0.9) at the same rate damps that and heads
    down the valley."""
    paths = {
        "gradient descent (alpha 0.075)": _bowl_path(sgd(0.075), steps),
        "momentum (alpha 0.075, beta 0.9)": _bowl_path(momentum(0.075, 0.9), steps),
    }
    return PathsData(paths, *surface_grid(elongated_bowl, *BOWL_LIMITS))


def adaptive_paths_data(steps: int = 40) -> PathsData:
    """Notes sections 5 and 6: RMSprop and Adam on the same bowl. Dividing by the root mean
    square of each coordinate's gradient makes the step about as long along the valley as
    across it, so both head for the minimum instead of bouncing across."""
    paths = {
        "gradient descent (alpha 0.075)": _bowl_path(sgd(0.075), steps),
        "RMSprop (alpha 0.3, beta 0.9)": _bowl_path(rmsprop(0.3, 0.9), steps),
        "Adam (alpha 0.5)": _bowl_path(adam(0.5), steps),
    }
    return PathsData(paths, *surface_grid(elongated_bowl, *BOWL_LIMITS))


@dataclass(frozen=True)
class SchedulesData:
    """Notes section 7: the learning rate at every minibatch step, for each decay form.

    ``epoch`` is the step's position in epochs, numbered from 1 as in the notes
    (``1 + step / steps_per_epoch``).
    """

    epoch: np.ndarray
    rates: dict[str, np.ndarray]


def schedules_data(epochs: int = 20, steps_per_epoch: int = 100, alpha0: float = 0.2) -> SchedulesData:
    """Each schedule of :mod:`jaxopt_notes.schedules`, evaluated (vectorised) at every step of
    ``epochs`` epochs; ``alpha0 = 0.2`` and ``decay_rate = 1`` are the notes' worked example."""

    forms = {
        "alpha0 / (1 + decay_rate * epoch), decay_rate 1": schedules.inverse_time_decay(
            alpha0, 1.0, steps_per_epoch=steps_per_epoch
        ),
        "0.95^epoch * alpha0": schedules.exponential_decay(alpha0, 0.95, steps_per_epoch=steps_per_epoch),
        "k / sqrt(epoch) * alpha0, k 1": schedules.inverse_sqrt_decay(alpha0, 1.0, steps_per_epoch=steps_per_epoch),
        "k / sqrt(t) * alpha0, t the minibatch step": schedules.inverse_sqrt_decay(alpha0, 1.0),
        "staircase: halve every 5 epochs": schedules.staircase_decay(alpha0, 0.5, 5, steps_per_epoch=steps_per_epoch),
    }
    steps = jnp.arange(epochs * steps_per_epoch)
    rates = {name: np.asarray(jax.vmap(schedule)(steps)) for name, schedule in forms.items()}
    return SchedulesData(1 + np.asarray(steps) / steps_per_epoch, rates)


def _logistic_problem(m: int, seed: int) -> tuple[_running_example.Problem, Callable, dict]:

    problem = _running_example.generate_logistic(m, seed=seed)
    loss, params = _running_example.model_for(problem)
    return problem, loss, params


@dataclass(frozen=True)
class BatchVsMinibatchData:
    """Notes section 1: the cost at every step of batch gradient descent (smooth) and of
    minibatch gradient descent (noisy), from :func:`jaxopt_notes.fit`."""

    m: int
    batch_cost: np.ndarray
    minibatch_size: int
    minibatch_cost: np.ndarray


def batch_vs_minibatch_data(
    m: int = 20_000, *, steps: int = 300, minibatch_size: int = 64, seed: int = 0
) -> BatchVsMinibatchData:
    """``steps`` updates of gradient descent (alpha 0.5) on the generated logistic regression,
    once on the whole set per step and once on minibatches of ``minibatch_size``."""

    problem, loss, params = _logistic_problem(m, seed)
    _, batch = fit(loss, params, sgd(0.5), problem.X, problem.Y, batch_size=m, epochs=steps, progress=False)
    epochs = -(-steps // steps_per_epoch(m, minibatch_size))  # enough epochs for `steps` minibatch steps
    _, mini = fit(
        loss, params, sgd(0.5), problem.X, problem.Y, batch_size=minibatch_size, epochs=epochs, progress=False
    )
    return BatchVsMinibatchData(m, batch.cost, minibatch_size, mini.cost[:steps])


@dataclass(frozen=True)
class MinibatchSizeData:
    """Notes section 1: for each minibatch size, the cost at every step smoothed over about the
    last ``window`` examples, against the epochs seen and against the seconds spent; and the
    seconds one compiled epoch took."""

    m: int
    window: int
    epoch: dict[int, np.ndarray]
    seconds: dict[int, np.ndarray]
    smoothed_cost: dict[int, np.ndarray]
    seconds_per_epoch: dict[int, float]


def minibatch_size_data(
    m: int = 50_000,
    *,
    sizes: Sequence[int] = (1, 64, 128, 256, 512, 1024),
    epochs: int = 4,
    window: int = 2_000,
    seed: int = 0,
) -> MinibatchSizeData:
    """Trains the generated logistic regression with :func:`jaxopt_notes.sgd` (alpha 0.05) for
    ``epochs`` epochs at each size in ``sizes`` and at size m (batch gradient descent).

    Each size's cost is smoothed by :func:`jaxopt_notes.smooth` with ``beta = 1 - size / window``
    (about the last ``window`` examples), so every curve is equally smooth; batch gradient
    descent's cost is exact and shown as is. An epoch's time is the fastest of the epochs after
    the first (the first pays the compile)."""

    problem, loss, params = _logistic_problem(m, seed)
    epoch, seconds, smoothed, per_epoch = {}, {}, {}, {}
    for size in (*sizes, m):
        _, history = fit(loss, params, sgd(0.05), problem.X, problem.Y, batch_size=size, epochs=epochs, progress=False)
        steps = steps_per_epoch(m, size)
        step = np.arange(len(history.cost))
        # Step i's cost is measured after (i // steps) epochs plus (i % steps) minibatches.
        epoch[size] = step // steps + np.minimum((step % steps) * size, m) / m
        per_epoch[size] = float(np.min(history.epoch_time[1:]))
        seconds[size] = epoch[size] * per_epoch[size]
        smoothed[size] = history.cost if size >= m else smooth(history.cost, max(0.0, 1 - size / window))
    return MinibatchSizeData(m, window, epoch, seconds, smoothed, per_epoch)


@dataclass(frozen=True)
class EscapeData:
    """Notes section 8: :func:`jaxopt_notes.escape_race` on one problem, with its surface."""

    problem: EscapeProblem
    rows: list[EscapeRow]
    grid_x: np.ndarray
    grid_y: np.ndarray
    grid_cost: np.ndarray


ESCAPE_LIMITS = {"saddle": ((-1.3, 1.3), (-1.3, 1.3)), "plateau": ((-3.6, 1.6), (-1.4, 1.4))}


def escape_data(problem: str, *, seed: int = 0) -> EscapeData:
    """The escape race (gradient descent, momentum in both forms, RMSprop, Adam) off the
    ``"saddle"`` or the ``"plateau"`` problem of :mod:`jaxopt_notes.notes._escape`, each path run
    by the library's optimizers until its cost falls below the problem's escape level."""

    spec = {"saddle": _escape.SADDLE, "plateau": _escape.PLATEAU}[problem]
    rows = escape_race(spec, seed=seed)
    return EscapeData(spec, rows, *surface_grid(spec.loss_fn, *ESCAPE_LIMITS[problem]))
