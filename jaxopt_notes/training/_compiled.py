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
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_notes import _packing
from jaxopt_notes._base import apply_updates
from jaxopt_notes._learning_rate import learning_rate_in_use
from jaxopt_notes._numerics import all_finite, global_norm
from jaxopt_notes.training._rows import take_rows

_CACHE_SIZE = 32
_cache: collections.OrderedDict = collections.OrderedDict()

PRE_CUT = "pre-cut"
"""The ``layout`` of data already cut into minibatches: X (and Y) shaped ``(steps, batch, ...)``,
None when there is no full minibatch, and ``rest`` the ``(X, Y)`` rows of a last, smaller one
(or None). A multi-process run (:mod:`.processes`) feeds its global minibatches this way."""


def _select(take: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)


class Carry(NamedTuple):
    """What one compiled step hands the next: ``params`` (packed when the run packs), the
    optimizer state, ``failed`` (set after the first non-finite step when fit stops on
    errors), the model state (None without one), the run's base ``key`` (None without one)
    and ``step``, the int32 count of steps taken in the run, resumed ones included."""

    params: Any
    opt_state: Any
    failed: jax.Array
    model_state: Any
    key: jax.Array | None
    step: jax.Array


def _make_epoch(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    skip_nonfinite: bool,
    batch_sharding: jax.sharding.Sharding | None,
    packed: bool,
    with_model_state: bool,
    with_key: bool,
) -> Callable:
    def loss(params, model_state, key, x, y):
        """``(cost, new model state)``; the loss gets ``key=`` only when the run has a key."""
        if packed:
            params = _packing.unpack(params)
        data = (x,) if y is None else (x, y)
        keyword = {"key": key} if with_key else {}
        if with_model_state:
            return loss_fn(params, model_state, *data, **keyword)
        return loss_fn(params, *data, **keyword), None

    def constrain(batch):
        if batch_sharding is None:
            return batch
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, batch_sharding), batch)

    def step(carry, batch):
        params, state, failed, model_state, base_key, count = carry
        x, y = constrain(batch)
        # A step's key depends only on the run's key and the step's place in the run, so a
        # resumed run draws the same keys as an uninterrupted one.
        key = None if base_key is None else jax.random.fold_in(base_key, count)
        (cost, new_model_state), grads = jax.value_and_grad(loss, has_aux=True)(params, model_state, key, x, y)
        finite = jnp.isfinite(cost) & all_finite(grads) & all_finite(new_model_state)
        updates, new_state = optimizer.update(grads, state, params)
        take = finite & ~failed
        params = _select(take, apply_updates(params, updates), params)
        state = _select(take, new_state, state)
        model_state = _select(take, new_model_state, model_state)
        rate = learning_rate_in_use(new_state)
        rate = jnp.full([], jnp.nan, jnp.float32) if rate is None else jnp.asarray(rate, jnp.float32)
        if not skip_nonfinite:
            failed = failed | ~finite
        carry = Carry(params, state, failed, model_state, base_key, count + 1)
        return carry, (jnp.asarray(cost, jnp.float32), global_norm(grads), rate, finite)

    def run(carry, X, Y, order, rest, layout):
        """``order`` (steps, batch) and ``rest`` (remainder) index rows; if ``order`` is None
        the rows are already shuffled (a streamed chunk) and are cut in order. ``layout``
        (static, a ``_rows.Layout`` or None for plain X and Y arrays) says where X's and Y's
        rows sit in the buffers X and Y (see ``_rows.place_rows``)."""

        def rows(idx):
            return take_rows((X, Y), layout, idx)

        if layout == PRE_CUT:
            carry, outputs = (carry, None) if X is None else jax.lax.scan(step, carry, (X, Y))
            remainder = rest
        elif order is None:
            steps = X.shape[0] // batch_size
            cut = steps * batch_size
            xs = (
                X[:cut].reshape(steps, batch_size, *X.shape[1:]),
                None if Y is None else Y[:cut].reshape(steps, batch_size, *Y.shape[1:]),
            )
            carry, outputs = jax.lax.scan(step, carry, xs)
            remainder = None if cut == X.shape[0] else (X[cut:], None if Y is None else Y[cut:])
        else:
            carry, outputs = jax.lax.scan(lambda c, idx: step(c, rows(idx)), carry, order)
            remainder = None if rest is None else rows(rest)
        if remainder is not None:
            carry, last = step(carry, remainder)
            if outputs is None:
                outputs = jax.tree.map(lambda one: one[None], last)
            else:
                outputs = jax.tree.map(lambda seq, one: jnp.concatenate([seq, one[None]]), outputs, last)
        return carry, outputs

    return jax.jit(run, donate_argnums=(0,), static_argnums=(5,))


def compiled_epoch(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    skip_nonfinite: bool,
    batch_sharding: jax.sharding.Sharding | None,
    packed: bool,
    with_model_state: bool = False,
    with_key: bool = False,
) -> Callable:
    """The jitted ``run(carry, X, Y, order, rest, layout) -> (carry, (cost, grad_norm,
    learning_rate, finite))`` over a :class:`Carry`, cached by identity of loss and optimizer.
    With ``with_model_state`` the loss is ``loss_fn(params, model_state, x, y) -> (cost,
    new_model_state)``; with ``with_key`` it also gets ``key=`` each step's key."""
    options: dict[str, Any] = dict(
        batch_size=batch_size,
        skip_nonfinite=skip_nonfinite,
        batch_sharding=batch_sharding,
        packed=packed,
        with_model_state=with_model_state,
        with_key=with_key,
    )
    key = (loss_fn, optimizer, *options.values())
    try:
        hash(key)
    except TypeError:  # an unhashable optimizer: keyed by identity, kept alive by the cache entry
        key = (loss_fn, id(optimizer), *options.values())
    if key not in _cache:
        _cache[key] = (_make_epoch(loss_fn, optimizer, **options), optimizer)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return _cache[key][0]
