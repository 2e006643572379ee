"""Learning-rate decay (notes section 7): schedules ``step -> learning rate``.

Every schedule here is a pure function of the step, the number of updates taken so far (0 on
the first update, the count every optimizer of this library feeds its schedule). It works
under ``jax.jit`` with a traced step, under ``jax.vmap`` over steps, and plugs into the
``learning_rate`` of :func:`~jaxopt_notes.sgd`, :func:`~jaxopt_notes.momentum`,
:func:`~jaxopt_notes.rmsprop` and :func:`~jaxopt_notes.adam`. Arguments are checked when the
schedule is built, so a bad one fails at once instead of turning the rate into NaN mid-run.

Epoch-based forms turn the step into ``epoch_num = first_epoch + step // steps_per_epoch``
(``step // (steps_per_epoch * interval)`` where the form has an ``interval``).

Why ``first_epoch=1`` by default: the notes number epochs from 1 (their worked example,
alpha0 = 0.2, decay_rate = 1, gives 0.1, 0.067, 0.05, 0.04 for epochs 1 to 4) and count the
minibatch step ``t`` from 1, so the defaults reproduce the notes' numbers as written. It is
also the one default every form can share: ``k / sqrt(epoch_num)`` is undefined at epoch 0.
Pass ``first_epoch=0`` for the optax / Keras / PyTorch convention where step 0 gets
``init_value`` itself; the documentation's page on learning-rate decay maps each form onto
those libraries. Manual decay (a person or a callback changing the rate mid-run) is
:func:`~jaxopt_notes.inject_hyperparams` with :func:`~jaxopt_notes.set_hyperparams`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import Schedule
from jaxopt_notes._recipe import equal_by_arguments

__all__ = ["exponential_decay", "inverse_sqrt_decay", "inverse_time_decay", "piecewise_constant", "staircase_decay"]

_INT32_MAX = int(jnp.iinfo(jnp.int32).max)


def _count(name: str, value: Any, *, minimum: int) -> int:
    """A Python integer >= ``minimum`` (steps per epoch, epochs, boundaries)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if number > _INT32_MAX:
        raise ValueError(f"{name} must be at most {_INT32_MAX} (the step count is int32), got {value!r}")
    return number


def _period(what: str, steps: int) -> int:
    # The step is an int32: a period past its range would overflow the floor division.
    if steps > _INT32_MAX:
        raise ValueError(f"{what} = {steps} steps exceeds the int32 step range ({_INT32_MAX}); use smaller values")
    return steps


def _periods(step: Any, period: int, staircase: bool) -> jax.Array:
    """Periods completed by ``step`` as a float: ``floor(step / period)`` or ``step / period``."""
    step = jnp.asarray(step)
    dtype = jnp.result_type(float)
    if staircase:
        # Integer floor division is exact where a float32 quotient of a large step is not.
        return jnp.floor_divide(step, period).astype(dtype)
    return step.astype(dtype) / period


def _as_rate(value: Any) -> jax.Array:
    return jnp.asarray(value).astype(jnp.result_type(float))


@equal_by_arguments
def inverse_time_decay(
    init_value: float,
    decay_rate: float,
    *,
    steps_per_epoch: int = 1,
    interval: int = 1,
    first_epoch: int = 1,
    staircase: bool = True,
) -> Schedule:
    """The notes' decay ``alpha = alpha0 / (1 + decay_rate * epoch_num)``.

    ``epoch_num = first_epoch + step // (steps_per_epoch * interval)``; with
    ``staircase=False`` the floor division becomes a true division (the rate shrinks at every
    step, Keras' default).

    Args:
      init_value: alpha0, a number >= 0.
      decay_rate: a number >= 0; 0 keeps the rate constant.
      steps_per_epoch: minibatch updates per epoch (``ceil(m / batch_size)``); 1 decays per step.
      interval: decay once every ``interval`` epochs.
      first_epoch: the number of the first epoch, >= 0. 1 (default) follows the notes, so the
        first update already uses ``alpha0 / (1 + decay_rate)``; 0 follows optax and Keras,
        where the first update uses ``alpha0`` (see the module docstring).
      staircase: ``True`` holds the rate constant within an epoch.

    Equals Keras' ``InverseTimeDecay(alpha0, decay_steps=steps_per_epoch * interval,
    decay_rate, staircase)`` with ``first_epoch=0``.

    Example (the notes' worked example, 1,000 minibatches per epoch):
      >>> schedule = inverse_time_decay(0.2, 1.0, steps_per_epoch=1000)
      >>> [round(float(schedule(step)), 4) for step in (0, 999, 1000, 2000, 3000)]
      [0.1, 0.1, 0.0667, 0.05, 0.04]
    """
    _checks.check_nonnegative("init_value", init_value)
    _checks.check_nonnegative("decay_rate", decay_rate)
    steps_per_epoch = _count("steps_per_epoch", steps_per_epoch, minimum=1)
    interval = _count("interval", interval, minimum=1)
    first_epoch = _count("first_epoch", first_epoch, minimum=0)
    period = _period("steps_per_epoch * interval", steps_per_epoch * interval)

    def schedule(step: Any) -> jax.Array:
        epoch_num = first_epoch + _periods(step, period, staircase)
        return _as_rate(init_value / (1.0 + decay_rate * epoch_num))

    return schedule


