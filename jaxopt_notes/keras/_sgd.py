"""``keras.optimizers.SGD``: gradient descent with Keras' velocity, the rate inside it.

Keras keeps ``velocity = momentum * velocity - lr * g`` and adds it to the weights. The rate
multiplies each gradient as it enters the velocity, so under a decaying rate the old gradients
keep the rate of the step they came from. optax's ``sgd`` (and PyTorch's) multiply the whole
buffer ``v = momentum * v + g`` by the current rate instead: equal for a constant rate, but no
chain of optax transforms gives Keras' numbers once the rate changes.
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


class SGDState(NamedTuple):
    """State of :func:`SGD`'s step, named as Keras names its variables.

    Attributes:
      count: updates taken so far (Keras' ``iterations``; int32 scalar, saturating).
      momentum: the velocity per leaf (Keras' ``momentum`` variables, which hold
        ``-lr``-scaled gradients); ``None`` when ``momentum`` is the number 0, as Keras keeps
        none then.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.SGD(0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> state[1].momentum["w"]  # -lr * g: the rate sits inside Keras' velocity
      Array([-0.05,  0.1 ], dtype=float32)
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    momentum: Updates | None


def _velocity_step(
    gradient: jax.Array, velocity: jax.Array, momentum: Any, nesterov: bool, rate: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Keras' arithmetic: the new velocity, and the update (the velocity, or its look-ahead)."""
    dtype = velocity.dtype
    lr, gradient, beta = rate.astype(dtype), gradient.astype(dtype), jnp.asarray(momentum, dtype)
    velocity = velocity * beta - gradient * lr
    return (velocity * beta - gradient * lr if nesterov else velocity), velocity


def sgd_step(learning_rate: LearningRate, momentum: Any, nesterov: bool) -> GradientTransformation:
    """The step of Keras' SGD, without the options every Keras optimizer shares."""
    with_velocity = keeps_buffer(momentum)

    def init(params: Params) -> SGDState:
        _checks.check_params("keras.SGD", params)
        return SGDState(init_count(), zeros_like_tree(params) if with_velocity else None)

    def update(
        updates: Updates, state: SGDState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, SGDState]:
        del params, extra_args
        _checks.check_state("keras.SGD", state, SGDState)
        rate = rate_at(learning_rate, state.count)
        count = increment_count(state.count)
        if not with_velocity:
            return jax.tree.map(lambda g: -(g * rate.astype(g.dtype)), updates), SGDState(count, None)
        _checks.check_updates_match("keras.SGD", updates, state.momentum)
        outputs, velocity = per_leaf(
            lambda g, v: _velocity_step(g, v, momentum, nesterov, rate), 2, updates, state.momentum
        )
        return outputs, SGDState(count, velocity)

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def SGD(
    learning_rate: LearningRate = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
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
    """``keras.optimizers.SGD`` with Keras 3's arguments, order and defaults.

    With ``lr`` the rate of the current step (0-based step, as Keras)::

        velocity = momentum * velocity - lr * g
        W = W + velocity                                  (nesterov: W + momentum * velocity - lr * g)

    and ``W = W - lr * g`` when ``momentum`` is 0. Under a constant rate this is
    ``optax.sgd(lr, momentum, nesterov)``; under a schedule it is not, because Keras multiplies
    each gradient by the rate of its own step as it enters the velocity (see
    :mod:`jaxopt_notes.keras`'s guide). The notes' dampened form (notes section 4) is Keras'
    with ``learning_rate = alpha * (1 - beta)`` under a constant rate.

    Args:
      learning_rate: 0.01 (Keras' default); a number >= 0, a callable ``step -> rate`` or a
        schedule (:class:`ExponentialDecay` ...). Keras' own callables take no argument; here
        the callable receives the step.
      momentum: in [0, 1]; 0 (Keras' default) keeps no velocity.
      nesterov: the look-ahead update; needs ``momentum > 0`` (Keras ignores it at 0).
      weight_decay, clipnorm, clipvalue, global_clipnorm: options every Keras optimizer
        takes, described in :mod:`jaxopt_notes.keras`: decay before the step, clipping.
      use_ema, ema_momentum, ema_overwrite_frequency: the averaged weights (see
        :func:`ema_params`), also described there.
      loss_scale_factor, gradient_accumulation_steps, name: Keras' other options; the first
        two refused, naming what to use instead, ``name`` accepted and unused.

    Returns:
      A gradient transformation whose state is the tuple of its stages' states, the step's
      being an :class:`SGDState`. With ``weight_decay`` or ``use_ema``, ``update`` needs params.

    Raises:
      ValueError, TypeError: an argument Keras refuses (``momentum`` outside [0, 1],
        two clipping options), one it would accept but that is a mistake (a negative rate,
        ``nesterov`` without momentum), or an option that does not fit a gradient
        transformation (``loss_scale_factor``, ``gradient_accumulation_steps``).

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> schedule = jn.keras.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
      >>> opt = jn.keras.SGD(schedule, momentum=0.9)
      >>> state = opt.init(jnp.zeros(1))
      >>> first, state = opt.update(jnp.ones(1), state)    # velocity -0.1
      >>> second, state = opt.update(jnp.ones(1), state)   # 0.9 * -0.1 - 0.05
      >>> second
      Array([-0.14], dtype=float32)
    """
    arguments = dict(locals())  # the options every Keras optimizer takes, read by name below
    where = "keras.SGD"
    _checks.check_decay(f"{where}: momentum", momentum, allow_one=True)
    if nesterov and not _checks.is_traced(momentum) and float(momentum) == 0:
        raise ValueError(f"{where}: nesterov=True needs momentum > 0, got momentum={momentum!r}")
    options = KerasOptions.from_arguments(where, arguments)
    return keras_optimizer(sgd_step(learning_rate, momentum, nesterov), options)
