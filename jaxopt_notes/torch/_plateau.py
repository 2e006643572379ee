"""``torch.optim.lr_scheduler.ReduceLROnPlateau`` as a ``fit`` callback.

torch's scheduler is stepped by hand with a metric, ``scheduler.step(val_loss)``, once per
epoch; here ``fit`` calls the callback at each epoch's end and the callback reads the metric
from the event. The decisions are torch's rule exactly (strictly more than ``patience`` bad
epochs, the ``threshold_mode`` comparison, ``cooldown``, ``min_lr`` and ``eps``); the rate is
lowered through :func:`~jaxopt_notes.set_hyperparams`, as the library's own
:class:`~jaxopt_notes.ReduceLROnPlateau` does, so the compiled step is not traced again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._base import find_states
from jaxopt_notes._hyperparams import InjectStatefulHyperparamsState, set_hyperparams
from jaxopt_notes.training._plateaus import _epoch_series, _validation_value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"ReduceLROnPlateau: {name} must be one of {choices}, got {value!r}")
    return str(value)


class ReduceLROnPlateau:
    """torch's ``ReduceLROnPlateau(optimizer, mode, factor, ...)``, with its arguments, order and
    defaults, as a callback for :func:`~jaxopt_notes.fit`.

    After each epoch the metric is compared with the best seen so far: in ``"min"`` mode it is
    better when below ``best * (1 - threshold)`` (``threshold_mode="rel"``) or
    ``best - threshold`` (``"abs"``); in ``"max"`` mode when above ``best * (1 + threshold)``
    or ``best + threshold``. Once more than ``patience`` epochs in a row were not better, the
    rate becomes ``max(rate * factor, min_lr)`` (kept unchanged if that lowers it by ``eps``
    or less), and the next ``cooldown`` epochs count no bad epoch. A NaN metric is never better.

    The optimizer must be built with :func:`~jaxopt_notes.inject_hyperparams` and a numeric
    rate, e.g. ``jn.inject_hyperparams(jn.torch.SGD)(lr=0.1, momentum=0.9)``.

    Args:
      mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
      factor: in [0, 1); the new rate is ``rate * factor``.
      patience: bad epochs tolerated before a reduction, an integer >= 0.
      threshold: the margin a new best must clear, a finite number.
      threshold_mode: ``"rel"`` or ``"abs"``.
      cooldown: epochs without counting after a reduction, an integer >= 0.
      min_lr: the floor of the rate, >= 0 (torch's list of one floor per parameter group has
        no counterpart here: one optimizer is one group).
      eps: the smallest change applied, >= 0.
      monitor: where the metric comes from: ``None`` (default) for this epoch's mean training
        cost (the mean of the finite per-step costs, what ``scheduler.step(epoch_loss)`` gets
        in a torch loop averaging its batch losses), or the name of a held-out value
        computed by ``fit(..., validation=...)``, such as ``"cost"`` for ``scheduler.step(val_loss)``.
      hyperparam: the injected rate's name (``"lr"`` for the torch constructors).

    Attributes:
      metrics: the metric at the end of each epoch seen.
      reductions: ``(epoch, new_rate)`` for each reduction made (epochs 1-based, as fit's).
      best, num_bad_epochs, cooldown_counter: torch's counters, after the latest epoch.

    Raises:
      ValueError, TypeError: at construction, for an argument torch refuses (``factor
        >= 1``, an unknown mode) or one out of range; TypeError when called with an optimizer
        state that holds no injected ``hyperparam``.

    Example (a run stuck on the flat shelf of ``tanh(w**2)`` at ``w = 10``):
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> X = np.ones((64, 1), np.float32)
      >>> loss = lambda p, x: jnp.mean(jnp.tanh(p["w"] ** 2) * x[:, 0])
      >>> opt = jn.inject_hyperparams(jn.torch.SGD)(lr=0.1, momentum=0.9)
      >>> reduce = jn.torch.ReduceLROnPlateau(factor=0.5, patience=1)
      >>> _ = jn.fit(loss, {"w": jnp.array(10.0)}, opt, X, batch_size=8, epochs=6, callbacks=[reduce], progress=False)
      >>> [(epoch, round(rate, 4)) for epoch, rate in reduce.reductions]
      [(3, 0.05), (5, 0.025)]
    """

    def __init__(
        self,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        *,
        monitor: str | None = None,
        hyperparam: str = "lr",
    ):
        self.mode = _choice("mode", mode, ("min", "max"))
        self.threshold_mode = _choice("threshold_mode", threshold_mode, ("rel", "abs"))
        _checks.check_nonnegative("ReduceLROnPlateau: factor", factor)
        if factor >= 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in [0, 1) (torch refuses >= 1 too), got {factor!r}")
        self.patience = _checks.check_int("ReduceLROnPlateau: patience", patience, minimum=0)
        _checks.check_finite("ReduceLROnPlateau: threshold", threshold)
        self.cooldown = _checks.check_int("ReduceLROnPlateau: cooldown", cooldown, minimum=0)
        if isinstance(min_lr, list | tuple):
            raise _checks.ArgumentTypeError(
                f"ReduceLROnPlateau: min_lr must be one number (one optimizer is one parameter group), got {min_lr!r}"
            )
        _checks.check_nonnegative("ReduceLROnPlateau: min_lr", min_lr)
        _checks.check_nonnegative("ReduceLROnPlateau: eps", eps)
        if monitor is not None and not isinstance(monitor, str):
            raise _checks.ArgumentTypeError(
                f"ReduceLROnPlateau: monitor must be None (the training cost) or a validation value's name, got "
                f"{monitor!r}"
            )
        if not isinstance(hyperparam, str):
            raise _checks.ArgumentTypeError(f"ReduceLROnPlateau: hyperparam must be a name, got {hyperparam!r}")
        self.factor, self.threshold = float(factor), float(threshold)
        self.min_lr, self.eps = float(min_lr), float(eps)
        self.monitor, self.hyperparam = monitor, hyperparam
        self.metrics: list[float] = []
        self.reductions: list[tuple[int, float]] = []
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs, self.cooldown_counter = 0, 0

    def is_better(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by the threshold (torch's comparison)."""
        if self.mode == "min":
            bar = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bar
        bar = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bar

    def _metric(self, event: Any) -> float:
        if self.monitor is not None:
            return _validation_value(event, self.monitor)
        costs = _epoch_series(event, "cost")
        finite = costs[np.isfinite(costs)]  # fit may skip steps whose cost is not finite
        return float(np.mean(finite)) if len(finite) else math.nan

    def _rate(self, opt_state: Any) -> float:
        found = find_states(opt_state, InjectStatefulHyperparamsState)
        if len(found) != 1 or self.hyperparam not in found[0].hyperparams:
            raise TypeError(
                f"ReduceLROnPlateau: the optimizer state must hold one InjectStatefulHyperparamsState with a settable "
                f"{self.hyperparam!r}; build the optimizer as "
                f"jn.inject_hyperparams(jn.torch.SGD)({self.hyperparam}=<a number>, ...)"
            )
        return float(found[0].hyperparams[self.hyperparam])

    def __call__(self, event: Any) -> None:
        rate = self._rate(getattr(event, "opt_state", None))
        value = self._metric(event)
        self.metrics.append(value)
        if self.is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs <= self.patience:
            return
        new_rate = max(rate * self.factor, self.min_lr)
        if rate - new_rate > self.eps:
            event.opt_state = set_hyperparams(event.opt_state, **{self.hyperparam: new_rate})
            self.reductions.append((int(event.epoch), new_rate))
        self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
