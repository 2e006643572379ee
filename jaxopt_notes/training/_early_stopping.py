"""Early stopping: end a :func:`~jaxopt_notes.fit` run when held-out data stop improving.

The validation cost falls while the model learns what generalises and rises once it starts
fitting the training set's noise; stopping at its minimum, and keeping the parameters from
there, is the cheapest regulariser. :class:`EarlyStopping` is a fit callback reading the
values ``fit(..., validation=...)`` computes after every epoch (``EpochEnd.validation``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from jaxopt_notes import _checks


class EarlyStopping:
    """A fit callback that stops the run once ``event.validation[monitor]`` has not improved
    for ``patience`` epochs, and remembers the best epoch's parameters and model state.

    An epoch improves when its value is below ``best - min_delta`` (``mode="min"``, for a
    cost) or above ``best + min_delta`` (``mode="max"``, for an accuracy).

    Attributes:
      best: the best value seen (NaN before the first epoch).
      best_epoch: the 1-based epoch it was seen at (0 before).
      best_params, best_model_state: copies of that epoch's parameters and model state.
      stopped_epoch: the epoch at which it stopped the run (0 while it has not).

    Example (fitting noise: 8 training rows, the held-out cost soon turns up):
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> rng = np.random.default_rng(0)
      >>> X, X_val = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(64, 6)).astype(np.float32)
      >>> Y, Y_val = X[:, 0] + rng.normal(size=8).astype(np.float32), X_val[:, 0]
      >>> loss = lambda p, x, y: jnp.mean((x @ p - y) ** 2)
      >>> stop = EarlyStopping(patience=3)
      >>> _, history = jn.fit(loss, jnp.zeros(6), jn.adam(0.1), X, Y, batch_size=8, epochs=500,
      ...                     validation=(X_val, Y_val), callbacks=[stop], progress=False)
      >>> history.epochs < 500, stop.stopped_epoch == stop.best_epoch + 3
      (True, True)
    """

    def __init__(
        self, patience: int = 5, *, monitor: str = "cost", min_delta: float = 0.0, mode: Literal["min", "max"] = "min"
    ):
        _checks.check_int("EarlyStopping: patience", patience, minimum=1)
        _checks.check_nonnegative("min_delta", min_delta)
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: monitor must be the name of a validation value, got {monitor!r}")
        self.patience, self.monitor, self.min_delta, self.mode = int(patience), monitor, float(min_delta), mode
        self.best, self.best_epoch, self.stopped_epoch, self._waited = math.nan, 0, 0, 0
        self.best_params: Any = None
        self.best_model_state: Any = None

    def _improves(self, value: float) -> bool:
        if self.best_epoch == 0:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def __call__(self, event: Any) -> None:
        values = getattr(event, "validation", None) or {}
        if self.monitor not in values:
            raise ValueError(
                f"EarlyStopping: monitor {self.monitor!r} is not among this epoch's validation values "
                f"{sorted(values)}; pass validation=(X_val, Y_val) (and metrics=) to fit"
            )
        value = float(values[self.monitor])
        if self._improves(value):
            self.best, self.best_epoch, self._waited = value, int(event.epoch), 0
            self.best_params, self.best_model_state = event.params, getattr(event, "model_state", None)
            return
        self._waited += 1
        if self._waited >= self.patience:
            event.stop, self.stopped_epoch = True, int(event.epoch)
