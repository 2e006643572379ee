"""Gradient descent with momentum (notes section 4).

On iteration ``t``: ``v = beta * v + (1 - beta) * dW``, then ``W = W - alpha * v``. The
average damps oscillations across a valley while the consistent direction adds up.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxopt_notes import _checks
from jaxopt_notes._averaging import ewa
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Schedule, Updates, chain
from jaxopt_notes._learning_rate import scale_by_learning_rate
from jaxopt_notes._numerics import zeros_like_tree
from jaxopt_notes._recipe import equal_by_arguments


class TraceState(NamedTuple):
    """State of :func:`trace`, laid out as ``optax.trace``'s: ``trace``, the buffer ``v``."""

    trace: Updates


@equal_by_arguments
def trace(decay: float, nesterov: bool = False, accumulator_dtype: Any = None) -> GradientTransformation:
    """The undampened momentum buffer ``v = decay * v + g`` (optax's ``trace``).

    Outputs ``v``, or ``g + decay * v`` with ``nesterov=True``. ``decay`` may be 1 (a plain
    sum of the gradients: there is no bias correction to divide by zero).

    Args:
      decay: in [0, 1].
      nesterov: the look-ahead output ``g + decay * v``.
      accumulator_dtype: dtype of the stored buffer; ``None`` keeps each parameter's dtype.
        The output is computed before the buffer is cast, as in optax.

    Equals ``optax.trace(decay, nesterov, accumulator_dtype)``.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> tx = jn.trace(1.0)
      >>> state = tx.init(jnp.zeros(2))
      >>> v, state = tx.update(jnp.ones(2), state)
      >>> v, state = tx.update(jnp.ones(2), state)
      >>> v
      Array([2., 2.], dtype=float32)
    """
    _checks.check_decay("decay", decay, allow_one=True)
    _checks.check_dtype("accumulator_dtype", accumulator_dtype)

    def init(params: Params) -> TraceState:
        _checks.check_params("trace", params)
        return TraceState(zeros_like_tree(params, accumulator_dtype))

    def update(
        updates: Updates, state: TraceState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, TraceState]:
        del params, extra_args
        _checks.check_state("trace", state, TraceState)
        _checks.check_updates_match("trace", updates, state.trace)
        buffer = jax.tree.map(lambda g, v: g + decay * v, updates, state.trace)
        outputs = jax.tree.map(lambda g, v: g + decay * v, updates, buffer) if nesterov else buffer
        stored = jax.tree.map(lambda new, old: new.astype(old.dtype), buffer, state.trace)
        return outputs, TraceState(stored)

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def momentum(
    learning_rate: float | Schedule,
    beta: float = 0.9,
    *,
    dampened: bool = True,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Gradient descent with momentum, exactly the notes' form by default::

        v = beta * v + (1 - beta) * dW
        W = W - alpha * v

    Args:
      learning_rate: alpha, a number or a schedule ``step -> value``.
      beta: in [0, 1); 0.9 is the notes' robust default. No bias correction, as the notes
        advise; undampened, beta = 1 is accepted too (a plain sum, as in optax).
      dampened: ``False`` drops the ``(1 - beta)`` factor, ``v = beta * v + dW`` (optax's and
        PyTorch's form); scale alpha by ``1 - beta`` to take the same steps.
      nesterov: look-ahead form; needs ``dampened=False``, as in optax.
      accumulator_dtype: dtype of ``v`` (``optax.sgd``'s ``accumulator_dtype``); ``None``
        keeps each parameter's dtype.

    The state is ``(EmaState, ScaleByLearningRateState)`` dampened, and
    ``(TraceState, ScaleByLearningRateState)`` undampened, as ``optax.sgd(lr, momentum=beta)``
    (a schedule gives a ``ScaleByScheduleState``).

    Warning:
      ``optax.sgd(lr, momentum=beta)`` is the undampened form: with the same ``lr`` it takes
      steps ``1 / (1 - beta)`` times (10x at beta = 0.9) larger than this default.
    """
    _checks.check_decay("beta", beta, allow_one=not dampened)  # checked here so the error names this argument
    if nesterov and dampened:
        raise ValueError("momentum: nesterov=True needs dampened=False (the undampened buffer v = beta * v + dW)")
    if dampened:
        buffer = ewa(beta, dtype=accumulator_dtype)
    else:
        buffer = trace(beta, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    return chain(buffer, scale_by_learning_rate(learning_rate))