@equal_by_arguments
def exponential_decay(
    init_value: float,
    decay_rate: float,
    *,
    steps_per_epoch: int = 1,
    first_epoch: int = 1,
    staircase: bool = True,
) -> Schedule:
    """Exponential decay ``alpha = decay_rate ** epoch_num * alpha0`` (the notes use 0.95).

    ``epoch_num = first_epoch + step // steps_per_epoch``, or ``step / steps_per_epoch`` with
    ``staircase=False`` (a continuous exponent).

    Args:
      init_value: alpha0, a number >= 0.
      decay_rate: a number > 0; below 1 decays, 1 is constant, above 1 grows.
      steps_per_epoch: minibatch updates per epoch; 1 decays per step.
      first_epoch: number of the first epoch, >= 0; 1 (default) follows the notes, 0 optax.
      staircase: ``True`` holds the rate constant within an epoch.

    Equals ``optax.exponential_decay(alpha0 * decay_rate**first_epoch,
    transition_steps=steps_per_epoch, decay_rate=decay_rate, staircase=staircase)``.

    Example:
      >>> schedule = exponential_decay(0.1, 0.95, steps_per_epoch=100)
      >>> [round(float(schedule(step)), 5) for step in (0, 100, 200)]
      [0.095, 0.09025, 0.08574]
    """
    _checks.check_nonnegative("init_value", init_value)
    _checks.check_finite("decay_rate", decay_rate)
    if not _checks.is_traced(decay_rate) and float(decay_rate) <= 0.0:
        raise ValueError(f"decay_rate must be a number > 0, got {decay_rate!r}")
    steps_per_epoch = _count("steps_per_epoch", steps_per_epoch, minimum=1)
    first_epoch = _count("first_epoch", first_epoch, minimum=0)

    def schedule(step: Any) -> jax.Array:
        epoch_num = first_epoch + _periods(step, steps_per_epoch, staircase)
        return _as_rate(init_value * jnp.power(decay_rate, epoch_num))

    return schedule


@equal_by_arguments
def inverse_sqrt_decay(
    init_value: float,
    k: float = 1.0,
    *,
    steps_per_epoch: int = 1,
    first_epoch: int = 1,
) -> Schedule:
    """``alpha = k / sqrt(epoch_num) * alpha0``, with ``epoch_num = first_epoch + step // steps_per_epoch``.

    With ``steps_per_epoch=1`` (the default) it is the notes' per-minibatch form
    ``k / sqrt(t) * alpha0``, ``t`` counting updates from 1.

    Args:
      init_value: alpha0, a number >= 0.
      k: a number >= 0 (1 by default, so the first epoch uses ``alpha0``).
      steps_per_epoch: minibatch updates per epoch.
      first_epoch: number of the first epoch, >= 1: epoch 0 would divide by zero, so 0 is
        refused here, when the schedule is built, not at the first step.

    Example:
      >>> schedule = inverse_sqrt_decay(0.1)
      >>> [round(float(schedule(step)), 4) for step in (0, 3, 99)]
      [0.1, 0.05, 0.01]
    """
    _checks.check_nonnegative("init_value", init_value)
    _checks.check_nonnegative("k", k)
    steps_per_epoch = _count("steps_per_epoch", steps_per_epoch, minimum=1)
    first_epoch = _count("first_epoch", first_epoch, minimum=0)
    if first_epoch < 1:
        raise ValueError(
            "inverse_sqrt_decay: first_epoch must be >= 1, got 0: the first step would divide by sqrt(0). "
            "Number epochs from 1 (the default), as k / sqrt(t) counts t from 1."
        )

    def schedule(step: Any) -> jax.Array:
        epoch_num = first_epoch + _periods(step, steps_per_epoch, True)
        return _as_rate(k * init_value / jnp.sqrt(epoch_num))

    return schedule


