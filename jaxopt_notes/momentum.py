"""Gradient descent with momentum (notes section 4).

On iteration ``t``: ``v = beta * v + (1 - beta) * dW``, then ``W = W - alpha * v``. The
average damps oscillations across a valley while the consistent direction adds up.
"""

from __future__ import annotations

import jax

from jaxopt_notes import _checks
from jaxopt_notes._numerics import increment_count, init_count, zeros_like_tree
from jaxopt_notes.averaging import EwaState, ewa
from jaxopt_notes.base import GradientTransformation, Params, Schedule, Updates, chain
from jaxopt_notes.learning_rate import scale_by_learning_rate


def trace(decay: float, *, nesterov: bool = False) -> GradientTransformation:
    """The undampened momentum buffer ``v = decay * v + g`` (optax's ``trace``).

    Outputs ``v``, or ``g + decay * v`` with ``nesterov=True``. Its state is an
    :class:`~jaxopt_notes.EwaState` (``count``, ``mu``), the same shape as :func:`ewa`'s, so the
    dampened and undampened forms of :func:`momentum` share one checkpoint layout.
    Equals ``optax.trace(decay, nesterov=nesterov)``.
    """
    _checks.check_decay("decay", decay)

    def init(params: Params) -> EwaState:
        _checks.check_params("trace", params)
        return EwaState(init_count(), zeros_like_tree(params))

    def update(updates: Updates, state: EwaState, params: Params | None = None) -> tuple[Updates, EwaState]:
        del params
        _checks.check_updates_match("trace", updates, state.mu)
        mu = jax.tree.map(lambda g, v: (decay * v + g).astype(v.dtype), updates, state.mu)
        outputs = jax.tree.map(lambda g, v: g + decay * v, updates, mu) if nesterov else mu
        return outputs, EwaState(increment_count(state.count), mu)

    return GradientTransformation(init, update)


def momentum(
    learning_rate: float | Schedule,
    beta: float = 0.9,
    *,
    dampened: bool = True,
    nesterov: bool = False,
) -> GradientTransformation:
    """Gradient descent with momentum, exactly the notes' form by default::

        v = beta * v + (1 - beta) * dW
        W = W - alpha * v

    Args:
      learning_rate: alpha, a number or a schedule ``step -> value``.
      beta: 0.9 is the notes' robust default. No bias correction, as the notes advise.
      dampened: ``False`` drops the ``(1 - beta)`` factor, ``v = beta * v + dW`` (optax's and
        PyTorch's form); scale alpha by ``1 - beta`` to take the same steps.
      nesterov: look-ahead form; needs ``dampened=False``, as in optax.

    Warning:
      ``optax.sgd(lr, momentum=beta)`` is the undampened form: with the same ``lr`` it takes
      steps ``1 / (1 - beta)`` times (10x at beta = 0.9) larger than this default.
    """
    _checks.check_decay("beta", beta)  # checked here too so the error names this argument, not ewa's `decay`
    if nesterov and dampened:
        raise ValueError("momentum: nesterov=True needs dampened=False (the undampened buffer v = beta * v + dW)")
    buffer = ewa(beta) if dampened else trace(beta, nesterov=nesterov)
    return chain(buffer, scale_by_learning_rate(learning_rate))
