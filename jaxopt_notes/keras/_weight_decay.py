"""Keras' weight decay: ``W = W - W * weight_decay * learning_rate`` before each step.

Every Keras optimizer takes ``weight_decay``; it shrinks the weights themselves (decoupled from
the gradient, as in AdamW) at the rate of the current step, *before* the step's own update is
applied. As a gradient transformation the decay comes after the step's update ``u`` and adds
to it, so that the parameters after ``apply_updates`` are Keras' ``(W - W * wd * lr) + u``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Updates
from jaxopt_notes._learning_rate import rate_at
from jaxopt_notes._numerics import increment_count, init_count
from jaxopt_notes.keras._rate import LearningRate


class WeightDecayState(NamedTuple):
    """State of Keras' weight decay: ``count``, the updates taken so far, where it reads the rate.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.AdamW(1e-3)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> state[2]
      WeightDecayState(count=Array(1, dtype=int32))
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax


def _decayed(update: jax.Array, param: jax.Array, weight_decay: Any, rate: jax.Array) -> jax.Array:
    param = jnp.asarray(param)
    decayed = param - param * jnp.asarray(weight_decay, param.dtype) * rate.astype(param.dtype)
    # Keras' new weight is (W - W * wd * lr) + u. Returned as that weight minus W, the update
    # is exact whenever the two weights lie within a factor 2 of each other (Sterbenz), so
    # apply_updates' W + update lands on Keras' weight to the last bit, as W + (u - W*wd*lr)
    # would not.
    return ((decayed + update.astype(param.dtype)) - param).astype(update.dtype)


def decay_weights(weight_decay: Any, learning_rate: LearningRate) -> GradientTransformation:
    """Adds Keras' decay ``-W * weight_decay * lr`` to the updates, ``lr`` evaluated at this
    stage's own count; ``update`` needs ``params``."""

    def init(params: Params) -> WeightDecayState:
        del params
        return WeightDecayState(init_count())

    def update(
        updates: Updates, state: WeightDecayState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, WeightDecayState]:
        del extra_args
        _checks.check_state("keras weight_decay", state, WeightDecayState)
        if params is None:
            raise ValueError("keras weight_decay: update needs params, the weights to decay")
        _checks.check_updates_match("keras weight_decay", updates, params)
        rate = rate_at(learning_rate, state.count)
        decayed = jax.tree.map(lambda u, p: _decayed(u, p, weight_decay, rate), updates, params)
        return decayed, WeightDecayState(increment_count(state.count))

    return ElementwiseTransformation(init, update)