@equal_by_arguments
def staircase_decay(init_value: float, factor: float, every_epochs: int, *, steps_per_epoch: int = 1) -> Schedule:
    """The discrete staircase: ``alpha = alpha0 * factor ** (step // (steps_per_epoch * every_epochs))``.

    The rate starts at ``alpha0`` and is multiplied by ``factor`` once every ``every_epochs``
    epochs (the notes' "halve alpha every so many epochs" is ``factor=0.5``).

    Args:
      init_value: alpha0, a number >= 0.
      factor: a number >= 0 (0.5 halves, 0.1 divides by ten).
      every_epochs: epochs per stair, an integer >= 1.
      steps_per_epoch: minibatch updates per epoch.

    Equals ``optax.exponential_decay(alpha0, transition_steps=steps_per_epoch * every_epochs,
    decay_rate=factor, staircase=True)`` and PyTorch's ``StepLR(step_size=every_epochs,
    gamma=factor)`` stepped once per epoch.

    Example:
      >>> schedule = staircase_decay(0.1, 0.5, every_epochs=10, steps_per_epoch=100)
      >>> [round(float(schedule(step)), 6) for step in (0, 999, 1000, 2000)]
      [0.1, 0.1, 0.05, 0.025]
    """
    _checks.check_nonnegative("init_value", init_value)
    _checks.check_nonnegative("factor", factor)
    every_epochs = _count("every_epochs", every_epochs, minimum=1)
    steps_per_epoch = _count("steps_per_epoch", steps_per_epoch, minimum=1)
    period = _period("steps_per_epoch * every_epochs", steps_per_epoch * every_epochs)

    def schedule(step: Any) -> jax.Array:
        return _as_rate(init_value * jnp.power(factor, _periods(step, period, True)))

    return schedule


@equal_by_arguments
def piecewise_constant(
    init_value: float, boundaries_and_scales: Mapping[int, float], *, steps_per_epoch: int = 1
) -> Schedule:
    """A hand-written table: from boundary ``b`` on, the rate is multiplied by its scale.

    ``alpha = alpha0 * prod(scale for b, scale in table if step // steps_per_epoch >= b)``: a
    boundary counts completed epochs (steps when ``steps_per_epoch=1``), so ``{30: 0.1}``
    divides the rate by ten from the first update of the 31st epoch on.

    Args:
      init_value: alpha0, a number >= 0.
      boundaries_and_scales: ``{boundary: scale}`` with integer boundaries >= 0 and scales
        >= 0; empty keeps the rate constant.
      steps_per_epoch: steps per boundary unit.

    Equals ``optax.piecewise_constant_schedule(alpha0, {b * steps_per_epoch: scale})``, and
    PyTorch's ``MultiStepLR(milestones, gamma)`` stepped per epoch when every scale is gamma.
    Keras' ``PiecewiseConstantDecay(boundaries, values)`` switches one step later (it keeps
    ``values[i]`` while ``step <= boundaries[i]``): use boundary ``b + 1`` and scale
    ``values[i + 1] / values[i]``.

    Example:
      >>> schedule = piecewise_constant(0.1, {30: 0.1, 60: 0.1}, steps_per_epoch=10)
      >>> [round(float(schedule(step)), 6) for step in (0, 299, 300, 600)]
      [0.1, 0.1, 0.01, 0.001]
    """
    _checks.check_nonnegative("init_value", init_value)
    if not isinstance(boundaries_and_scales, Mapping):
        raise TypeError(
            f"boundaries_and_scales must be a mapping {{boundary: scale}}, got {type(boundaries_and_scales).__name__}"
        )
    steps_per_epoch = _count("steps_per_epoch", steps_per_epoch, minimum=1)
    table = []
    for boundary, scale in boundaries_and_scales.items():
        boundary = _count(f"boundaries_and_scales boundary {boundary!r}", boundary, minimum=0)
        _checks.check_nonnegative(f"boundaries_and_scales[{boundary}]", scale)
        table.append((boundary, scale))
    table.sort(key=lambda item: item[0])

    def schedule(step: Any) -> jax.Array:
        completed = jnp.floor_divide(jnp.asarray(step), steps_per_epoch)
        rate = _as_rate(init_value)
        for boundary, scale in table:
            rate = jnp.where(completed >= boundary, rate * scale, rate)
        return _as_rate(rate)

    return schedule
