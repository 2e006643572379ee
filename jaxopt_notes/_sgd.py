"""Plain (minibatch) gradient descent (notes section 1)."""

from __future__ import annotations

from typing import Any

from jaxopt_notes import _checks
from jaxopt_notes._base import GradientTransformation, Schedule, chain, identity
from jaxopt_notes._learning_rate import scale_by_learning_rate
from jaxopt_notes._momentum import trace
from jaxopt_notes._recipe import equal_by_arguments


@equal_by_arguments
def sgd(
    learning_rate: float | Schedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Gradient descent, ``W = W - alpha * dW``: batch, minibatch or stochastic depending only
    on the data each gradient is computed from (notes section 1).

    ``momentum``, ``nesterov`` and ``accumulator_dtype`` are optax's: an undampened buffer
    ``v = momentum * v + dW`` before the step (the notes' dampened form is
    :func:`~jaxopt_notes.momentum`). The state is the pair ``(EmptyState or TraceState, rate
    state)`` of ``optax.sgd``, which this equals argument for argument.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.sgd(0.1)
      >>> updates, state = opt.update(jnp.ones(2), opt.init(jnp.zeros(2)))
      >>> updates
      Array([-0.1, -0.1], dtype=float32)
    """
    if momentum is None:
        if nesterov:
            raise ValueError("sgd: nesterov=True needs a momentum")
        first = identity()
    else:
        _checks.check_decay("momentum", momentum, allow_one=True)
        first = trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    return chain(first, scale_by_learning_rate(learning_rate))
