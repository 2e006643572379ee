"""The types every transform shares, ``chain`` and ``apply_updates``.

A gradient transformation is a pair of pure functions over pytrees, the optax model::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params, **extra_args)
    params = apply_updates(params, updates)

Our :class:`GradientTransformation` subclasses optax's ``GradientTransformationExtraArgs``,
so every transform of this library is accepted wherever optax accepts one (``optax.chain``,
``optax.MultiSteps``, ``optax.apply_if_finite``, ``flax.nnx.Optimizer`` ...) and takes the
extra keyword arguments (``value=loss`` ...) that optax's optimizers take; :func:`chain`
accepts optax transforms in turn and hands each member the extra arguments it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_notes import _checks
from jaxopt_notes._recipe import equal_by_arguments

Params = Any
"""A pytree of arrays: parameters, gradients or updates."""
Updates = Any
State = Any
Schedule = Callable[[jax.Array], jax.Array]
"""A learning-rate schedule: ``step -> value``, the step being the updates taken so far."""


class GradientTransformation(optax.GradientTransformationExtraArgs):
    """A pure ``(init, update)`` pair, compatible with optax.

    Attributes:
      init: ``init(params) -> state``.
      update: ``update(updates, state, params=None, **extra_args) -> (updates, state)``;
        extra keyword arguments (``value=loss`` ...) are for members that use them, and the
        transforms of this library ignore them.
    """

    __slots__ = ()


class ElementwiseTransformation(GradientTransformation):
    """A :class:`GradientTransformation` that declares it acts element by element.

    Every element of its update depends only on the same element of the gradients, parameters
    and state, and on scalars (a step count, an all-finite flag). Laying the leaves end to end
    in one buffer (:func:`~jaxopt_notes.pack`) then cannot change its result, so
    :func:`~jaxopt_notes.fit` packs it without probing. Declare only what is true: a per-leaf
    norm, clip, trust ratio, mask or factored moment is not element-wise.

    Example:
      >>> import optax, jaxopt_notes as jn
      >>> isinstance(jn.chain(jn.ewa(0.9), jn.scale(0.1)), jn.ElementwiseTransformation)
      True
      >>> isinstance(jn.chain(jn.adam(1e-3), optax.clip_by_block_rms(1.0)), jn.ElementwiseTransformation)
      False
    """

    __slots__ = ()


def transformation(init: Callable, update: Callable, *members: Any) -> GradientTransformation:
    """``(init, update)`` of a chain or wrapper of ``members``: an
    :class:`ElementwiseTransformation` when every member is one, else a plain one."""
    if all(isinstance(member, ElementwiseTransformation) for member in members):
        return ElementwiseTransformation(init, update)
    return GradientTransformation(init, update)


def update_with_extra_args(
    transform: optax.GradientTransformation,
    updates: Updates,
    state: State,
    params: Params | None,
    extra_args: dict[str, Any],
) -> tuple[Updates, State]:
    """``transform.update`` with ``extra_args`` when it accepts them (as optax's
    ``GradientTransformationExtraArgs`` do), without them otherwise, as ``optax.chain`` does."""
    if isinstance(transform, optax.GradientTransformationExtraArgs):
        return transform.update(updates, state, params, **extra_args)
    return transform.update(updates, state, params)


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


@equal_by_arguments
def identity() -> GradientTransformation:
    """Passes the updates through unchanged; its state is :class:`EmptyState` (``optax.identity``)."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params, extra_args
        return updates, state

    return ElementwiseTransformation(init, update)


@equal_by_arguments
def chain(*transforms: optax.GradientTransformation) -> GradientTransformation:
    """Applies ``transforms`` one after another; the state is the tuple of their states.

    Any object with ``init`` and ``update`` works, optax's transforms included. Extra keyword
    arguments of ``update`` go to every member that accepts them (an optax
    ``GradientTransformationExtraArgs``, which every transform of this library is) and are
    left out for the others, as in ``optax.chain``.

    Example:
      >>> import jaxopt_notes as jn
      >>> tx = jn.chain(jn.ewa(0.9), jn.scale_by_learning_rate(0.1))
      >>> state = tx.init({"w": jnp.zeros(3)})
    """
    for position, transform in enumerate(transforms):
        _checks.check_transformation(f"chain: argument {position}", transform)

    def init(params: Params) -> tuple:
        return tuple(transform.init(params) for transform in transforms)

    def update(
        updates: Updates, state: tuple, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, tuple]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(
                f"chain: state must be the tuple of {len(transforms)} member states made by init, "
                f"got {type(state).__name__}"
            )
        new_states = []
        for transform, member_state in zip(transforms, state):
            updates, member_state = update_with_extra_args(transform, updates, member_state, params, extra_args)
            new_states.append(member_state)
        return updates, tuple(new_states)

    return transformation(init, update, *transforms)


def find_states(state: State, kind: type | tuple[type, ...]) -> list[Any]:
    """Every node of type ``kind`` in an optimizer state, depth first, through chains and
    wrappers (a tuple of states, an inject_hyperparams or skip_nonfinite inner state ...)."""

    def is_kind(node: Any) -> bool:
        return isinstance(node, kind)

    return [node for node in jax.tree.leaves(state, is_leaf=is_kind) if is_kind(node)]


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
