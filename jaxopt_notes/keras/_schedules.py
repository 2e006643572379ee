"""Keras' learning-rate schedules: ``ExponentialDecay``, ``InverseTimeDecay`` and
``PiecewiseConstantDecay``, with Keras 3's arguments and step numbering.

Each is a frozen dataclass called with the step, the updates taken so far (0 on the first
update, as Keras' ``optimizer.iterations``), which every optimizer of this library, not only
those of :mod:`jaxopt_notes.keras`, feeds its schedule. Keras works per step: an epoch-based
decay passes ``decay_steps = steps_per_epoch`` (with ``staircase=True`` to hold the rate
through each epoch). The arithmetic is Keras' own, in JAX's default float dtype (Keras computes
in the dtype of ``initial_learning_rate``, float32 unless JAX runs in 64-bit mode). Being
frozen dataclasses, two schedules with equal arguments compare equal.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks

_INT32_MAX = int(jnp.iinfo(jnp.int32).max)


def _check_positive(name: str, value: Any) -> None:
    _checks.check_finite(name, value)
    if float(value) <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def _check_decay(schedule: ExponentialDecay | InverseTimeDecay) -> None:
    """The arguments the two decays share, named with the schedule's class."""
    where = type(schedule).__name__
    _checks.check_nonnegative(f"{where}: initial_learning_rate", schedule.initial_learning_rate)
    _check_positive(f"{where}: decay_steps", schedule.decay_steps)
    _checks.check_nonnegative(f"{where}: decay_rate", schedule.decay_rate)


def _floating(value: Any) -> jax.Array:
    return jnp.asarray(value, jnp.result_type(float))


def _progress(step: Any, decay_steps: float, staircase: bool) -> jax.Array:
    """``step / decay_steps`` as Keras computes it (floored with ``staircase``)."""
    progress = _floating(jnp.asarray(step)) / _floating(decay_steps)
    return jnp.floor(progress) if staircase else progress


@dataclasses.dataclass(frozen=True)
class ExponentialDecay:
    """``keras.optimizers.schedules.ExponentialDecay``:
    ``initial_learning_rate * decay_rate ** (step / decay_steps)``, the exponent floored with
    ``staircase``. The notes' ``0.95**epoch_num * alpha0`` (section 7) with epochs counted from
    0 is ``ExponentialDecay(alpha0, steps_per_epoch, 0.95, staircase=True)``.

    Args:
      initial_learning_rate: the rate at step 0, >= 0.
      decay_steps: > 0, the steps over which the rate is multiplied by ``decay_rate`` once.
      decay_rate: >= 0.
      staircase: hold the rate constant through each ``decay_steps`` steps.
      name: accepted for Keras' signature; changes nothing.

    Raises:
      ValueError, TypeError: ``decay_steps <= 0`` (which Keras refuses too), a
        negative rate or decay rate.

    Example:
      >>> import jaxopt_notes as jn
      >>> schedule = jn.keras.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
      >>> [round(float(schedule(step)), 6) for step in (0, 9, 10, 25)]
      [0.1, 0.1, 0.05, 0.025]
    """

    initial_learning_rate: float
    decay_steps: float
    decay_rate: float
    staircase: bool = False
    name: str = "ExponentialDecay"

    def __post_init__(self) -> None:
        _check_decay(self)

    def __call__(self, step: Any) -> jax.Array:
        exponent = _progress(step, self.decay_steps, self.staircase)
        return self.initial_learning_rate * jnp.power(_floating(self.decay_rate), exponent)


