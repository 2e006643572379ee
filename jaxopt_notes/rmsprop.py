"""RMSprop, root mean square prop (notes section 5).

``S = beta * S + (1 - beta) * dW**2`` (element-wise), then
``W = W - alpha * dW / (sqrt(S) + eps)``: the step shrinks where gradients are large and
grows where they are small.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from jaxopt_notes import _checks
from jaxopt_notes._numerics import divide_by_root, squares, update_average, zeros_like_tree
from jaxopt_notes.base import GradientTransformation, Params, Schedule, Updates, chain
from jaxopt_notes.learning_rate import scale_by_learning_rate


class RmsState(NamedTuple):
    """State of :func:`scale_by_rms`: ``nu``, the running average ``S`` of squared gradients."""

    nu: Updates


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, *, eps_in_sqrt: bool = False, nu_dtype: Any = None
) -> GradientTransformation:
    """Divides each update by the root of its running mean square: ``g / (sqrt(S) + eps)``.

    Args:
      decay: beta in [0, 1) of the average ``S``.
      eps: 1e-8 guards against division by zero (notes section 5).
      eps_in_sqrt: use ``g / sqrt(S + eps)`` instead, optax's default placement.
      nu_dtype: dtype of ``S``; ``None`` keeps each parameter's dtype.

    Warning:
      ``optax.scale_by_rms`` defaults to ``eps_in_sqrt=True``; pass ``eps_in_sqrt=False`` there
      to get the notes' (and this function's default) placement.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params: Params) -> RmsState:
        _checks.check_params("scale_by_rms", params)
        return RmsState(zeros_like_tree(params, nu_dtype))

    def update(updates: Updates, state: RmsState, params: Params | None = None) -> tuple[Updates, RmsState]:
        del params
        _checks.check_updates_match("scale_by_rms", updates, state.nu)
        nu = update_average(state.nu, squares(updates, state.nu), decay)
        return divide_by_root(updates, nu, eps, eps_in_sqrt=eps_in_sqrt), RmsState(nu)

    return GradientTransformation(init, update)


def rmsprop(
    learning_rate: float | Schedule,
    beta: float = 0.9,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """RMSprop as the notes write it: ``W = W - alpha * dW / (sqrt(S_dW) + eps)``.

    ``beta = 0.9`` follows optax and Keras (PyTorch uses 0.99). Equals
    ``optax.rmsprop(learning_rate, decay=beta, eps=eps, eps_in_sqrt=eps_in_sqrt)``.
    """
    _checks.check_decay("beta", beta)  # checked here too so the error names this argument, not scale_by_rms's
    return chain(
        scale_by_rms(beta, eps, eps_in_sqrt=eps_in_sqrt, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )
