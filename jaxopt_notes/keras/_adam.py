"""``keras.optimizers.Adam`` and ``AdamW``: Adam with Keras' "epsilon hat".

Keras folds both bias corrections into the step size and adds its epsilon to the uncorrected
root (the epsilon of the formula just before section 2.1 of Kingma and Ba, not of their
Algorithm 1)::

    alpha_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    W = W - alpha_t * m / (sqrt(v) + epsilon)

In the notes' form that is ``m_c / (sqrt(v_c) + epsilon / sqrt(1 - beta_2**t))``: an epsilon
that shrinks with ``t``, which no fixed ``eps`` of optax's or PyTorch's Adam reproduces unless
it is 0. AdamW is the same step with Keras' weight decay switched on (``weight_decay=0.004``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Updates
from jaxopt_notes._learning_rate import rate_at
from jaxopt_notes._numerics import increment_count, init_count, zeros_like_tree
from jaxopt_notes._recipe import equal_by_arguments
from jaxopt_notes.keras._options import KerasOptions, keras_optimizer
from jaxopt_notes.keras._per_leaf import per_leaf
from jaxopt_notes.keras._rate import LearningRate


class AdamState(NamedTuple):
    """State of :func:`Adam`'s and :func:`AdamW`'s step, named as Keras names its variables.

    Attributes:
      count: updates taken so far (Keras' ``iterations``; int32 scalar, saturating).
      momentum: the first moment ``m``, uncorrected.
      velocity: the second moment ``v`` of ``g**2``, uncorrected.
      velocity_hat: with ``amsgrad``, the running maximum of ``v`` that the step divides by;
        else ``None``.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.Adam(1e-3)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> step = state[1]  # after the clipping stage, before decay, EMA and the rate
      >>> int(step.count), step.momentum["w"]  # (1 - beta_1) * g
      (1, Array([ 0.05, -0.1 ], dtype=float32))
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    momentum: Updates
    velocity: Updates
    velocity_hat: Updates | None


def adam_step(
    learning_rate: LearningRate, beta_1: Any, beta_2: Any, epsilon: Any, amsgrad: bool
) -> GradientTransformation:
    """The step of Keras' Adam, without the options every Keras optimizer shares."""

    def init(params: Params) -> AdamState:
        _checks.check_params("keras.Adam", params)
        zeros = zeros_like_tree(params)
        return AdamState(init_count(), zeros, zeros, zeros if amsgrad else None)

    def leaf_step(g: jax.Array, m: jax.Array, v: jax.Array, v_hat: Any, rate: jax.Array, t: jax.Array) -> tuple:
        dtype = m.dtype
        lr, g, t = rate.astype(dtype), g.astype(dtype), t.astype(dtype)
        # Keras' own rounding: the powers as written (no expm1), the moments as m + (g - m) * (1 - b1).
        beta_1_power = jnp.power(jnp.asarray(beta_1, dtype), t)
        beta_2_power = jnp.power(jnp.asarray(beta_2, dtype), t)
        alpha = lr * jnp.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m = m + (g - m) * jnp.asarray(1 - beta_1, dtype)
        v = v + (jnp.square(g) - v) * jnp.asarray(1 - beta_2, dtype)
        root_of = v
        if amsgrad:
            v_hat = jnp.maximum(v_hat, v)
            root_of = v_hat
        return -((m * alpha) / (jnp.sqrt(root_of) + jnp.asarray(epsilon, dtype))), m, v, v_hat

    def update(
        updates: Updates, state: AdamState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, AdamState]:
        del params, extra_args
        _checks.check_state("keras.Adam", state, AdamState)
        _checks.check_updates_match("keras.Adam", updates, state.momentum)
        rate = rate_at(learning_rate, state.count)
        count = increment_count(state.count)
        outputs, m, v, v_hat = per_leaf(
            lambda g, m, v, v_hat: leaf_step(g, m, v, v_hat, rate, count),
            4,
            updates,
            state.momentum,
            state.velocity,
            state.velocity_hat,
        )
        return outputs, AdamState(count, m, v, v_hat if amsgrad else None)

    return ElementwiseTransformation(init, update)


def _adam(
    where: str,
    learning_rate: LearningRate,
    beta_1: Any,
    beta_2: Any,
    epsilon: Any,
    amsgrad: bool,
    arguments: dict[str, Any],
) -> GradientTransformation:
    _checks.check_decay(f"{where}: beta_1", beta_1)
    _checks.check_decay(f"{where}: beta_2", beta_2)
    _checks.check_nonnegative(f"{where}: epsilon", epsilon)
    checked = KerasOptions.from_arguments(where, arguments)
    return keras_optimizer(adam_step(learning_rate, beta_1, beta_2, epsilon, bool(amsgrad)), checked)


@equal_by_arguments
def Adam(
    learning_rate: LearningRate = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> GradientTransformation:
    """``keras.optimizers.Adam`` with Keras 3's arguments, order and defaults.

    With ``lr`` the rate of the current step (0-based, as Keras) and ``t`` the update's
    number (1 on the first)::

        m = m + (g - m) * (1 - beta_1)                   v = v + (g**2 - v) * (1 - beta_2)
        W = W - lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)

    With ``amsgrad`` the root is taken of the running maximum of ``v``. Keras' ``epsilon`` is
    "epsilon hat": the notes' (and optax's, PyTorch's) ``eps`` would be
    ``epsilon / sqrt(1 - beta_2**t)``, which changes with ``t``; the two agree only at 0.

    Args:
      learning_rate: 0.001 (Keras' default); a number >= 0, a callable ``step -> rate`` or a
        schedule (:class:`ExponentialDecay` ...).
      beta_1, beta_2: decays of the moments, in [0, 1); 0.9 and 0.999 (Kingma and Ba).
      epsilon: >= 0, Keras' 1e-7 by default (the notes, optax and PyTorch use 1e-8, placed
        differently).
      amsgrad: divide by the root of the largest ``v`` so far (Reddi et al., 2018).
      weight_decay, clipnorm, clipvalue, global_clipnorm: options every Keras optimizer
        takes, described in :mod:`jaxopt_notes.keras`: decay before the step, clipping.
      use_ema, ema_momentum, ema_overwrite_frequency: the averaged weights (see
        :func:`ema_params`), also described there.
      loss_scale_factor, gradient_accumulation_steps, name: Keras' other options; the first
        two refused, naming what to use instead, ``name`` accepted and unused.

    Returns:
      A gradient transformation whose step state is an :class:`AdamState`.

    Raises:
      ValueError, TypeError: a negative rate or epsilon, a beta outside [0, 1), or
        an option error (see :mod:`jaxopt_notes.keras`).

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.Adam(0.1, epsilon=0.0)
      >>> updates, state = opt.update(jnp.array([-3.0]), opt.init(jnp.zeros(1)))
      >>> round(float(updates[0]), 5)  # Adam's first step: lr times the gradient's sign
      0.1
    """
    return _adam("keras.Adam", learning_rate, beta_1, beta_2, epsilon, amsgrad, dict(locals()))


@equal_by_arguments
def AdamW(
    learning_rate: LearningRate = 0.001,
    weight_decay: float = 0.004,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> GradientTransformation:
    """``keras.optimizers.AdamW``: :func:`Adam` with Keras' decoupled weight decay, with
    Keras 3's arguments, order (``weight_decay`` second) and defaults.

    Each step first shrinks the weights, ``W = W - W * weight_decay * lr``, then takes
    :func:`Adam`'s step. optax's and PyTorch's AdamW shrink the weights by the same
    ``lr * weight_decay * W``; what differs is Adam's epsilon (Keras' epsilon hat, see
    :func:`Adam`) and the default decay: 0.004 in Keras, 0.01 in PyTorch, 1e-4 in optax.

    Args:
      learning_rate: 0.001 (Keras' default); a number >= 0, a callable ``step -> rate`` or a
        schedule (:class:`ExponentialDecay` ...).
      weight_decay: a finite number, 0.004 by default; ``None`` is refused, as Keras does.
      beta_1, beta_2, epsilon, amsgrad: as :func:`Adam`.
      clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum: as :func:`Adam`.
      ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name: as
        :func:`Adam`.

    Returns:
      A gradient transformation whose step state is an :class:`AdamState` and whose decay
      state is a :class:`WeightDecayState`; ``update`` needs params.

    Raises:
      ValueError, TypeError: ``weight_decay=None``, or any error of :func:`Adam`.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.AdamW(0.5, weight_decay=0.5)
      >>> params = jnp.ones(2)
      >>> updates, state = opt.update(jnp.zeros(2), opt.init(params), params)
      >>> updates  # a zero gradient: the decay alone, -1 * 0.5 * 0.5
      Array([-0.25, -0.25], dtype=float32)
    """
    if weight_decay is None:
        raise ValueError("keras.AdamW: weight_decay must be a number (Keras' default is 0.004), got None")
    return _adam("keras.AdamW", learning_rate, beta_1, beta_2, epsilon, amsgrad, dict(locals()))
