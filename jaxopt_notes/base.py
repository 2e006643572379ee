"""The types every transform shares, ``chain`` and ``apply_updates``.

A gradient transformation is a pair of pure functions over pytrees, the optax model::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = apply_updates(params, updates)

Our :class:`GradientTransformation` subclasses optax's, so every transform of this library
is accepted wherever optax accepts one (``optax.chain``, ``optax.MultiSteps``,
``optax.apply_if_finite``, flax's optimizers ...), and :func:`chain` accepts optax
transforms in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Params = Any
"""A pytree of arrays: parameters, gradients or updates."""
Updates = Any
State = Any
Schedule = Callable[[jax.Array], jax.Array]
"""A learning-rate schedule: ``step -> value``, the step being the updates taken so far."""


class GradientTransformation(optax.GradientTransformation):
    """A pure ``(init, update)`` pair, compatible with optax.

    Attributes:
      init: ``init(params) -> state``.
      update: ``update(updates, state, params=None) -> (updates, state)``.
    """

    __slots__ = ()


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


def chain(*transforms: optax.GradientTransformation) -> GradientTransformation:
    """Applies ``transforms`` one after another; the state is the tuple of their states.

    Any object with ``init`` and ``update`` works, optax's transforms included. Extra keyword
    arguments to ``update`` are not forwarded: wrap in ``optax.chain`` if a member needs them.

    Example:
      >>> import jaxopt_notes as jn
      >>> tx = jn.chain(jn.ewa(0.9), jn.scale_by_learning_rate(0.1))
      >>> state = tx.init({"w": jnp.zeros(3)})
    """
    for position, transform in enumerate(transforms):
        if not (callable(getattr(transform, "init", None)) and callable(getattr(transform, "update", None))):
            raise TypeError(
                f"chain: argument {position} must be a gradient transformation with init and update, "
                f"got {type(transform).__name__}"
            )

    def init(params: Params) -> tuple:
        return tuple(transform.init(params) for transform in transforms)

    def update(updates: Updates, state: tuple, params: Params | None = None) -> tuple[Updates, tuple]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"chain: state must be the tuple of {len(transforms)} member states made by init, "
                f"got {type(state).__name__}"
            )
        new_states = []
        for transform, member_state in zip(transforms, state):
            updates, member_state = transform.update(updates, member_state, params)
            new_states.append(member_state)
        return updates, tuple(new_states)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf; each result keeps its parameter's dtype.

    ``None`` leaves of ``params`` stay ``None``.
    """

    def add(param, update):
        if param is None:
            return None
        param = jnp.asarray(param)
        return (param + update).astype(param.dtype)

    return jax.tree.map(add, params, updates, is_leaf=lambda leaf: leaf is None)
