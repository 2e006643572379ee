"""Plateaus (notes section 8): long, nearly flat regions where training crawls.

The notes' real obstacle is not a local minimum but a plateau: the gradient stays close to
zero while the cost stays high, for many steps. This module

- finds such stretches in a run (:func:`find_plateaus`), or watches for them while ``fit``
  trains (:class:`PlateauMonitor`, a callback);
- lowers the learning rate when the smoothed cost stops improving
  (:class:`ReduceLROnPlateau`, a callback driving :func:`~jaxopt_notes.set_hyperparams`).

The race of the optimizers off a plateau is :func:`jaxopt_notes.notes._escape.escape_race`.

Callbacks follow ``fit``'s contract: called after every epoch with an ``EpochEnd`` event
carrying that epoch's per-step ``cost`` and ``grad_norm``, the ``step`` count so far and
the writable ``stop`` and ``opt_state``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._base import find_states
from jaxopt_notes._hyperparams import InjectStatefulHyperparamsState, set_hyperparams
from jaxopt_notes.training._history import Smoother


class _PlateauTracker:
    """Streams ``(cost, grad_norm)`` pairs and keeps the runs of flat steps ``>= patience`` long."""

    def __init__(self, grad_tol: float, min_cost: float, patience: int):
        self.grad_tol, self.min_cost, self.patience = grad_tol, min_cost, patience
        self.completed: list[tuple[int, int]] = []
        self.run_start: int | None = None
        self.steps_seen = 0

    def feed(self, cost: np.ndarray, grad_norm: np.ndarray) -> None:
        flat = (grad_norm < self.grad_tol) & (cost > self.min_cost)
        for offset, is_flat in enumerate(flat.tolist()):
            step = self.steps_seen + offset
            if is_flat and self.run_start is None:
                self.run_start = step
            elif not is_flat and self.run_start is not None:
                if step - self.run_start >= self.patience:
                    self.completed.append((self.run_start, step))
                self.run_start = None
        self.steps_seen += len(flat)

    def ongoing(self) -> bool:
        return self.run_start is not None and self.steps_seen - self.run_start >= self.patience

    def episodes(self) -> list[tuple[int, int]]:
        if self.run_start is not None and self.ongoing():
            return [*self.completed, (self.run_start, self.steps_seen)]
        return list(self.completed)


def _as_series(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of per-step values, got shape {array.shape}")
    return array


def find_plateaus(
    cost: Sequence[float], grad_norm: Sequence[float], *, grad_tol: float, patience: int, min_cost: float = 0.0
) -> list[tuple[int, int]]:
    """The stretches of a run where training sat on a plateau.

    Step ``i`` is flat when ``grad_norm[i] < grad_tol`` while ``cost[i] > min_cost``; a
    plateau is a run of at least ``patience`` consecutive flat steps. Feed it ``fit``'s
    ``history["cost"]`` and ``history["grad_norm"]``.

    Args:
      cost, grad_norm: per-step values of equal length (0-based step indices).
      grad_tol: gradient norm below which a step counts as flat; > 0.
      patience: the shortest run reported, in steps; >= 1.
      min_cost: the cost above which the run is still "high"; the cost you would be content
        with. The default 0 counts any positive cost, so a local minimum with a positive
        cost is reported too (to the learner, it is just as stuck).

    Returns:
      Half-open step ranges ``[(start, stop), ...]`` in order.

    Example:
      >>> find_plateaus([1, 1, 1, 1, .5], [1e-5, 1e-5, 1e-5, 1e-5, .1], grad_tol=1e-3, patience=3)
      [(0, 4)]
    """
    costs, norms = _as_series("cost", cost), _as_series("grad_norm", grad_norm)
    if costs.shape != norms.shape:
        raise ValueError(f"cost and grad_norm must have the same length, got {costs.shape[0]} and {norms.shape[0]}")
    tracker = _new_tracker(grad_tol, min_cost, patience)
    tracker.feed(costs, norms)
    return tracker.episodes()


def _new_tracker(grad_tol: float, min_cost: float, patience: int) -> _PlateauTracker:
    _checks.check_nonnegative("grad_tol", grad_tol)
    if grad_tol == 0:
        raise ValueError("grad_tol must be > 0: no gradient norm is below 0")
    _checks.check_finite("min_cost", min_cost)
    _checks.check_int("patience", patience, minimum=1)
    return _PlateauTracker(float(grad_tol), float(min_cost), int(patience))


def _epoch_series(event: Any, name: str) -> np.ndarray:
    if not hasattr(event, name):
        raise TypeError(f"callback: the event must be fit's EpochEnd with a per-step {name!r} array, got {event!r}")
    return _as_series(f"event.{name}", getattr(event, name))


class PlateauMonitor:
    """A ``fit`` callback that flags a run stuck on a plateau (see :func:`find_plateaus`).

    After each epoch it reads the epoch's per-step ``cost`` and ``grad_norm``; once the
    gradient norm has stayed below ``grad_tol`` with the cost above ``min_cost`` for
    ``patience`` steps in a row (across epochs too), ``flagged`` turns true, a
    ``RuntimeWarning`` names the steps, and with ``stop=True`` the run ends.

    Attributes:
      episodes: the plateaus found so far, half-open step ranges; the last one may still be
        going on (its end is then the steps seen so far).
      flagged: whether any plateau was found.
      on_plateau: whether the latest epoch ended on one.

    Example (``w = 10`` lies on the flat shelf of ``tanh(w**2)``: cost 1, gradient about 0):
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> X = np.ones((64, 1), np.float32)
      >>> loss = lambda p, x: jnp.mean(jnp.tanh(p["w"] ** 2) * x[:, 0])
      >>> monitor = PlateauMonitor(grad_tol=1e-4, patience=20)
      >>> import warnings
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     _ = jn.fit(loss, {"w": jnp.array(10.0)}, jn.sgd(0.1), X, batch_size=8, epochs=5,
      ...                callbacks=[monitor], progress=False)
      >>> print(caught[0].message)  # warned once, when the plateau is first seen
      PlateauMonitor: gradient norm below 0.0001 with cost above 0 for steps 0 to 24: the run is on a plateau
      >>> monitor.flagged, monitor.episodes
      (True, [(0, 40)])
    """

    def __init__(self, grad_tol: float = 1e-3, patience: int = 100, *, min_cost: float = 0.0, stop: bool = False):
        self._tracker = _new_tracker(grad_tol, min_cost, patience)
        self.stop = bool(stop)
        self._warned = False

    @property
    def episodes(self) -> list[tuple[int, int]]:
        return self._tracker.episodes()

    @property
    def flagged(self) -> bool:
        return bool(self.episodes)

    @property
    def on_plateau(self) -> bool:
        return self._tracker.ongoing()

    def __call__(self, event: Any) -> None:
        cost, grad_norm = _epoch_series(event, "cost"), _epoch_series(event, "grad_norm")
        if cost.shape != grad_norm.shape:
            raise ValueError(
                f"PlateauMonitor: event.cost has {cost.shape[0]} steps, event.grad_norm {grad_norm.shape[0]}"
            )
        self._tracker.feed(cost, grad_norm)
        if self.flagged and not self._warned:
            start, stop = self.episodes[0]
            warnings.warn(
                f"PlateauMonitor: gradient norm below {self._tracker.grad_tol:g} with cost above "
                f"{self._tracker.min_cost:g} for steps {start} to {stop}: the run is on a plateau",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned = True
        if self.stop and self.on_plateau:
            event.stop = True


def _injected_rate(opt_state: Any, name: str) -> float:
    found = find_states(opt_state, InjectStatefulHyperparamsState)
    if len(found) != 1 or name not in found[0].hyperparams:
        raise TypeError(
            "ReduceLROnPlateau: the optimizer state must hold one InjectStatefulHyperparamsState with a settable "
            f"{name!r}; "
            f"build the optimizer as jn.inject_hyperparams(jn.adam)({name}=<a number>)"
        )
    return float(found[0].hyperparams[name])


def _validation_value(event: Any, name: str) -> float:
    values = getattr(event, "validation", None) or {}
    if name not in values:
        raise ValueError(
            f"ReduceLROnPlateau: monitor {name!r} is not among this epoch's validation values {sorted(values)}; "
            "pass validation=(X_val, Y_val) (and metrics=) to fit"
        )
    return float(values[name])


class ReduceLROnPlateau:
    """A ``fit`` callback that multiplies the learning rate by ``factor`` when the smoothed
    cost has not improved for ``patience`` epochs: a manual decay (notes section 7) done by
    rule when the run stalls.

    The per-step costs (finite ones; fit may skip others) are averaged by the notes'
    bias-corrected EWA, ``v_t = beta v_{t-1} + (1 - beta) J_t``, ``J_smooth = v_t / (1 - beta^t)``,
    carried across epochs, and the value at each epoch's end is compared with the best so far. An
    epoch improves when ``J_smooth < (1 - rtol) * best - atol``; after ``patience`` epochs
    without improvement the rate becomes ``max(rate * factor, min_learning_rate)`` (through
    :func:`~jaxopt_notes.set_hyperparams`, so the jitted step is not recompiled), and the
    next ``cooldown`` epochs are ignored. The rule and its defaults are optax's
    ``contrib.reduce_on_plateau`` (itself PyTorch's), with patience counted in epochs.

    With ``monitor`` set to the name of a held-out value (``"cost"``, or a metric whose
    decrease is progress), the rule compares ``event.validation[monitor]`` after each epoch
    instead of the smoothed training cost (``fit(..., validation=...)`` computes it).

    The optimizer must be built with :func:`~jaxopt_notes.inject_hyperparams` and a
    numeric learning rate (a schedule cannot be overridden).

    Attributes:
      smoothed: the smoothed cost (or the monitored validation value) at the end of each epoch seen.
      reductions: ``(epoch, new_rate)`` for each reduction made.

    Example (a run stuck on the flat shelf of ``tanh(w**2)`` at ``w = 10``):
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> X = np.ones((64, 1), np.float32)
      >>> loss = lambda p, x: jnp.mean(jnp.tanh(p["w"] ** 2) * x[:, 0])
      >>> opt = jn.inject_hyperparams(jn.sgd)(learning_rate=0.1)
      >>> reduce = ReduceLROnPlateau(factor=0.5, patience=2)
      >>> _ = jn.fit(loss, {"w": jnp.array(10.0)}, opt, X, batch_size=8, epochs=6, callbacks=[reduce], progress=False)
      >>> [(epoch, round(rate, 4)) for epoch, rate in reduce.reductions]
      [(3, 0.05), (5, 0.025)]
    """

    def __init__(
        self,
        factor: float = 0.1,
        patience: int = 10,
        *,
        rtol: float = 1e-4,
        atol: float = 0.0,
        cooldown: int = 0,
        min_learning_rate: float = 0.0,
        beta: float = 0.9,
        hyperparam: str = "learning_rate",
        monitor: str | None = None,
    ):
        _checks.check_finite("factor", factor)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        _checks.check_int("patience", patience, minimum=1)
        _checks.check_nonnegative("rtol", rtol)
        _checks.check_nonnegative("atol", atol)
        if rtol == 0 and atol == 0:
            raise ValueError("at least one of rtol and atol must be > 0")
        if rtol > 1:
            raise ValueError(f"rtol must be <= 1, got {rtol!r}")
        _checks.check_int("cooldown", cooldown, minimum=0)
        _checks.check_nonnegative("min_learning_rate", min_learning_rate)
        _checks.check_decay("beta", beta)
        if not isinstance(hyperparam, str):
            raise TypeError(f"hyperparam must be the name of the injected hyperparameter, got {hyperparam!r}")
        self.factor, self.patience, self.rtol, self.atol = float(factor), int(patience), float(rtol), float(atol)
        self.cooldown, self.min_learning_rate, self.beta = int(cooldown), float(min_learning_rate), float(beta)
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"monitor must be None or the name of a validation value such as 'cost', got {monitor!r}")
        self.hyperparam, self.monitor = hyperparam, monitor
        self.smoothed: list[float] = []
        self.reductions: list[tuple[int, float]] = []
        self._smoother, self._latest = Smoother(self.beta), math.nan
        self._best, self._bad_epochs, self._cooldown_left = math.inf, 0, 0

    def __call__(self, event: Any) -> None:
        rate = _injected_rate(getattr(event, "opt_state", None), self.hyperparam)
        if self.monitor is None:
            costs = _epoch_series(event, "cost")
            finite = costs[np.isfinite(costs)]  # fit skips a step with a non-finite cost
            if len(finite):
                self._latest = float(self._smoother.extend(finite)[-1])
            if self._smoother.count == 0:
                return
            smoothed = self._latest
        else:
            smoothed = _validation_value(event, self.monitor)
        self.smoothed.append(smoothed)
        if smoothed < (1 - self.rtol) * self._best - self.atol:
            self._best, self._bad_epochs = smoothed, 0
        else:
            self._bad_epochs += 1
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            self._bad_epochs = 0
            return
        if self._bad_epochs < self.patience:
            return
        self._bad_epochs, self._cooldown_left = 0, self.cooldown
        new_rate = max(rate * self.factor, self.min_learning_rate)
        if new_rate != rate:
            event.opt_state = set_hyperparams(event.opt_state, **{self.hyperparam: new_rate})
            self.reductions.append((int(event.epoch), new_rate))
