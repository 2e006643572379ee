"""Numerics shared by the transforms: step counters, moment updates, bias correction, safe
division, norms and finiteness. One copy of each, used by every module above it."""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks

Updates = Any
Params = Any

COUNT_DTYPE = jnp.int32


_COUNT_MAX = jnp.iinfo(COUNT_DTYPE).max


def init_count() -> jax.Array:
    """A fresh step count: a scalar int32 zero."""
    return jnp.zeros([], COUNT_DTYPE)


def increment_count(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the int32 maximum instead of wrapping to negative."""
    return jnp.where(count < _COUNT_MAX, count + 1, _COUNT_MAX).astype(COUNT_DTYPE)


def _zeros_like(leaf: Any, dtype: Any) -> jax.Array:
    if not _checks.is_traced(leaf):
        return jnp.zeros_like(leaf, dtype=dtype)
    # Under jit a constant has no link to the leaf, so XLA would put it on one device whatever
    # the leaf's sharding. Zeros computed from the leaf (+0.0 for every finite value, 0 where
    # it is NaN or infinite) take the leaf's sharding through sharding propagation.
    zeros = jnp.where(jnp.isfinite(leaf), jnp.abs(leaf) * 0, 0)
    return zeros.astype(leaf.dtype if dtype is None else dtype)


def zeros_like_tree(params: Params, dtype: Any = None) -> Updates:
    """A zero per leaf of ``params``, in ``dtype`` when given, else in the leaf's dtype, placed
    like the leaf: with its sharding, eagerly and under ``jax.jit`` alike."""
    return jax.tree.map(lambda leaf: _zeros_like(leaf, dtype), params)


def update_average(average: Updates, values: Updates, decay: Any) -> Updates:
    """``decay * average + (1 - decay) * values`` per leaf, kept in ``average``'s dtype."""
    return jax.tree.map(
        lambda old, new: (decay * old + (1 - decay) * new).astype(old.dtype),
        average,
        values,
    )


def bias_correction_factor(decay: Any, count: jax.Array) -> jax.Array:
    """``1 - decay**t`` for ``t = count`` (>= 1), computed as ``-expm1(t * log(decay))``.

    Why not ``1 - decay**t`` directly: in float32 that subtraction cancels catastrophically
    for decay near 1 (at beta2 = 0.999, t = 3 it keeps only about 4 significant digits).
    The logarithm of a concrete decay is taken in double precision, so only rounding of
    order 1e-7 remains.
    """
    log_decay: jax.Array | float
    if _checks.is_traced(decay) or not isinstance(decay, (int, float)):
        log_decay = jnp.log(decay)
    else:
        log_decay = math.log(decay) if decay > 0 else -math.inf
    steps = jnp.asarray(count).astype(jnp.result_type(float))
    return -jnp.expm1(steps * log_decay)


def correct_bias(average: Updates, decay: Any, count: jax.Array) -> Updates:
    """``average / (1 - decay**count)`` per leaf; ``count`` is ``t``, the updates so far (>= 1)."""
    correction = bias_correction_factor(decay, count)
    return jax.tree.map(lambda leaf: leaf / correction.astype(leaf.dtype), average)


def abs_sq(value: jax.Array) -> jax.Array:
    """``|x|**2``, real-valued: ``x**2`` for a real ``x``, ``(conj(x) * x).real`` for a complex one."""
    if jnp.iscomplexobj(value):
        return (value.conj() * value).real
    return jnp.square(value)


def squares(updates: Updates, like: Updates) -> Updates:
    """``|g|**2`` per leaf, computed in the wider of the gradient's and ``like``'s dtypes, so a
    float16 gradient squared into float32 moments cannot overflow; real-valued for complex
    gradients, as optax's second moments."""
    return jax.tree.map(lambda g, s: abs_sq(g.astype(jnp.promote_types(g.dtype, s.dtype))), updates, like)


def divide_by_root(numerator: Updates, second_moment: Updates, eps: Any, *, eps_in_sqrt: bool) -> Updates:
    """``n / (sqrt(s) + eps)``, or ``n / sqrt(s + eps)`` with ``eps_in_sqrt``.

    Computed in at least float32 and returned in the inputs' dtype: in float16 the default
    ``eps = 1e-8`` rounds to 0, so a zero gradient would give ``0 / 0 = NaN``.
    """

    def divide(n: jax.Array, s: jax.Array) -> jax.Array:
        out_dtype = jnp.result_type(n, s)
        wide = jnp.promote_types(out_dtype, jnp.float32)
        n, s = n.astype(wide), s.astype(wide)
        quotient = n * jax.lax.rsqrt(s + eps) if eps_in_sqrt else n / (jnp.sqrt(s) + eps)
        return quotient.astype(out_dtype)

    return jax.tree.map(divide, numerator, second_moment)


def global_norm(tree: Any) -> jax.Array:
    squares = [jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree.leaves(tree)]
    return jnp.sqrt(sum(squares)) if squares else jnp.zeros([], jnp.float32)


def all_finite(tree: Any) -> jax.Array:
    """A bool scalar: ``True`` when every element of every leaf is finite (``True`` for no leaves)."""
    return functools.reduce(
        operator.and_, (jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)), jnp.array(True)
    )