@dataclasses.dataclass(frozen=True)
class InverseTimeDecay:
    """``keras.optimizers.schedules.InverseTimeDecay``:
    ``initial_learning_rate / (1 + decay_rate * step / decay_steps)``, the quotient
    ``step / decay_steps`` floored with ``staircase``. The notes' ``alpha0 / (1 + decay_rate *
    epoch_num)`` (section 7) with epochs counted from 0 is ``InverseTimeDecay(alpha0,
    steps_per_epoch, decay_rate, staircase=True)``; the notes count from 1 (see
    :func:`~jaxopt_notes.inverse_time_decay`).

    Args:
      initial_learning_rate: the rate at step 0, >= 0.
      decay_steps: > 0.
      decay_rate: >= 0.
      staircase: hold the rate constant through each ``decay_steps`` steps.
      name: accepted for Keras' signature; changes nothing.

    Raises:
      ValueError, TypeError: ``decay_steps <= 0`` (which Keras refuses too), a
        negative rate or decay rate.

    Example:
      >>> import jaxopt_notes as jn
      >>> schedule = jn.keras.InverseTimeDecay(0.2, decay_steps=100, decay_rate=1.0, staircase=True)
      >>> [round(float(schedule(step)), 6) for step in (0, 100, 250)]
      [0.2, 0.1, 0.066667]
    """

    initial_learning_rate: float
    decay_steps: float
    decay_rate: float
    staircase: bool = False
    name: str = "InverseTimeDecay"

    def __post_init__(self) -> None:
        _check_decay(self)

    def __call__(self, step: Any) -> jax.Array:
        progress = _progress(step, self.decay_steps, self.staircase)
        return self.initial_learning_rate / (1 + _floating(self.decay_rate) * progress)


def _boundary(index: int, value: Any) -> int:
    name = f"PiecewiseConstantDecay: boundaries[{index}]"
    if isinstance(value, bool):
        raise _checks.ArgumentTypeError(f"{name} must be an integer step, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise _checks.ArgumentTypeError(
            f"{name} must be an integer step, got {value!r} (Keras casts it to the int32 step count, "
            "truncating a fraction)"
        ) from None
    if abs(number) > _INT32_MAX:
        raise ValueError(f"{name} must lie within the int32 step range, got {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class PiecewiseConstantDecay:
    """``keras.optimizers.schedules.PiecewiseConstantDecay``: ``values[0]`` while ``step <=
    boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``, and
    ``values[-1]`` after the last boundary. A boundary ``b`` thus changes the rate from step
    ``b + 1`` on: to change it at the start of epoch ``e`` (0-based), use ``b = e *
    steps_per_epoch - 1``.

    Args:
      boundaries: strictly increasing integer steps, at least one.
      values: one more than ``boundaries``; rates >= 0.
      name: accepted for Keras' signature; changes nothing.

    Raises:
      ValueError, TypeError: lengths that do not match (which Keras refuses too), no
        boundary (where Keras fails when called), boundaries that are not increasing integers,
        a negative value.

    Example:
      >>> import jaxopt_notes as jn
      >>> schedule = jn.keras.PiecewiseConstantDecay([3, 6], [0.1, 0.01, 0.001])
      >>> [round(float(schedule(step)), 6) for step in (0, 3, 4, 6, 7)]
      [0.1, 0.1, 0.01, 0.01, 0.001]
    """

    boundaries: tuple[int, ...]
    values: tuple[float, ...]
    name: str = "PiecewiseConstant"

    def __post_init__(self) -> None:
        boundaries = tuple(_boundary(index, value) for index, value in enumerate(self.boundaries))
        values = tuple(self.values)
        if not boundaries:
            raise ValueError(
                "PiecewiseConstantDecay: boundaries must hold at least one step (Keras fails on an empty list); "
                "for a constant rate pass the number itself"
            )
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                f"PiecewiseConstantDecay: values must hold one more entry than boundaries, got "
                f"{len(boundaries)} boundaries and {len(values)} values"
            )
        for before, after in zip(boundaries, boundaries[1:]):
            if after <= before:
                raise ValueError(f"PiecewiseConstantDecay: boundaries must increase strictly, got {list(boundaries)}")
        for index, value in enumerate(values):
            _checks.check_nonnegative(f"PiecewiseConstantDecay: values[{index}]", value)
        # Stored as tuples, so the schedule stays hashable and immutable.
        object.__setattr__(self, "boundaries", boundaries)
        object.__setattr__(self, "values", values)

    def __call__(self, step: Any) -> jax.Array:
        step = jnp.asarray(step)
        passed = sum((step > boundary).astype(jnp.int32) for boundary in self.boundaries)
        return _floating(self.values)[passed]
