"""Scaling by a step size or learning rate.

This module carries the learning-rate plumbing of every optimizer: each one ends in
:func:`scale_by_learning_rate`, which evaluates a schedule at its own count (the first
update uses step 0, as optax) and records the rate it used, so a training loop can report
it with :func:`learning_rate_in_use`.

Its state is laid out as optax's wherever optax keeps one, so that ``optax.tree.get(state,
"count")`` finds the same single count on our optimizers as on optax's: a constant rate keeps
no count (optax keeps an ``EmptyState``), a schedule keeps a :class:`ScaleByScheduleState`
``count`` as ``optax.scale_by_schedule`` does. The rate used is stored under ``rate_in_use``,
a name optax never uses, so it cannot clash with ``"learning_rate"`` either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import (
    ElementwiseTransformation,
    EmptyState,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    find_states,
)
from jaxopt_notes._numerics import increment_count, init_count
from jaxopt_notes._recipe import equal_by_arguments


@equal_by_arguments
def scale(step_size: float) -> GradientTransformation:
    """Multiplies every update by the constant ``step_size`` (equals ``optax.scale``)."""
    _checks.check_finite("step_size", step_size)

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params, extra_args
        return jax.tree.map(lambda g: step_size * g, updates), state

    return ElementwiseTransformation(init, update)


class ScaleByLearningRateState(NamedTuple):
    """State of :func:`scale_by_learning_rate` with a constant rate (optax keeps none).

    Attributes:
      rate_in_use: the rate the latest update used; before the first update, the rate it
        will use. A float scalar in JAX's default float dtype.
    """

    rate_in_use: jax.Array


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_learning_rate` with a schedule, laid out as
    ``optax.scale_by_schedule``'s with one more field.

    Attributes:
      count: updates taken so far (int32 scalar, saturating): the step the schedule sees next.
      rate_in_use: the rate the latest update used (before the first update, the one it
        will use), in JAX's default float dtype.
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    rate_in_use: jax.Array


def rate_at(learning_rate: float | Schedule, step: jax.Array) -> jax.Array:
    """The rate at ``step`` (a number, or a schedule called on the step), a scalar in JAX's
    default float dtype."""
    value = learning_rate(step) if callable(learning_rate) else learning_rate
    if jnp.ndim(value) != 0:
        raise ValueError(f"learning_rate: the schedule must return a scalar, got shape {jnp.shape(value)}")
    return jnp.asarray(value, dtype=jnp.result_type(float))


def _scaled(updates: Updates, rate: jax.Array) -> Updates:
    return jax.tree.map(lambda g: -rate.astype(g.dtype) * g, updates)


def _rate_stage(
    where: str, learning_rate: float | Schedule, apply: Callable[[Updates, jax.Array], Updates]
) -> GradientTransformation:
    """A stage that evaluates the rate at its own count, hands ``apply(updates, rate)`` on and
    records the rate: a :class:`ScaleByLearningRateState` for a number, a
    :class:`ScaleByScheduleState` (with the count the schedule sees next) for a schedule."""

    def init(params: Params) -> ScaleByLearningRateState | ScaleByScheduleState:
        _checks.check_params(where, params)
        rate = rate_at(learning_rate, init_count())
        return ScaleByScheduleState(init_count(), rate) if callable(learning_rate) else ScaleByLearningRateState(rate)

    def update(
        updates: Updates,
        state: ScaleByLearningRateState | ScaleByScheduleState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, ScaleByLearningRateState | ScaleByScheduleState]:
        del params, extra_args
        if not callable(learning_rate):
            _checks.check_state(where, state, ScaleByLearningRateState)
            rate = rate_at(learning_rate, init_count())
            return apply(updates, rate), ScaleByLearningRateState(rate)
        _checks.check_state(where, state, ScaleByScheduleState)
        assert isinstance(state, ScaleByScheduleState)  # for the type checker; checked just above
        rate = rate_at(learning_rate, state.count)
        return apply(updates, rate), ScaleByScheduleState(increment_count(state.count), rate)

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def scale_by_learning_rate(learning_rate: float | Schedule) -> GradientTransformation:
    """Multiplies updates by ``-learning_rate``, turning a descent direction into a step.

    Args:
      learning_rate: alpha, a number >= 0 or a schedule ``step -> value`` evaluated at this
        transform's own count (0 on the first update), like ``optax.scale_by_learning_rate``.

    The state is a :class:`ScaleByLearningRateState` for a number and a
    :class:`ScaleByScheduleState` for a schedule, mirroring optax's ``EmptyState`` and
    ``ScaleByScheduleState``; both record the rate in use.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> tx = jn.scale_by_learning_rate(lambda step: 0.1 / (step + 1))
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.ones(2), state)
      >>> updates, state = tx.update(jnp.ones(2), state)
      >>> float(jn.learning_rate_in_use(state))
      0.05000000074505806
    """
    _checks.check_learning_rate("learning_rate", learning_rate)
    return _rate_stage("scale_by_learning_rate", learning_rate, _scaled)


def record_learning_rate(learning_rate: float | Schedule) -> GradientTransformation:
    """Passes the updates through unchanged and records the rate of each step in the state
    :func:`scale_by_learning_rate` keeps, for a chain that applies the rate elsewhere (Keras'
    optimizers apply it inside their step) but reports it through :func:`learning_rate_in_use`."""
    _checks.check_learning_rate("learning_rate", learning_rate)
    return _rate_stage("record_learning_rate", learning_rate, lambda updates, rate: updates)


def learning_rate_in_use(state: Any) -> jax.Array | None:
    """The rate recorded by the first :func:`scale_by_learning_rate` found in an optimizer
    state (searched depth first, through chains and wrappers): the rate its latest update
    used, or the one its first update will use. ``None`` if there is none.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> float(jn.learning_rate_in_use(jn.adam(0.5).init(jnp.zeros(2))))
      0.5
    """
    found = find_states(state, (ScaleByLearningRateState, ScaleByScheduleState))
    return found[0].rate_in_use if found else None
