"""What a training run records: the noisy minibatch cost and its smoothed curve (notes 1-3).

The cost J of each minibatch is noisy: it trends down, but not monotonically, because every
minibatch is a different sample (notes section 1). Its exponentially weighted average
``v_t = beta * v_{t-1} + (1 - beta) * J_t`` (``v_0 = 0``, section 2), divided by
``1 - beta**t`` (bias correction, section 3), shows the trend: :func:`smooth` computes it and
:class:`History` keeps it next to the raw values, per step and per epoch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jaxopt_notes import _checks

_BLOCK = 128
"""Length of the blocks :func:`smooth` solves at once: a 128 x 128 matrix of powers of beta."""


def _ewa_blocks(values: np.ndarray, beta: float, average: float) -> tuple[np.ndarray, float]:
    """The uncorrected averages ``v_1 .. v_n`` starting from ``v_0 = average``, plus ``v_n``.

    Unrolled over a block of length L, ``v_{s+i} = beta**i * v_s + (1 - beta) * sum_{j<=i}
    beta**(i-j) * J_{s+j}``: one matrix product per block instead of one Python step per value.
    """
    powers = beta ** np.arange(1, _BLOCK + 1, dtype=np.float64)
    lags = np.arange(_BLOCK)[:, None] - np.arange(_BLOCK)[None, :]
    weights = np.where(lags >= 0, (1.0 - beta) * beta ** np.maximum(lags, 0).astype(np.float64), 0.0)
    out = np.empty(len(values), dtype=np.float64)
    for start in range(0, len(values), _BLOCK):
        block = values[start : start + _BLOCK]
        size = len(block)
        if np.all(np.isfinite(block)):
            out[start : start + size] = powers[:size] * average + weights[:size, :size] @ block
        else:  # 0 * inf in the product would poison the values before the first bad one
            for index, value in enumerate(block):
                average = beta * average + (1.0 - beta) * value
                out[start + index] = average
        average = float(out[start + size - 1])
    return out, average


def smooth(values: Any, beta: float, *, debias: bool = True) -> np.ndarray:
    """The exponentially weighted average of a sequence, bias-corrected by default.

    ``v_t = beta * v_{t-1} + (1 - beta) * values[t-1]`` with ``v_0 = 0``, and, when ``debias``,
    ``v_t / (1 - beta**t)``. beta = 0.9 averages about the last 10 values, 0.98 about 50.
    A non-finite value makes every later average non-finite, as the formula does.

    Args:
      values: a 1-D sequence of numbers (a cost per step, daily temperatures ...).
      beta: the decay, in [0, 1).
      debias: divide by ``1 - beta**t`` so the first averages are not pulled towards 0.

    Returns:
      A float64 NumPy array as long as ``values``.

    Example:
      >>> smooth([1.0, 1.0, 1.0], 0.9)
      array([1., 1., 1.])
      >>> smooth([1.0, 1.0], 0.9, debias=False)
      array([0.1 , 0.19])
    """
    _checks.check_decay("beta", beta)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"smooth: values must be a 1-D sequence, got shape {array.shape}")
    return Smoother(float(beta), debias).extend(array)


class Smoother:
    """:func:`smooth` continued across calls: the one cost smoother of the package. :class:`History`
    smooths each epoch's costs as they arrive, and so does the plateau callback
    :class:`~jaxopt_notes.ReduceLROnPlateau`. Bias correction divides by ``-expm1(t log beta)``,
    which keeps its digits where ``1 - beta**t`` cancels (beta near 1, t small)."""

    def __init__(self, beta: float, debias: bool = True):
        self.beta, self.debias, self.average, self.count = beta, debias, 0.0, 0

    def extend(self, values: np.ndarray) -> np.ndarray:
        averages, self.average = _ewa_blocks(np.asarray(values, dtype=np.float64), self.beta, self.average)
        steps = self.count + np.arange(1, len(values) + 1)
        self.count += len(values)
        if not self.debias:
            return averages
        return averages / -np.expm1(steps * np.log(self.beta)) if self.beta > 0 else averages


@dataclasses.dataclass
class History:
    """The record of a :func:`~jaxopt_notes.fit` run: float64 NumPy arrays, per step or per epoch.

    Attributes:
      cost: the minibatch cost J of every step (notes section 1: noisy).
      smoothed_cost: ``smooth(cost, beta)``, the bias-corrected EWA of ``cost``.
      grad_norm: the global L2 norm of each step's gradient.
      learning_rate: the rate each step used, read from the optimizer state with
        :func:`~jaxopt_notes.learning_rate_in_use`; NaN if the optimizer records none.
      epoch_cost: the mean of ``cost`` over each epoch's steps (skipped steps excluded).
      epoch_time: wall-clock seconds of each epoch, compile time included in the first.
      skipped_steps: per epoch, the steps skipped for a non-finite cost or gradient.
      validation: with ``fit(..., validation=...)``, per epoch the held-out ``"cost"`` and
        each metric, by name (empty without validation).
      beta: the decay used for ``smoothed_cost``.
    """

    beta: float = 0.9
    cost: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    smoothed_cost: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    grad_norm: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    learning_rate: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    epoch_cost: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    epoch_time: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    skipped_steps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    validation: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self._smoother = Smoother(self.beta)

    @property
    def epochs(self) -> int:
        return len(self.epoch_cost)

    @property
    def steps(self) -> int:
        return len(self.cost)

    _FIELDS = ("cost", "smoothed_cost", "grad_norm", "learning_rate", "epoch_cost", "epoch_time", "skipped_steps")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every array plus the running average behind ``smoothed_cost``: what a checkpoint holds."""
        arrays = {name: getattr(self, name) for name in self._FIELDS}
        arrays["smoother"] = np.array([self._smoother.average, self._smoother.count], dtype=np.float64)
        if self.validation:
            arrays["validation"] = dict(self.validation)
        return arrays

    @classmethod
    def state_like(cls, steps: int, epochs: int, validation: tuple[str, ...] = ()) -> dict[str, Any]:
        """Zero arrays shaped and typed as :meth:`state_dict` is after ``steps`` steps in
        ``epochs`` epochs (validated on the names in ``validation``): the ``like`` tree a
        checkpoint of it loads into."""
        per_step = {name: np.zeros(steps) for name in ("cost", "smoothed_cost", "grad_norm", "learning_rate")}
        per_epoch: dict[str, Any] = {"epoch_cost": np.zeros(epochs), "epoch_time": np.zeros(epochs)}
        if validation:
            per_epoch["validation"] = {name: np.zeros(epochs) for name in validation}
        return per_step | per_epoch | {"skipped_steps": np.zeros(epochs, np.int64), "smoother": np.zeros(2)}

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        for name in self._FIELDS:
            setattr(self, name, np.asarray(arrays[name]))
        self._smoother.average, self._smoother.count = float(arrays["smoother"][0]), int(arrays["smoother"][1])
        self.validation = {name: np.asarray(values) for name, values in arrays.get("validation", {}).items()}

    def record_validation(self, values: dict[str, float]) -> None:
        """Appends one epoch's held-out values (``"cost"`` and each metric, by name)."""
        for name, value in values.items():
            self.validation[name] = np.append(self.validation.get(name, np.zeros(0)), float(value))

    def record_epoch(self, cost: Any, grad_norm: Any, learning_rate: Any, skipped: Any, seconds: float) -> None:
        """Appends one epoch: per-step arrays and a boolean array marking the skipped steps."""
        cost, grad_norm, learning_rate = (np.asarray(a, np.float64) for a in (cost, grad_norm, learning_rate))
        skipped = np.asarray(skipped, dtype=bool)
        kept = cost[~skipped]
        # A skipped step's cost never reached the parameters: the curve holds its last value.
        smoothed = np.concatenate([self.smoothed_cost[-1:] if self.steps else [np.nan], self._smoother.extend(kept)])
        self.cost = np.concatenate([self.cost, cost])
        self.smoothed_cost = np.concatenate([self.smoothed_cost, smoothed[np.cumsum(~skipped)]])
        self.grad_norm = np.concatenate([self.grad_norm, grad_norm])
        self.learning_rate = np.concatenate([self.learning_rate, learning_rate])
        self.epoch_cost = np.append(self.epoch_cost, kept.mean(dtype=np.float64) if len(kept) else np.nan)
        self.epoch_time = np.append(self.epoch_time, seconds)
        self.skipped_steps = np.append(self.skipped_steps, int(np.sum(skipped)))


@dataclasses.dataclass
class EpochEnd:
    """What a fit callback receives after every epoch.

    Attributes:
      epoch: the epoch just finished, 1-based.
      step: the steps taken so far in the run.
      cost, grad_norm, learning_rate: that epoch's per-step values (NumPy arrays).
      history: the run's :class:`History` so far.
      params: the parameters after this epoch (the user's tree, never packed).
      opt_state: the optimizer state after this epoch. Assign a new one (e.g. from
        ``set_hyperparams``) and fit continues from it.
      stop: set to ``True`` to end training after this epoch.
      validation: this epoch's held-out ``"cost"`` and metrics, by name (empty without
        ``fit(..., validation=...)``).
      model_state: the model state after this epoch (None without one).
    """

    epoch: int
    step: int
    cost: np.ndarray
    grad_norm: np.ndarray
    learning_rate: np.ndarray
    history: History
    params: Any
    opt_state: Any
    stop: bool = False
    validation: dict[str, float] = dataclasses.field(default_factory=dict)
    model_state: Any = None
