"""Exponentially weighted averages and bias correction (notes sections 2 and 3).

``v_t = beta * v_{t-1} + (1 - beta) * theta_t`` with ``v_0 = 0`` averages roughly the last
``1 / (1 - beta)`` values. Because ``v_0 = 0`` the first averages are too small; dividing by
``1 - beta**t`` corrects them, and the correction fades out as ``beta**t -> 0``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Updates
from jaxopt_notes._numerics import (
    correct_bias,
    increment_count,
    init_count,
    update_average,
    zeros_like_tree,
)
from jaxopt_notes._recipe import equal_by_arguments


class EmaState(NamedTuple):
    """State of :func:`ewa`, laid out as ``optax.ema``'s (same class and field names).

    Attributes:
      count: updates taken so far (int32 scalar, saturating); the next update is ``t = count + 1``.
      ema: the running average ``v`` per leaf, never bias-corrected.
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    ema: Updates


@equal_by_arguments
def ewa(decay: float, *, debias: bool = False, dtype: Any = None) -> GradientTransformation:
    """Exponentially weighted average of the updates: ``v = decay * v + (1 - decay) * g``.

    Outputs ``v``, or the bias-corrected ``v / (1 - decay**t)`` when ``debias=True``
    (``t`` = 1 on the first update). The state always holds the uncorrected ``v``.
    Equals ``optax.ema(decay, debias=debias)``.

    Args:
      decay: beta in [0, 1); the average spans about ``1 / (1 - decay)`` updates.
      debias: divide by ``1 - decay**t`` (notes section 3).
      dtype: dtype of the stored average; ``None`` keeps each parameter's dtype.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> tx = jn.ewa(0.9, debias=True)
      >>> state = tx.init(jnp.zeros(2))
      >>> v, state = tx.update(jnp.ones(2), state)  # debiased: exactly 1.0
    """
    _checks.check_decay("decay", decay)
    _checks.check_dtype("dtype", dtype)

    def init(params: Params) -> EmaState:
        _checks.check_params("ewa", params)
        return EmaState(init_count(), zeros_like_tree(params, dtype))

    def update(
        updates: Updates, state: EmaState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmaState]:
        del params, extra_args
        _checks.check_state("ewa", state, EmaState)
        _checks.check_updates_match("ewa", updates, state.ema)
        average = update_average(state.ema, updates, decay)
        count = increment_count(state.count)
        outputs = correct_bias(average, decay, count) if debias else average
        return outputs, EmaState(count, average)

    return ElementwiseTransformation(init, update)


class BiasCorrectionState(NamedTuple):
    """State of :func:`bias_correction`: ``count``, its own calls so far (int32 scalar)."""

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax


@equal_by_arguments
def bias_correction(decay: float) -> GradientTransformation:
    """Divides the incoming updates by ``1 - decay**t``, ``t`` counting this transform's own
    calls from 1 (notes section 3).

    ``chain(ewa(b), bias_correction(b))`` equals ``ewa(b, debias=True)``.
    """
    _checks.check_decay("decay", decay)

    def init(params: Params) -> BiasCorrectionState:
        del params
        return BiasCorrectionState(init_count())

    def update(
        updates: Updates, state: BiasCorrectionState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, BiasCorrectionState]:
        del params, extra_args
        _checks.check_state("bias_correction", state, BiasCorrectionState)
        count = increment_count(state.count)
        return correct_bias(updates, decay, count), BiasCorrectionState(count)

    return ElementwiseTransformation(init, update)
