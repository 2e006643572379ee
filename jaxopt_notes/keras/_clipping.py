"""Keras' gradient clipping: ``clipnorm``, ``global_clipnorm`` and ``clipvalue``.

Keras clips the gradients before anything else touches them (before the weight decay and the
step), and only one of the three may be set. The arithmetic below is Keras' own, operation for
operation, so float32 results round as Keras' do:

- ``clipnorm = c``, per leaf: ``g * c / max(||g||, c)``, the leaf's norm taken over all its
  elements (a zero gradient stays zero);
- ``global_clipnorm = c``, over all leaves: ``g * c * min(1 / N, 1 / c)`` with ``N`` the norm of
  every gradient together; a non-finite ``N`` makes every gradient NaN, as in Keras;
- ``clipvalue = c``: each element clipped to ``[-c, c]``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes._base import ElementwiseTransformation, EmptyState, GradientTransformation, Params, Updates


def _clip_leaf_norm(gradient: jax.Array, clipnorm: Any) -> jax.Array:
    clip = jnp.asarray(clipnorm, gradient.dtype)
    norm = jnp.sqrt(jnp.sum(jnp.square(gradient), keepdims=True))
    return (gradient * clip) / jnp.maximum(norm, clip)


def _clip_global_norm(updates: Updates, global_clipnorm: Any) -> Updates:
    leaves, treedef = jax.tree.flatten(updates)
    if not leaves:
        return updates
    norm = jnp.sqrt(jnp.sum(jnp.stack([jnp.sum(jnp.square(leaf)) for leaf in leaves])))
    scale = global_clipnorm * jnp.minimum(1.0 / norm, 1.0 / global_clipnorm)
    scale = scale + (norm - norm)  # NaN when the norm is not finite
    return jax.tree.unflatten(treedef, [(leaf * scale).astype(leaf.dtype) for leaf in leaves])


def clip_gradients(
    clipnorm: float | None = None, clipvalue: float | None = None, global_clipnorm: float | None = None
) -> GradientTransformation:
    """The clipping Keras applies before its step; at most one of the three is given (checked by
    the caller). Element-wise only for ``clipvalue``."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params, extra_args
        if clipnorm is not None:
            return jax.tree.map(lambda g: _clip_leaf_norm(g, clipnorm), updates), state
        if global_clipnorm is not None:
            return _clip_global_norm(updates, global_clipnorm), state
        if clipvalue is not None:
            return jax.tree.map(lambda g: jnp.clip(g, -clipvalue, clipvalue).astype(g.dtype), updates), state
        return updates, state

    if clipnorm is None and global_clipnorm is None:
        return ElementwiseTransformation(init, update)
    return GradientTransformation(init, update)
