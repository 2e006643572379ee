"""Scaling by a step size or learning rate.

This module carries the learning-rate plumbing of every optimizer: each one ends in
:func:`scale_by_learning_rate`, whose state counts its updates, evaluates a schedule at that
count (the first update uses step 0, as optax), and records the rate it used, so a training
loop can report it with :func:`learning_rate_in_use`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._numerics import increment_count, init_count
from jaxopt_notes.base import EmptyState, GradientTransformation, Params, Schedule, Updates


def scale(step_size: float) -> GradientTransformation:
    """Multiplies every update by the constant ``step_size`` (equals ``optax.scale``)."""
    _checks.check_finite("step_size", step_size)

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates: Updates, state: EmptyState, params: Params | None = None) -> tuple[Updates, EmptyState]:
        del params
        return jax.tree.map(lambda g: step_size * g, updates), state

    return GradientTransformation(init, update)


class ScaleByLearningRateState(NamedTuple):
    """State of :func:`scale_by_learning_rate`.

    Attributes:
      count: updates taken so far (int32 scalar, saturating): the step the schedule sees next.
      learning_rate: the rate the latest update used; before the first update, the rate it
        will use. A float scalar in JAX's default float dtype.
    """

    count: jax.Array
    learning_rate: jax.Array


def _rate_at(learning_rate: float | Schedule, step: jax.Array) -> jax.Array:
    value = learning_rate(step) if callable(learning_rate) else learning_rate
    if jnp.ndim(value) != 0:
        raise ValueError(f"learning_rate: the schedule must return a scalar, got shape {jnp.shape(value)}")
    return jnp.asarray(value, dtype=jnp.result_type(float))


def scale_by_learning_rate(learning_rate: float | Schedule) -> GradientTransformation:
    """Multiplies updates by ``-learning_rate``, turning a descent direction into a step.

    Args:
      learning_rate: alpha, a number >= 0 or a schedule ``step -> value`` evaluated at this
        transform's own count (0 on the first update), like ``optax.scale_by_learning_rate``.

    The state has one shape whether the rate is constant or scheduled, so a checkpoint of
    one loads into the other.
    """
    _checks.check_learning_rate("learning_rate", learning_rate)

    def init(params: Params) -> ScaleByLearningRateState:
        _checks.check_params("scale_by_learning_rate", params)
        return ScaleByLearningRateState(init_count(), _rate_at(learning_rate, init_count()))

    def update(
        updates: Updates, state: ScaleByLearningRateState, params: Params | None = None
    ) -> tuple[Updates, ScaleByLearningRateState]:
        del params
        rate = _rate_at(learning_rate, state.count)
        updates = jax.tree.map(lambda g: -rate.astype(g.dtype) * g, updates)
        return updates, ScaleByLearningRateState(increment_count(state.count), rate)

    return GradientTransformation(init, update)


def learning_rate_in_use(state: Any) -> jax.Array | None:
    """The rate recorded by the first :func:`scale_by_learning_rate` found in an optimizer
    state (searched depth first, through chains and wrappers), or ``None`` if there is none."""
    found = jax.tree.leaves(state, is_leaf=lambda node: isinstance(node, ScaleByLearningRateState))
    for node in found:
        if isinstance(node, ScaleByLearningRateState):
            return node.learning_rate
    return None
