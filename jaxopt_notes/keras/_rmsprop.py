"""``keras.optimizers.RMSprop``: epsilon inside the root, the rate inside the momentum.

Keras divides by ``sqrt(S + epsilon)`` (the notes and PyTorch by ``sqrt(S) + eps``), defaults
to ``epsilon = 1e-7``, and with ``momentum`` accumulates the rate-scaled increments, so under a
schedule old increments keep the rate of their own step.
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
from jaxopt_notes.keras._options import KerasOptions, keeps_buffer, keras_optimizer
from jaxopt_notes.keras._per_leaf import per_leaf
from jaxopt_notes.keras._rate import LearningRate


class RMSpropState(NamedTuple):
    """State of :func:`RMSprop`'s step, named as Keras names its variables.

    Attributes:
      count: updates taken so far (Keras' ``iterations``; int32 scalar, saturating).
      velocity: the running mean ``S`` of ``g**2``.
      average_gradient: the running mean of ``g`` when ``centered``, else ``None``.
      momentum: the sum of rate-scaled increments when ``momentum`` is not the number 0,
        else ``None``.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.RMSprop(1e-3, centered=True)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> state[1].velocity["w"], state[1].average_gradient["w"]  # (1 - rho) * g**2 and * g
      (Array([0.025, 0.1  ], dtype=float32), Array([ 0.05, -0.1 ], dtype=float32))
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    velocity: Updates
    average_gradient: Updates | None
    momentum: Updates | None


def rmsprop_step(
    learning_rate: LearningRate, rho: Any, momentum: Any, epsilon: Any, centered: bool
) -> GradientTransformation:
    """The step of Keras' RMSprop, without the options every Keras optimizer shares."""
    with_momentum = keeps_buffer(momentum)

    def init(params: Params) -> RMSpropState:
        _checks.check_params("keras.RMSprop", params)
        zeros = zeros_like_tree(params)
        return RMSpropState(init_count(), zeros, zeros if centered else None, zeros if with_momentum else None)

    def leaf_step(g: jax.Array, velocity: jax.Array, average: Any, buffer: Any, rate: jax.Array) -> tuple:
        dtype = velocity.dtype
        lr, g = rate.astype(dtype), g.astype(dtype)
        decay, fresh = jnp.asarray(rho, dtype), jnp.asarray(1 - rho, dtype)
        velocity = decay * velocity + fresh * jnp.square(g)
        if centered:
            average = decay * average + fresh * g
            denominator = velocity - jnp.square(average) + jnp.asarray(epsilon, dtype)
        else:
            denominator = velocity + jnp.asarray(epsilon, dtype)
        increment = (lr * g) / jnp.sqrt(denominator)
        if with_momentum:
            buffer = jnp.asarray(momentum, dtype) * buffer + increment
            increment = buffer
        return -increment, velocity, average, buffer

    def update(
        updates: Updates, state: RMSpropState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, RMSpropState]:
        del params, extra_args
        _checks.check_state("keras.RMSprop", state, RMSpropState)
        _checks.check_updates_match("keras.RMSprop", updates, state.velocity)
        rate = rate_at(learning_rate, state.count)
        outputs, velocity, average, buffer = per_leaf(
            lambda g, v, a, b: leaf_step(g, v, a, b, rate),
            4,
            updates,
            state.velocity,
            state.average_gradient,
            state.momentum,
        )
        new_state = RMSpropState(
            increment_count(state.count), velocity, average if centered else None, buffer if with_momentum else None
        )
        return outputs, new_state

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def RMSprop(
    learning_rate: LearningRate = 0.001,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-7,
    centered: bool = False,
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
    """``keras.optimizers.RMSprop`` with Keras 3's arguments, order and defaults.

    With ``lr`` the rate of the current step (0-based, as Keras)::

        S = rho * S + (1 - rho) * g**2
        increment = lr * g / sqrt(S + epsilon)           (centered: sqrt(S - m**2 + epsilon),
                                                          m = rho * m + (1 - rho) * g)
        W = W - increment                                (momentum: v = momentum * v + increment;
                                                          W = W - v)

    Epsilon sits inside the root, unlike the notes' ``dW / (sqrt(S) + eps)``: the two agree
    only where ``S`` dwarfs epsilon. Under a constant rate this equals
    ``optax.rmsprop(lr, rho, epsilon, eps_in_sqrt=True, centered=centered, momentum=m)``.

    Args:
      learning_rate: 0.001 (Keras' default); a number >= 0, a callable ``step -> rate`` or a
        schedule (:class:`ExponentialDecay` ...).
      rho: the decay of ``S`` in [0, 1); 0.9 as Keras (PyTorch's ``alpha`` defaults to 0.99).
      momentum: in [0, 1]; 0 (Keras' default) keeps no buffer.
      epsilon: >= 0, added inside the root; 1e-7 as Keras.
      centered: divide by the root of the running variance ``S - m**2`` instead of ``S``.
      weight_decay, clipnorm, clipvalue, global_clipnorm: options every Keras optimizer
        takes, described in :mod:`jaxopt_notes.keras`: decay before the step, clipping.
      use_ema, ema_momentum, ema_overwrite_frequency: the averaged weights (see
        :func:`ema_params`), also described there.
      loss_scale_factor, gradient_accumulation_steps, name: Keras' other options; the first
        two refused, naming what to use instead, ``name`` accepted and unused.

    Returns:
      A gradient transformation whose step state is an :class:`RMSpropState`.

    Raises:
      ValueError, TypeError: a negative rate or epsilon, ``rho`` outside [0, 1),
        ``momentum`` outside [0, 1], or an option error (see :mod:`jaxopt_notes.keras`).

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.RMSprop(0.1, epsilon=0.0)
      >>> updates, state = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
      >>> updates  # -0.1 * 2 / sqrt(0.1 * 4)
      Array([-0.31622776], dtype=float32)
    """
    arguments = dict(locals())  # the options every Keras optimizer takes, read by name below
    where = "keras.RMSprop"
    _checks.check_decay(f"{where}: rho", rho)
    _checks.check_decay(f"{where}: momentum", momentum, allow_one=True)
    _checks.check_nonnegative(f"{where}: epsilon", epsilon)
    options = KerasOptions.from_arguments(where, arguments)
    return keras_optimizer(rmsprop_step(learning_rate, rho, momentum, epsilon, bool(centered)), options)
