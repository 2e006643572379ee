"""Plain (minibatch) gradient descent (notes section 1)."""

from __future__ import annotations

from jaxopt_notes.base import GradientTransformation, Schedule, chain
from jaxopt_notes.learning_rate import scale_by_learning_rate


def sgd(learning_rate: float | Schedule) -> GradientTransformation:
    """Gradient descent, ``W = W - alpha * dW``: batch, minibatch or stochastic depending only
    on the data each gradient is computed from (notes section 1). Equals ``optax.sgd``."""
    return chain(scale_by_learning_rate(learning_rate))
