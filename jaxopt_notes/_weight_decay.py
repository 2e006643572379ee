"""Decoupled weight decay: adding ``weight_decay * W`` to the updates (AdamW's decay).

Placed between an adaptive direction and the learning rate, as in :func:`~jaxopt_notes.adamw`,
the decay shrinks every weight by ``alpha * weight_decay * W`` per step, independently of the
gradient's scale (Loshchilov and Hutter, 2019), which an L2 term in the loss does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, EmptyState, GradientTransformation, Params, Updates
from jaxopt_notes._recipe import equal_by_arguments


class MaskedState(NamedTuple):
    """State of :func:`add_decayed_weights` with a mask, laid out as ``optax.masked``'s."""

    inner_state: Any


def _mask_tree(mask: Any, params: Params) -> Any:
    tree = mask(params) if callable(mask) else mask
    try:
        return jax.tree.map(lambda _, flag: bool(flag), params, tree)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "add_decayed_weights: mask must be a pytree of booleans with the structure of params, or a "
            f"callable params -> such a pytree ({error})"
        ) from None


@equal_by_arguments
def add_decayed_weights(
    weight_decay: float = 0.0, mask: Any | Callable[[Params], Any] | None = None
) -> GradientTransformation:
    """Adds ``weight_decay * params`` to the updates (``optax.add_decayed_weights``).

    Args:
      weight_decay: a finite number (usually small and >= 0).
      mask: ``None`` to decay every leaf, else a pytree of booleans shaped like the
        parameters (or a callable ``params -> pytree``): only ``True`` leaves decay, the
        usual way to spare biases and normalization scales.

    ``update`` needs ``params``. Equals ``optax.add_decayed_weights(weight_decay, mask)``,
    state included (``EmptyState``, or a ``MaskedState`` with a mask).

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> tx = jn.add_decayed_weights(0.1, mask={"w": True, "b": False})
      >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.zeros(2), "b": jnp.zeros(2)}, tx.init(params), params)
      >>> updates["w"], updates["b"]
      (Array([0.1, 0.1], dtype=float32), Array([0., 0.], dtype=float32))
    """
    _checks.check_finite("weight_decay", weight_decay)
    if mask is not None and not callable(mask):
        leaves = jax.tree.leaves(mask)
        if not all(isinstance(leaf, bool) for leaf in leaves):
            raise TypeError("add_decayed_weights: mask must be a pytree of Python booleans or a callable")

    def init(params: Params) -> EmptyState | MaskedState:
        if mask is None:
            return EmptyState()
        _mask_tree(mask, params)
        return MaskedState(EmptyState())

    def update(
        updates: Updates, state: EmptyState | MaskedState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState | MaskedState]:
        del extra_args
        if params is None:
            raise ValueError("add_decayed_weights: update needs params, the weights to decay")
        if mask is None:
            return jax.tree.map(lambda g, p: g + weight_decay * p, updates, params), state
        flags = _mask_tree(mask, params)
        decayed = jax.tree.map(lambda g, p, flag: g + weight_decay * p if flag else g, updates, params, flags)
        return decayed, state

    # Element-wise without a mask; a mask treats whole leaves, which packing would merge.
    return ElementwiseTransformation(init, update) if mask is None else GradientTransformation(init, update)
