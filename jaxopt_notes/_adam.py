"""Adam, adaptive moment estimation: momentum plus RMSprop (notes section 6).

On iteration ``t``::

    v = beta1 * v + (1 - beta1) * dW          S = beta2 * S + (1 - beta2) * dW**2
    v_corr = v / (1 - beta1**t)               S_corr = S / (1 - beta2**t)
    W = W - alpha * v_corr / (sqrt(S_corr) + eps)

Also the options optax users expect: Nesterov's look-ahead (NAdam), and AdamW's decoupled
weight decay.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Schedule, Updates, chain
from jaxopt_notes._learning_rate import scale_by_learning_rate
from jaxopt_notes._numerics import (
    correct_bias,
    divide_by_root,
    increment_count,
    init_count,
    squares,
    update_average,
    zeros_like_tree,
)
from jaxopt_notes._recipe import equal_by_arguments
from jaxopt_notes._weight_decay import add_decayed_weights


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`, laid out as optax's (same class and field names).

    Attributes:
      count: updates taken so far (int32 scalar, saturating); ``t = count`` after an update.
      mu: first moment ``v``, uncorrected.
      nu: second moment ``S`` of ``|g|**2``, uncorrected.
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    mu: Updates
    nu: Updates


def _first_moment_step(mu: Updates, updates: Updates, b1: float, count: jax.Array, nesterov: bool) -> Updates:
    """``v_corr``, or with ``nesterov`` NAdam's look-ahead
    ``b1 * v / (1 - b1**(t+1)) + (1 - b1) * g / (1 - b1**t)``."""
    if not nesterov:
        return correct_bias(mu, b1, count)
    ahead = correct_bias(mu, b1, increment_count(count))
    current = correct_bias(updates, b1, count)
    return jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, ahead, current)


@equal_by_arguments
def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """The Adam direction ``v_corr / (sqrt(S_corr + eps_root) + eps)``.

    Args:
      b1, b2: decay rates of the two moments; 0.9 and 0.999 are the recommended defaults
        (Kingma and Ba, 2015), as in the notes.
      eps: added outside the square root, after bias correction (the notes' placement and
        PyTorch's; Keras adds its epsilon before correcting S, see the conventions guide).
      eps_root: added inside the square root; keep 0 except to differentiate through Adam.
      mu_dtype: dtype of the first moment (e.g. float32 for bfloat16 parameters; complex for
        complex parameters); ``None`` keeps each parameter's dtype.
      nesterov: NAdam's look-ahead first moment (Dozat, 2016), as ``optax``'s ``nesterov``.
      nu_dtype: dtype of the second moment; ``None`` keeps each parameter's dtype.

    Complex parameters get a complex first moment and a second moment of ``|g|**2``
    (real-valued, stored in the parameter's dtype), as in optax. Equals
    ``optax.scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)``.
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_nonnegative("eps", eps)
    _checks.check_nonnegative("eps_root", eps_root)
    _checks.check_dtype("mu_dtype", mu_dtype)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params: Params) -> ScaleByAdamState:
        _checks.check_params("scale_by_adam", params)
        return ScaleByAdamState(init_count(), zeros_like_tree(params, mu_dtype), zeros_like_tree(params, nu_dtype))

    def update(
        updates: Updates, state: ScaleByAdamState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, ScaleByAdamState]:
        del params, extra_args
        _checks.check_state("scale_by_adam", state, ScaleByAdamState)
        _checks.check_updates_match("scale_by_adam", updates, state.mu)
        mu = update_average(state.mu, updates, b1)
        nu = update_average(state.nu, squares(updates, state.nu), b2)
        count = increment_count(state.count)
        mu_hat = _first_moment_step(mu, updates, b1, count, nesterov)
        nu_hat = jax.tree.map(lambda s: s + eps_root, correct_bias(nu, b2, count))
        return divide_by_root(mu_hat, nu_hat, eps, eps_in_sqrt=False), ScaleByAdamState(count, mu, nu)

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def adam(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam exactly as the notes write it; only ``learning_rate`` usually needs tuning.

    A plain chain: ``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``, with
    optax's positional order. Equals ``optax.adam(learning_rate, b1, b2, eps, eps_root,
    mu_dtype, nesterov=nesterov)``.

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
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


@equal_by_arguments
def adamw(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: float = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam with decoupled weight decay (AdamW): ``W = W - alpha * (adam_direction + wd * W)``.

    ``chain(scale_by_adam(...), add_decayed_weights(weight_decay, mask),
    scale_by_learning_rate(learning_rate))``, in optax's positional order; ``mask`` spares
    the leaves marked ``False`` (see :func:`add_decayed_weights`). ``update`` needs params.
    Equals ``optax.adamw(learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask,
    nesterov=nesterov)``.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.adamw(0.5, weight_decay=0.5)
      >>> params = {"w": jnp.ones(3)}
      >>> updates, state = opt.update({"w": jnp.zeros(3)}, opt.init(params), params)
      >>> updates["w"]  # a zero gradient: the decay alone, -0.5 * 0.5 * w
      Array([-0.25, -0.25, -0.25], dtype=float32)
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
