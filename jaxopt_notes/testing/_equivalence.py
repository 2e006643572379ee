"""``assert_equivalent``: drive two gradient transformations with the same gradients and
report the first step and pytree path where they part."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_notes import _checks
from jaxopt_notes._base import Params, apply_updates
from jaxopt_notes.testing import _replay


class NotEquivalentError(AssertionError):
    """Raised by :func:`assert_equivalent`; the message names the step and the path."""


def _normal(key: jax.Array, leaf: Any, scale: float) -> jax.Array:
    dtype = jnp.result_type(leaf)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        real, imaginary = jax.random.normal(key, (2, *jnp.shape(leaf)), jnp.float32)
        return (scale * (real + 1j * imaginary)).astype(dtype)
    return (scale * jax.random.normal(key, jnp.shape(leaf), jnp.float32)).astype(dtype)


def random_gradients(key: jax.Array, params: Params, scale: float = 1.0) -> Params:
    """Standard-normal gradients times ``scale``, one per leaf, in each leaf's dtype (complex
    leaves get independent normal real and imaginary parts)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree.unflatten(treedef, [_normal(k, leaf, scale) for k, leaf in zip(keys, leaves)])


def _compare(what: str, step: int, ours: Any, reference: Any, rtol: float, atol: float) -> float:
    """Largest absolute difference; raises at the first leaf that differs."""
    ours_leaves, ours_def = jax.tree_util.tree_flatten_with_path(ours)
    ref_leaves, ref_def = jax.tree_util.tree_flatten_with_path(reference)
    if not _checks.same_structure(ours_def, ref_def):
        raise NotEquivalentError(f"step {step}: {what} pytrees differ: {ours_def} vs {ref_def}")
    largest = 0.0
    for (path, a), (_, b) in zip(ours_leaves, ref_leaves):
        where = f"step {step}: {what}{jax.tree_util.keystr(path)}"
        a_dtype, b_dtype = jnp.result_type(a), jnp.result_type(b)
        if a_dtype != b_dtype:
            raise NotEquivalentError(f"{where}: dtype {a_dtype} vs reference {b_dtype}")
        if np.shape(a) != np.shape(b):
            raise NotEquivalentError(f"{where}: shape {np.shape(a)} vs reference {np.shape(b)}")
        wide = np.complex128 if jnp.issubdtype(a_dtype, jnp.complexfloating) else np.float64
        a64 = np.asarray(a, dtype=wide)
        b64 = np.asarray(b, dtype=wide)
        if not np.allclose(a64, b64, rtol=rtol, atol=atol, equal_nan=False):
            excess = np.abs(a64 - b64) - (atol + rtol * np.abs(b64))
            excess = np.where(np.isnan(excess), np.inf, excess)
            index = tuple(int(i) for i in np.unravel_index(np.argmax(excess), a64.shape)) if a64.size else ()
            raise NotEquivalentError(
                f"{where}: values differ beyond rtol={rtol}, atol={atol}; worst at index {index}: "
                f"{a64[index].item()!r} vs reference {b64[index].item()!r}"
            )
        if a64.size:
            largest = max(largest, float(np.max(np.abs(a64 - b64))))
    return largest


def assert_equivalent(
    transform: optax.GradientTransformation,
    reference: Any,
    *,
    params: Params,
    steps: int = 20,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    jit: bool = True,
    seed: int = 0,
    grad_scale: float = 1.0,
    extra_args: dict[str, Any] | None = None,
) -> float:
    """Checks that ``transform`` and ``reference`` give the same updates and parameters.

    Both start from ``params`` and receive the same random normal gradients (times
    ``grad_scale``) for ``steps`` steps; each applies its own updates (``reference``'s through
    ``optax.apply_updates``). At every step the updates and the parameters must match in
    pytree structure, shape, dtype and value (``numpy.allclose(ours, ref, rtol, atol)``).

    The reference may also be another framework's optimizer, for proving a port: a Keras 3
    optimizer (fresh, e.g. ``keras.optimizers.AdamW(1e-3)``) or a PyTorch optimizer factory
    (``lambda params: torch.optim.AdamW(params, lr=1e-3)``). It steps its own copies of the
    parameters (Keras variables, torch tensors) on the same gradients, and the parameters
    after every step must match ours (such optimizers expose no separate updates). torch and
    keras are imported only for such a reference.

    Args:
      transform: the transformation under test; ``jax.jit``-compiled when ``jit`` is true.
      reference: any object with ``init`` and ``update`` (optax, or a NumPy loop wrapped as a
        transformation), a Keras optimizer or a PyTorch optimizer factory; always run as given,
        uncompiled.
      params: the starting parameters (a pytree of floating-point arrays, real or complex;
        ``None`` allowed).
      extra_args: keyword arguments passed to both ``update`` calls (``value=...``).

    Returns:
      The largest absolute difference seen, for reporting.

    Raises:
      NotEquivalentError: naming the first step and pytree path that differ.

    Example:
      >>> import optax, jax.numpy as jnp, jaxopt_notes as jn
      >>> from jaxopt_notes.testing import assert_equivalent
      >>> worst = assert_equivalent(jn.adam(1e-3), optax.adam(1e-3), params={"w": jnp.ones(4)})
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not _replay.is_transformation(reference):
        return _assert_replays(transform, reference, params, steps, rtol, atol, jit, seed, grad_scale, extra_args)
    update = jax.jit(transform.update) if jit else transform.update
    ours_state = transform.init(params)
    ref_state = reference.init(params)
    ours_params = ref_params = params
    key = jax.random.key(seed)
    largest = 0.0
    for step in range(1, steps + 1):
        key, subkey = jax.random.split(key)
        grads = random_gradients(subkey, params, grad_scale)
        ours_updates, ours_state = update(grads, ours_state, ours_params, **(extra_args or {}))
        ref_updates, ref_state = reference.update(grads, ref_state, ref_params, **(extra_args or {}))
        largest = max(largest, _compare("updates", step, ours_updates, ref_updates, rtol, atol))
        ours_params = apply_updates(ours_params, ours_updates)
        ref_params = optax.apply_updates(ref_params, ref_updates)
        largest = max(largest, _compare("params", step, ours_params, ref_params, rtol, atol))
    return largest


def _assert_replays(
    transform: optax.GradientTransformation,
    reference: Any,
    params: Params,
    steps: int,
    rtol: float,
    atol: float,
    jit: bool,
    seed: int,
    grad_scale: float,
    extra_args: dict[str, Any] | None,
) -> float:
    """:func:`assert_equivalent` against another framework's optimizer: the parameters after
    every step are compared, the framework's taken back into our pytree."""
    leaves, treedef = jax.tree.flatten(params)
    replay = _replay.replay_for(reference, [np.asarray(leaf) for leaf in leaves])
    update = jax.jit(transform.update) if jit else transform.update
    ours_state = transform.init(params)
    ours_params = params
    key = jax.random.key(seed)
    largest = 0.0
    for step in range(1, steps + 1):
        key, subkey = jax.random.split(key)
        grads = random_gradients(subkey, params, grad_scale)
        ours_updates, ours_state = update(grads, ours_state, ours_params, **(extra_args or {}))
        ours_params = apply_updates(ours_params, ours_updates)
        ref_params = jax.tree.unflatten(treedef, replay.step([np.asarray(g) for g in jax.tree.leaves(grads)]))
        largest = max(largest, _compare("params", step, ours_params, ref_params, rtol, atol))
    return largest
