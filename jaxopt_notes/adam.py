"""Adam, adaptive moment estimation: momentum plus RMSprop (notes section 6).

On iteration ``t``::

    v = beta1 * v + (1 - beta1) * dW          S = beta2 * S + (1 - beta2) * dW**2
    v_corr = v / (1 - beta1**t)               S_corr = S / (1 - beta2**t)
    W = W - alpha * v_corr / (sqrt(S_corr) + eps)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxopt_notes import _checks
from jaxopt_notes._numerics import (
    correct_bias,
    divide_by_root,
    increment_count,
    init_count,
    squares,
    update_average,
    zeros_like_tree,
)
from jaxopt_notes.base import GradientTransformation, Params, Schedule, Updates, chain
from jaxopt_notes.learning_rate import scale_by_learning_rate


class AdamState(NamedTuple):
    """State of :func:`scale_by_adam`.

    Attributes:
      count: updates taken so far (int32 scalar, saturating); ``t = count`` after an update.
      mu: first moment ``v``, uncorrected.
      nu: second moment ``S``, uncorrected.
    """

    count: jax.Array
    mu: Updates
    nu: Updates


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """The Adam direction ``v_corr / (sqrt(S_corr + eps_root) + eps)``.

    Args:
      b1, b2: decay rates of the two moments; 0.9 and 0.999 are the recommended defaults
        (Kingma and Ba, 2015), as in the notes.
      eps: added outside the square root, after bias correction (the notes' placement and
        PyTorch's; Keras adds its epsilon before correcting S, see the README's table).
      eps_root: added inside the square root; keep 0 except to differentiate through Adam.
      mu_dtype, nu_dtype: dtypes of the moments (e.g. float32 moments for bfloat16 or float16
        parameters); ``None`` keeps each parameter's dtype.

    Equals ``optax.scale_by_adam(b1, b2, eps, eps_root)``.
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_dtype("mu_dtype", mu_dtype)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params: Params) -> AdamState:
        _checks.check_params("scale_by_adam", params)
        return AdamState(init_count(), zeros_like_tree(params, mu_dtype), zeros_like_tree(params, nu_dtype))

    def update(updates: Updates, state: AdamState, params: Params | None = None) -> tuple[Updates, AdamState]:
        del params
        _checks.check_updates_match("scale_by_adam", updates, state.mu)
        mu = update_average(state.mu, updates, b1)
        nu = update_average(state.nu, squares(updates, state.nu), b2)
        count = increment_count(state.count)
        mu_hat = correct_bias(mu, b1, count)
        nu_hat = jax.tree.map(lambda s: s + eps_root, correct_bias(nu, b2, count))
        return divide_by_root(mu_hat, nu_hat, eps, eps_in_sqrt=False), AdamState(count, mu, nu)

    return GradientTransformation(init, update)


def adam(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam exactly as the notes write it; only ``learning_rate`` usually needs tuning.

    A plain chain: ``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``.
    Equals ``optax.adam(learning_rate, b1, b2, eps, eps_root=eps_root)``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.adam(1e-3)
      >>> params = {"w": jnp.ones(3)}
      >>> state = opt.init(params)
      >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
      >>> updates, state = opt.update(grads, state, params)
      >>> params = jn.apply_updates(params, updates)
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root=eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )
