"""The compiled pieces behind :func:`~jaxopt_notes.fit`: one ``lax.scan`` per epoch or chunk.

A step computes the minibatch cost and its gradient, asks the optimizer for the update and
applies it, and reports the cost, the gradient's global norm, the learning rate it used and
whether everything was finite. A non-finite step leaves parameters and state untouched (the
select fuses into the update, so it costs no extra pass over memory); after the first one,
``failed`` freezes the run when fit stops on errors, so the state ends as the last finite
one.

The compiled run is cached by loss, optimizer and the options the step depends on
(:meth:`~jaxopt_notes.training._options.FitOptions.compiled`), so a second fit call reuses it;
the optimizers of this library compare equal when built alike (:mod:`jaxopt_notes._recipe`),
so ``fit(..., jn.adam(1e-2), ...)`` called twice compiles once. Within it, ``jax.jit``
traces once per structure of state and chunk: the chunk's kind and static fields, whether the
run packs, has a model state or a key.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_notes import _packing
from jaxopt_notes._base import apply_updates
from jaxopt_notes._learning_rate import learning_rate_in_use
from jaxopt_notes._numerics import all_finite, global_norm
from jaxopt_notes.training._chunks import Chunk, CutMinibatches, ResidentEpoch, ShuffledRows
from jaxopt_notes.training._models import cost_and_state
from jaxopt_notes.training._placement import placement
from jaxopt_notes.training._rows import take_rows
from jaxopt_notes.training._state import TrainState

_CACHE_SIZE = 32
_cache: collections.OrderedDict = collections.OrderedDict()


class StepValues(NamedTuple):
    """What each step reports, one entry per step: the minibatch cost, the gradient's global
    norm, the learning rate in use (NaN when the optimizer records none) and whether cost,
    gradient and model state were all finite."""

    cost: Any
    grad_norm: Any
    learning_rate: Any
    finite: Any


def _select(take: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)


def _finite(model_state: Any) -> jax.Array:
    """Whether the floating-point leaves of a model state are finite (counters and random keys
    have nothing to check)."""
    leaves = jax.tree.leaves(model_state)
    return all_finite([leaf for leaf in leaves if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)])


def _make_epoch(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    on_nonfinite: str,
    mesh: jax.sharding.Mesh | None,
) -> Callable[[TrainState, Chunk], tuple[TrainState, StepValues]]:
    batch_sharding = placement(mesh).batch
    skip_nonfinite = on_nonfinite == "skip"

    def cost(params, model_state, key, x, y, *, packed):
        """``(cost, new model state)``: the loss gets the model state only when the run has one,
        ``key=`` only when it has a key. Its output is checked here, while the run is traced."""
        if packed:
            params = _packing.unpack(params)
        data = (x,) if y is None else (x, y)
        keyword = {} if key is None else {"key": key}
        with_state = model_state is not None
        arguments = (params, model_state, *data) if with_state else (params, *data)
        return cost_and_state(loss_fn(*arguments, **keyword), model_state, with_state=with_state)

    def constrain(batch):
        if batch_sharding is None:
            return batch
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, batch_sharding), batch)

    def step(state: TrainState, batch: tuple[Any, Any]) -> tuple[TrainState, StepValues]:
        x, y = constrain(batch)
        # A step's key depends only on the run's key and the step's place in the run, so a
        # resumed run draws the same keys as an uninterrupted one.
        key = None if state.key is None else jax.random.fold_in(state.key, state.step)
        gradient = jax.value_and_grad(functools.partial(cost, packed=state.packed), has_aux=True)
        (value, model_state), grads = gradient(state.params, state.model_state, key, x, y)
        finite = jnp.isfinite(value) & all_finite(grads) & _finite(model_state)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        take = finite & ~state.failed
        rate = learning_rate_in_use(opt_state)
        new = dataclasses.replace(
            state,
            params=_select(take, apply_updates(state.params, updates), state.params),
            opt_state=_select(take, opt_state, state.opt_state),
            model_state=_select(take, model_state, state.model_state),
            failed=state.failed if skip_nonfinite else state.failed | ~finite,
            step=state.step + 1,
        )
        rate = jnp.full([], jnp.nan, jnp.float32) if rate is None else jnp.asarray(rate, jnp.float32)
        return new, StepValues(jnp.asarray(value, jnp.float32), global_norm(grads), rate, finite)

    def scan_steps(state: TrainState, chunk: Chunk) -> tuple[TrainState, StepValues | None, Any]:
        """The full minibatches of ``chunk`` as one scan, and the rows of its last, smaller one."""
        if isinstance(chunk, ResidentEpoch):

            def rows(idx):
                return take_rows(chunk.buffers, chunk.layout, idx)

            state, outputs = jax.lax.scan(lambda s, idx: step(s, rows(idx)), state, chunk.order)
            return state, outputs, None if chunk.rest is None else rows(chunk.rest)
        if isinstance(chunk, ShuffledRows):
            x, y, size = chunk.x, chunk.y, chunk.batch_size
            steps = x.shape[0] // size
            cut = steps * size
            xs = (
                x[:cut].reshape(steps, size, *x.shape[1:]),
                None if y is None else y[:cut].reshape(steps, size, *y.shape[1:]),
            )
            state, outputs = jax.lax.scan(step, state, xs)
            return state, outputs, None if cut == x.shape[0] else (x[cut:], None if y is None else y[cut:])
        assert isinstance(chunk, CutMinibatches)
        if chunk.x is None:
            return state, None, chunk.rest
        state, outputs = jax.lax.scan(step, state, (chunk.x, chunk.y))
        return state, outputs, chunk.rest

    def run(state: TrainState, chunk: Chunk) -> tuple[TrainState, StepValues]:
        state, outputs, remainder = scan_steps(state, chunk)
        if remainder is None:
            assert outputs is not None
            return state, outputs
        state, last = step(state, remainder)
        if outputs is None:
            return state, jax.tree.map(lambda one: one[None], last)
        return state, jax.tree.map(lambda seq, one: jnp.concatenate([seq, one[None]]), outputs, last)

    return jax.jit(run, donate_argnums=(0,))


def compiled_epoch(
    loss_fn: Callable[..., Any], optimizer: optax.GradientTransformation, options: tuple[tuple[str, Any], ...]
) -> Callable[[TrainState, Chunk], tuple[TrainState, StepValues]]:
    """The jitted ``run(state, chunk) -> (state, StepValues)``: the steps of one chunk (see
    :mod:`~jaxopt_notes.training._chunks`), each value one entry per step. ``options`` are the
    ``(name, value)`` pairs of :meth:`~jaxopt_notes.training._options.FitOptions.compiled`,
    the builder's keyword arguments. Cached by loss, optimizer and options, compared by
    equality (by identity when one of them cannot be hashed)."""
    key: tuple = (loss_fn, optimizer, options)
    try:
        hash(key)
    except TypeError:  # keyed by identity, kept alive by the cache entry
        key = (id(loss_fn), id(optimizer), options)
    if key not in _cache:
        _cache[key] = (_make_epoch(loss_fn, optimizer, **dict(options)), loss_fn, optimizer)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return _cache[key][0]
