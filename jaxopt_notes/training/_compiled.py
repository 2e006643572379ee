"""The compiled pieces behind :func:`~jaxopt_notes.fit`: one ``lax.scan`` per epoch or chunk.

A step computes the minibatch cost and its gradient, asks the optimizer for the update and
applies it, and reports the cost, the gradient's global norm, the learning rate it used and
whether everything was finite. A non-finite step leaves parameters and state untouched (the
select fuses into the update, so it costs no extra pass over memory); after the first one,
``failed`` freezes the run when fit stops on errors, so the carry ends as the last finite
parameters. The compiled functions are cached by loss, optimizer and layout so a second fit
call on data of the same shapes and dtypes reuses the compiled code.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_notes import packing
from jaxopt_notes._numerics import all_finite, global_norm
from jaxopt_notes.base import apply_updates
from jaxopt_notes.learning_rate import learning_rate_in_use

_CACHE_SIZE = 32
_HUGE_PAGE = 2 * 2**20
_cache: collections.OrderedDict = collections.OrderedDict()


def join_rows(X: Any, Y: Any) -> tuple[Any, tuple[tuple[int, ...], tuple[int, ...]]] | None:
    """X's and Y's rows side by side in one ``(m, x_columns + y_columns)`` array, plus the
    static ``(x_row_shape, y_row_shape)`` :func:`split_rows` needs; None when dtypes differ.

    Why: a shuffled minibatch is a gather of rows at random addresses, bound on a CPU by memory
    latency rather than arithmetic; one gather of 84-byte rows beat gathers of 80-byte X rows
    and 4-byte Y rows by 15-25% per epoch at m = 5,000,000 (benchmarks/fit_epoch.py). A NumPy
    result is allocated 2 MiB-aligned: NumPy asks the kernel for transparent huge pages on large
    arrays (fewer TLB misses per random row), and ``jax.device_put`` aliases an aligned host
    array on a CPU instead of copying it into 4 KiB pages. Dtypes are compared as JAX will hold
    them, so float64 labels next to float32 X join as float32 (without ``jax_enable_x64``).
    """
    dtype = jax.dtypes.canonicalize_dtype(X.dtype)
    if jax.dtypes.canonicalize_dtype(Y.dtype) != dtype:
        return None
    m = X.shape[0]
    x_columns = int(np.prod(X.shape[1:], dtype=np.int64))
    y_columns = int(np.prod(Y.shape[1:], dtype=np.int64))
    layout = (tuple(int(n) for n in X.shape[1:]), tuple(int(n) for n in Y.shape[1:]))
    if isinstance(X, jax.Array) or isinstance(Y, jax.Array):
        return jnp.concatenate([jnp.reshape(X, (m, x_columns)), jnp.reshape(Y, (m, y_columns))], axis=1), layout
    nbytes = m * (x_columns + y_columns) * dtype.itemsize
    raw = np.empty(nbytes + _HUGE_PAGE, np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    joined = raw[start : start + nbytes].view(dtype).reshape(m, x_columns + y_columns)
    joined[:, :x_columns] = np.reshape(X, (m, x_columns))
    joined[:, x_columns:] = np.reshape(Y, (m, y_columns))
    return joined, layout


def split_rows(rows: jax.Array, layout: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[jax.Array, jax.Array]:
    """Undoes :func:`join_rows` on a block of rows: ``(X rows, Y rows)`` in their own shapes."""
    x_row, y_row = layout
    x_columns = math.prod(x_row)
    return rows[:, :x_columns].reshape(-1, *x_row), rows[:, x_columns:].reshape(-1, *y_row)


def _select(take: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)


def _make_epoch(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    skip_nonfinite: bool,
    batch_sharding: jax.sharding.Sharding | None,
    packed: bool,
) -> Callable:
    def loss(params, x, y):
        if packed:
            params = packing.unpack(params)
        return loss_fn(params, x) if y is None else loss_fn(params, x, y)

    def constrain(batch):
        if batch_sharding is None:
            return batch
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, batch_sharding), batch)

    def step(carry, batch):
        params, state, failed = carry
        x, y = constrain(batch)
        cost, grads = jax.value_and_grad(loss)(params, x, y)
        finite = jnp.isfinite(cost) & all_finite(grads)
        updates, new_state = optimizer.update(grads, state, params)
        take = finite & ~failed
        params = _select(take, apply_updates(params, updates), params)
        state = _select(take, new_state, state)
        rate = learning_rate_in_use(new_state)
        rate = jnp.full([], jnp.nan, jnp.float32) if rate is None else jnp.asarray(rate, jnp.float32)
        if not skip_nonfinite:
            failed = failed | ~finite
        return (params, state, failed), (jnp.asarray(cost, jnp.float32), global_norm(grads), rate, finite)

    def run(params, state, failed, X, Y, order, rest, layout):
        """``order`` (steps, batch) and ``rest`` (remainder) index rows of X; if ``order`` is
        None the rows are already shuffled (a streamed chunk) and are cut in order. With
        ``layout`` (static) X holds X's and Y's rows side by side (see :func:`join_rows`)
        and Y is None: one gather per minibatch instead of two."""

        def rows(A, idx):
            # The indices are a permutation of range(m): in bounds and unique, so XLA may skip
            # the clamping a general gather needs.
            return A.at[idx].get(mode="promise_in_bounds", unique_indices=True)

        def take_rows(idx):
            if layout is not None:
                return split_rows(rows(X, idx), layout)
            return rows(X, idx), None if Y is None else rows(Y, idx)

        if order is None:
            steps = X.shape[0] // batch_size
            cut = steps * batch_size
            xs = (
                X[:cut].reshape(steps, batch_size, *X.shape[1:]),
                None if Y is None else Y[:cut].reshape(steps, batch_size, *Y.shape[1:]),
            )
            carry, outputs = jax.lax.scan(step, (params, state, failed), xs)
            remainder = None if cut == X.shape[0] else (X[cut:], None if Y is None else Y[cut:])
        else:
            carry, outputs = jax.lax.scan(lambda c, idx: step(c, take_rows(idx)), (params, state, failed), order)
            remainder = None if rest is None else take_rows(rest)
        if remainder is not None:
            carry, last = step(carry, remainder)
            outputs = jax.tree.map(lambda seq, one: jnp.concatenate([seq, one[None]]), outputs, last)
        return carry, outputs

    return jax.jit(run, donate_argnums=(0, 1), static_argnums=(7,))


def compiled_epoch(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    skip_nonfinite: bool,
    batch_sharding: jax.sharding.Sharding | None,
    packed: bool,
) -> Callable:
    """The jitted ``run(params, state, failed, X, Y, order, rest, layout) -> ((params, state,
    failed), (cost, grad_norm, learning_rate, finite))``, cached by identity of loss and optimizer."""
    key = (loss_fn, optimizer, batch_size, skip_nonfinite, batch_sharding, packed)
    try:
        hash(key)
    except TypeError:  # an unhashable optimizer: keyed by identity, kept alive by the cache entry
        key = (loss_fn, id(optimizer), batch_size, skip_nonfinite, batch_sharding, packed)
    if key not in _cache:
        _cache[key] = (
            _make_epoch(
                loss_fn,
                optimizer,
                batch_size=batch_size,
                skip_nonfinite=skip_nonfinite,
                batch_sharding=batch_sharding,
                packed=packed,
            ),
            optimizer,
        )
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return _cache[key][0]
