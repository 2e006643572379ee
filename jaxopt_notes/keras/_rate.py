"""The learning rate of a Keras optimizer: a number, a callable of the step, or a schedule.

Keras evaluates the rate at ``optimizer.iterations``, the updates taken before this one (0 on
the first update), and casts it to each variable's dtype. Every stage below that needs the rate
(the step itself, the weight decay) evaluates it at its own count, which moves in lockstep with
the others, and :func:`record_learning_rate` keeps the value in the core's rate states so that
:func:`~jaxopt_notes.learning_rate_in_use` and ``fit``'s history report it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Schedule, Updates
from jaxopt_notes._learning_rate import ScaleByLearningRateState, ScaleByScheduleState
from jaxopt_notes._numerics import increment_count, init_count

LearningRate = float | Schedule
"""A number >= 0, or a callable ``step -> rate`` (the schedules of :mod:`jaxopt_notes.keras`)."""


def rate_at(learning_rate: LearningRate, count: jax.Array) -> jax.Array:
    """The rate at step ``count``, a scalar in JAX's default float dtype (Keras keeps a number
    rate in its ``floatx``, which matches when both are float32 or both float64)."""
    value = learning_rate(count) if callable(learning_rate) else learning_rate
    if jnp.ndim(value) != 0:
        raise ValueError(f"learning_rate: the schedule must return a scalar, got shape {jnp.shape(value)}")
    return jnp.asarray(value).astype(jnp.result_type(float))


def record_learning_rate(learning_rate: LearningRate) -> GradientTransformation:
    """Passes the updates through and records the rate of each step, in the state
    :func:`~jaxopt_notes.scale_by_learning_rate` keeps (its count for a schedule)."""

    def init(params: Params) -> ScaleByLearningRateState | ScaleByScheduleState:
        del params
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
            _checks.check_state("record_learning_rate", state, ScaleByLearningRateState)
            return updates, ScaleByLearningRateState(rate_at(learning_rate, init_count()))
        _checks.check_state("record_learning_rate", state, ScaleByScheduleState)
        assert isinstance(state, ScaleByScheduleState)  # for the type checker; checked just above
        return updates, ScaleByScheduleState(increment_count(state.count), rate_at(learning_rate, state.count))

    return ElementwiseTransformation(init, update)
