"""Decoupled weight decay: adding ``weight_decay * W`` to the updates (AdamW's decay).

Placed between an adaptive direction and the learning rate, as in :func:`~jaxopt_notes.adamw`,
the decay shrinks every weight by ``alpha * weight_decay * W`` per step, independently of the
gradient's scale (Loshchilov and Hutter, 2019), which an L2 term in the loss does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, EmptyState, GradientTransformation, Params, Updates
from jaxopt_notes._recipe import equal_by_arguments


class MaskedState(NamedTuple):
    """State of :func:`add_decayed_weights` with a mask, laid out as ``optax.masked``'s."""

    inner_state: Any


def _flag(value: Any, where: str) -> bool:
    """One mask entry as a Python bool: a Python, NumPy or JAX boolean (a 0-d array), or the
    integers 0 and 1, which optax's masks also accept."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    if isinstance(value, np.ndarray | jax.Array) and value.shape == () and value.dtype == bool:
        if _checks.is_traced(value):
            raise TypeError(
                f"add_decayed_weights: mask{where} is a traced value; a mask must be known when the update is "
                "compiled (Python or NumPy booleans, or a callable params -> such booleans)"
            )
        return bool(value)
    got = f"an array of shape {value.shape} and dtype {value.dtype}" if hasattr(value, "shape") else repr(value)
    raise TypeError(
        f"add_decayed_weights: mask{where} must be one boolean (True decays that leaf or subtree), got {got:.80}"
    )


def _align_mappings(mask: Any, params: Any) -> Any:
    """``mask`` with every mapping that stands where ``params`` has a dict made a dict: a mask
    written as a flax ``FrozenDict`` over plain-dict parameters (optax refuses that pair)."""
    if not isinstance(params, dict) or not isinstance(mask, Mapping):
        return mask
    return {key: _align_mappings(value, params.get(key)) for key, value in mask.items()}


def _leaf_flags(mask: Any, params: Params) -> Any:
    """One Python bool per parameter leaf. The mask (or what a callable mask returns) has the
    structure of ``params`` or is a prefix of it (``{"backbone": False, "head": True}`` over
    nested parameters): an entry covers its whole subtree, as in ``optax.masked``."""
    tree = _align_mappings(mask(params) if callable(mask) else mask, params)
    flags = _flags(tree)
    try:
        return jax.tree.map(lambda flag, subtree: jax.tree.map(lambda _: flag, subtree), flags, params)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "add_decayed_weights: mask must be a pytree of booleans with the structure of params or a prefix "
            f"of it (one boolean for a whole subtree), or a callable params -> such a pytree ({error})"
        ) from None


def _flags(mask: Any) -> Any:
    """``mask`` with each entry checked and made a Python bool (see :func:`_flag`)."""
    return jax.tree_util.tree_map_with_path(lambda path, flag: _flag(flag, jax.tree_util.keystr(path)), mask)


@equal_by_arguments
def add_decayed_weights(
    weight_decay: float = 0.0, mask: Any | Callable[[Params], Any] | None = None
) -> GradientTransformation:
    """Adds ``weight_decay * params`` to the updates (``optax.add_decayed_weights``).

    Args:
      weight_decay: a finite number (usually small and >= 0).
      mask: ``None`` to decay every leaf, else a pytree of booleans (Python, NumPy or JAX
        scalars; 0 and 1 too) with the parameters' structure or a prefix of it, one boolean
        then covering a whole subtree (``{"backbone": False, "head": True}``), or a callable
        ``params -> such a pytree``: only leaves under ``True`` decay, the usual way to spare
        biases and normalization scales. A mask written as a flax ``FrozenDict`` over plain
        dict parameters is read as the dict it holds.

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
        _flags(mask)

    def init(params: Params) -> EmptyState | MaskedState:
        if mask is None:
            return EmptyState()
        _leaf_flags(mask, params)
        return MaskedState(EmptyState())

    def update(
        updates: Updates, state: EmptyState | MaskedState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState | MaskedState]:
        del extra_args
        if params is None:
            raise ValueError("add_decayed_weights: update needs params, the weights to decay")
        if mask is None:
            return jax.tree.map(lambda g, p: g + weight_decay * p, updates, params), state
        flags = _leaf_flags(mask, params)
        decayed = jax.tree.map(lambda g, p, flag: g + weight_decay * p if flag else g, updates, params, flags)
        return decayed, state

    # Element-wise without a mask; a mask treats whole leaves, which packing would merge.
    return ElementwiseTransformation(init, update) if mask is None else GradientTransformation(init, update)
