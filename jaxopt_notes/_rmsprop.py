"""RMSprop, root mean square prop (notes section 5).

``S = beta * S + (1 - beta) * dW**2`` (element-wise), then
``W = W - alpha * dW / (sqrt(S) + eps)``: the step shrinks where gradients are large and
grows where they are small. The optional forms are optax's (and PyTorch's): a centered
variant dividing by the running standard deviation, a momentum buffer after the step, an
initial value of ``S`` and a bias correction of ``S``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jaxopt_notes import _checks
from jaxopt_notes._base import (
    ElementwiseTransformation,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    chain,
    identity,
)
from jaxopt_notes._learning_rate import scale_by_learning_rate
from jaxopt_notes._momentum import trace
from jaxopt_notes._numerics import (
    abs_sq,
    correct_bias,
    divide_by_root,
    increment_count,
    init_count,
    squares,
    update_average,
    zeros_like_tree,
)
from jaxopt_notes._recipe import equal_by_arguments


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms` (as optax's): ``nu``, the running average ``S`` of ``|g|**2``."""

    nu: Updates


class ScaleByRmsWithCountState(NamedTuple):
    """State of :func:`scale_by_rms` with ``bias_correction=True`` (as optax's): ``count`` and ``nu``."""

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    nu: Updates


class ScaleByRStdDevState(NamedTuple):
    """State of the centered form (as optax's ``scale_by_stddev``): ``mu``, the running mean
    of ``g``, and ``nu``, that of ``|g|**2``."""

    mu: Updates
    nu: Updates


class ScaleByRStdDevWithCountState(NamedTuple):
    """State of the centered form with ``bias_correction=True``: ``count``, ``mu`` and ``nu``."""

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    mu: Updates
    nu: Updates


def _filled(params: Params, value: float, dtype: Any) -> Updates:
    return jax.tree.map(lambda zero: zero + value, zeros_like_tree(params, dtype))


@equal_by_arguments
def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = False,
    bias_correction: bool = False,
    *,
    centered: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Divides each update by the root of its running mean square: ``g / (sqrt(S) + eps)``.

    Args:
      decay: beta in [0, 1) of the average ``S``.
      eps: 1e-8 guards against division by zero (notes section 5).
      initial_scale: the starting value of ``S`` (PyTorch and the notes start at 0; TF1 at 1).
      eps_in_sqrt: use ``g / sqrt(S + eps)`` instead, optax's default placement.
      bias_correction: divide ``S`` (and the mean, centered) by ``1 - decay**t``.
      centered: divide by the running standard deviation, ``sqrt(S - |m|**2)`` with ``m`` the
        running mean of ``g`` (``optax.scale_by_stddev``, PyTorch's ``centered``).
      nu_dtype: dtype of ``S``; ``None`` keeps each parameter's dtype.

    Complex gradients average ``|g|**2``, real-valued, kept in the parameter's dtype as optax
    does. Equals ``optax.scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, bias_correction)``
    (``optax.scale_by_stddev`` when centered), with its state classes.

    Warning:
      ``optax.scale_by_rms`` defaults to ``eps_in_sqrt=True``; pass ``eps_in_sqrt=False`` there
      to get the notes' (and this function's default) placement.
    """
    _checks.check_decay("decay", decay)
    _checks.check_nonnegative("eps", eps)
    _checks.check_finite("initial_scale", initial_scale)
    _checks.check_dtype("nu_dtype", nu_dtype)
    where = "scale_by_rms"

    state_type: type[Any]
    if centered:
        state_type = ScaleByRStdDevWithCountState if bias_correction else ScaleByRStdDevState
    else:
        state_type = ScaleByRmsWithCountState if bias_correction else ScaleByRmsState

    def state_of(count: Any, mu: Any, nu: Updates) -> Any:
        fields = {"count": count, "mu": mu, "nu": nu}
        return state_type(**{name: fields[name] for name in state_type._fields})

    def init(params: Params) -> Any:
        _checks.check_params(where, params)
        mu = zeros_like_tree(params) if centered else None
        return state_of(init_count(), mu, _filled(params, initial_scale, nu_dtype))

    def update(updates: Updates, state: Any, params: Params | None = None, **extra_args: Any) -> tuple[Updates, Any]:
        del params, extra_args
        _checks.check_state(where, state, state_type)
        _checks.check_updates_match(where, updates, state.nu)
        nu = update_average(state.nu, squares(updates, state.nu), decay)
        mu = update_average(state.mu, updates, decay) if centered else None
        count = increment_count(state.count) if bias_correction else None
        nu_hat, mu_hat = nu, mu
        if count is not None:
            nu_hat = correct_bias(nu, decay, count)
            mu_hat = correct_bias(mu, decay, count) if centered else None
        if centered:
            nu_hat = jax.tree.map(lambda n, m: n - abs_sq(m), nu_hat, mu_hat)
        outputs = divide_by_root(updates, nu_hat, eps, eps_in_sqrt=eps_in_sqrt)
        return outputs, state_of(count, mu, nu)

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def rmsprop(
    learning_rate: float | Schedule,
    beta: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = False,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """RMSprop as the notes write it: ``W = W - alpha * dW / (sqrt(S_dW) + eps)``.

    ``beta = 0.9`` follows optax and Keras (PyTorch uses 0.99). The other arguments are
    optax's, in optax's order, each defaulting to the notes' form: see :func:`scale_by_rms`;
    ``momentum`` adds an undampened buffer ``v = momentum * v + step`` after the learning
    rate (``nesterov`` its look-ahead form), as optax and PyTorch do.

    The state is the 3-tuple ``(rms state, rate state, TraceState or EmptyState)`` of
    ``optax.rmsprop``. Equals ``optax.rmsprop(learning_rate, decay=beta, eps=eps,
    initial_scale=..., eps_in_sqrt=..., centered=..., momentum=..., nesterov=...,
    bias_correction=...)``.
    """
    _checks.check_decay("beta", beta)  # checked here too so the error names this argument
    if momentum is not None:
        _checks.check_decay("momentum", momentum, allow_one=True)
    elif nesterov:
        raise ValueError("rmsprop: nesterov=True needs a momentum")
    return chain(
        scale_by_rms(
            beta,
            eps,
            initial_scale,
            eps_in_sqrt,
            bias_correction,
            centered=centered,
            nu_dtype=nu_dtype,
        ),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov) if momentum is not None else identity(),
    )
