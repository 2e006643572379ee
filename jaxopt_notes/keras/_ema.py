"""Keras' ``use_ema``: an exponential moving average of the weights, kept in the state.

After each step Keras updates ``average = m * average + (1 - m) * W`` with ``m =
ema_momentum``, except on the first step, where ``m = 0`` and the average starts at the new
weights. With ``ema_overwrite_frequency = k`` the weights themselves are replaced by the
average after every k-th step. ``model.fit`` ends by writing the average into the model
(``finalize_variable_values``); here :func:`ema_params` reads it from the state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Updates, find_states
from jaxopt_notes._numerics import increment_count, init_count, zeros_like_tree


class EmaWeightsState(NamedTuple):
    """State of Keras' moving average of the weights.

    Attributes:
      count: updates taken so far (int32 scalar, saturating).
      average: the averaged weights, one leaf per parameter in its dtype; zeros before the
        first update, as Keras' ``average`` variables.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.SGD(0.1, use_ema=True)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> state[3].average["w"]  # the first step copies the new weights (Keras' rule)
      Array([0.95, 1.1 ], dtype=float32)
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    average: Params


def _averaged(average: jax.Array, new_param: jax.Array, ema_momentum: Any, not_first: jax.Array) -> jax.Array:
    momentum = not_first.astype(new_param.dtype) * jnp.asarray(ema_momentum, new_param.dtype)
    return momentum * average + (1 - momentum) * new_param


def average_weights(ema_momentum: Any, ema_overwrite_frequency: int | None) -> GradientTransformation:
    """Keeps Keras' moving average of the parameters after each update (``params + updates``,
    as ``apply_updates`` computes them); with ``ema_overwrite_frequency = k``, every k-th
    update moves the parameters onto the average instead. ``update`` needs ``params``."""

    def init(params: Params) -> EmaWeightsState:
        _checks.check_params("keras use_ema", params)
        return EmaWeightsState(init_count(), zeros_like_tree(params))

    def update(
        updates: Updates, state: EmaWeightsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmaWeightsState]:
        del extra_args
        _checks.check_state("keras use_ema", state, EmaWeightsState)
        if params is None:
            raise ValueError("keras use_ema: update needs params, the weights to average")
        _checks.check_updates_match("keras use_ema", updates, state.average)
        new_params = jax.tree.map(lambda p, u: (jnp.asarray(p) + u).astype(jnp.result_type(p)), params, updates)
        not_first = state.count != 0
        average = jax.tree.map(lambda a, p: _averaged(a, p, ema_momentum, not_first), state.average, new_params)
        if ema_overwrite_frequency is not None:
            overwrite = (state.count + 1) % ema_overwrite_frequency == 0
            updates = jax.tree.map(
                lambda u, a, p: jnp.where(overwrite, (a - p).astype(u.dtype), u), updates, average, params
            )
        return updates, EmaWeightsState(increment_count(state.count), average)

    return ElementwiseTransformation(init, update)


def ema_params(state: Any) -> Params:
    """The moving average of the weights held in an optimizer state built with
    ``use_ema=True``: the weights Keras' ``model.fit`` leaves in the model at the end of
    training (``optimizer.finalize_variable_values``). Found through chains and wrappers
    (``inject_hyperparams``, ``skip_nonfinite`` ...); zeros before the first update.

    Raises:
      ValueError: the state holds no such average (the optimizer was built without
        ``use_ema=True``), or several.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.keras.SGD(0.1, use_ema=True, ema_momentum=0.5)
      >>> params = {"w": jnp.zeros(2)}
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     updates, state = opt.update({"w": jnp.ones(2)}, state, params)
      ...     params = jn.apply_updates(params, updates)
      >>> params["w"], jn.keras.ema_params(state)["w"]  # weights -0.1, -0.2; average -0.15
      (Array([-0.2, -0.2], dtype=float32), Array([-0.15, -0.15], dtype=float32))
    """
    found = find_states(state, EmaWeightsState)
    if not found:
        raise ValueError(
            "ema_params: the state holds no moving average of the weights; build the optimizer with "
            "use_ema=True (jn.keras.Adam(..., use_ema=True))"
        )
    if len(found) > 1:
        raise ValueError(
            f"ema_params: the state holds {len(found)} moving averages of the weights; pass the one to read"
        )
    return found[0].average
