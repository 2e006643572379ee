"""When packing is worth it and when it is faithful: :func:`should_pack` decides from the
parameters' shape and the backend whether one buffer per dtype pays, and :func:`check_elementwise`
probes a transform for per-leaf arithmetic (a norm, a clip, a trust ratio), which packing would
silently change. :func:`~jaxopt_notes.fit` consults both before it packs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_notes import _checks
from jaxopt_notes._base import Params
from jaxopt_notes._packing import Packed, pack, unpack

_PROBE_SIDE = 256
"""A probe leaf keeps each side of its parameter up to this many elements: enough for the shape
rules of per-leaf transforms (adafactor factors a matrix from 128 x 128 on) to act as they will."""


def _probe_exponents(count: int, dtype: Any, reverse: bool) -> np.ndarray:
    """Powers of ten for ``count`` leaves sharing one buffer, from ``10**e`` down to ``10**-e``
    (reversed when ``reverse``), e as large as the dtype allows with room for squares and
    sums (9 in float32 and wider, 1 in float16). A per-leaf threshold t (a clip at an rms of t)
    anywhere in between lies between two leaves: the leaf above it is clipped alone when
    unpacked, the whole buffer when packed."""
    top = min(9, int(np.log10(float(jnp.finfo(dtype).max)) // 4))
    exponents = np.linspace(top, -top, count) if count > 1 else np.array([top], float)
    return exponents[::-1] if reverse else exponents


def _probe(params: Params, seed: int, *, reverse: bool = False) -> Params:
    """Stand-ins for ``params``: the same tree, dtypes and ranks, sides capped at
    :data:`_PROBE_SIDE`, normal noise scaled per leaf (:func:`_probe_exponents`), so that
    anything computed per leaf (a norm, a clip, a trust ratio) differs from the same thing
    over the buffer. Gradients are probed with ``reverse``: their largest leaf is the
    parameters' smallest, so ratios of the two (LARS, LAMB) differ from leaf to leaf too."""
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(params)
    dtypes = [jnp.result_type(leaf) for leaf in leaves]
    exponents = {dtype: iter(_probe_exponents(dtypes.count(dtype), dtype, reverse)) for dtype in dict.fromkeys(dtypes)}
    stand_ins = []
    for leaf, dtype in zip(leaves, dtypes, strict=True):
        shape = tuple(min(side, _PROBE_SIDE) for side in np.shape(leaf))
        noise = 10.0 ** next(exponents[dtype]) * rng.standard_normal(shape)
        stand_ins.append(jnp.asarray(noise).astype(dtype))
    return jax.tree.unflatten(treedef, stand_ins)


def _same_update(ours: Any, theirs: Any) -> bool:
    """Whether two updates of one leaf agree to the rounding of their dtype, relative to the
    leaf's own scale (a leaf of scale 1e-9 is compared as closely as one of scale 1e9)."""
    eps = float(jnp.finfo(jnp.result_type(ours)).eps)
    ours, theirs = (np.asarray(a) for a in (ours, theirs))
    ours, theirs = (a.astype(np.complex128 if np.iscomplexobj(a) else np.float64) for a in (ours, theirs))
    scale = max(np.max(np.abs(a[np.isfinite(a)]), initial=0.0) for a in (ours, theirs))
    tolerance = max(1e-4, 8 * eps)
    return bool(np.allclose(ours, theirs, rtol=tolerance, atol=tolerance * scale, equal_nan=True))


def check_elementwise(transform: optax.GradientTransformation, params: Params, *, steps: int = 2) -> None:
    """Refuses a transform that does not act element by element, before it meets a :class:`Packed`.

    A transform that reads a whole leaf (a per-leaf norm, clip or trust ratio, a factored
    second moment) would compute it over a whole packed buffer instead and silently change
    the training. This runs ``transform`` for ``steps`` updates on stand-ins for ``params``
    (same structure, dtypes and ranks, sides capped at 256, scales from ``1e9`` down to
    ``1e-9`` across the leaves of a buffer so any per-leaf threshold between falls between two
    leaves), once as a pytree and once packed, and raises if the two differ. It costs a few
    eager steps. Every transform of this library passes (and declares itself element-wise, so
    :func:`~jaxopt_notes.fit` skips the probe); so do optax's element-wise ones.

    Args:
      transform: the optimizer about to be run on packed parameters.
      params: the unpacked parameters (only their structure, shapes and dtypes are used).
      steps: how many updates to compare (the state must be exercised too).

    Raises:
      ValueError: naming the first leaf whose update depends on the packing.

    Example:
      >>> import optax, jax.numpy as jnp, jaxopt_notes as jn
      >>> jn.check_elementwise(jn.adam(1e-3), {"w": jnp.ones((4, 4))})  # passes
      >>> jn.check_elementwise(optax.clip_by_block_rms(1.0), {"a": jnp.ones(3), "b": jnp.ones(3)})
      Traceback (most recent call last):
      ValueError: ...
    """
    if isinstance(params, Packed):
        params = params.unpack()
    _checks.check_params("check_elementwise", params)
    probe = _probe(params, seed=0)
    packed_probe = pack(probe)
    tree_state = transform.init(probe)
    packed_state = transform.init(packed_probe)
    for step in range(1, steps + 1):
        grads = _probe(params, seed=step, reverse=True)
        tree_updates, tree_state = transform.update(grads, tree_state, probe)
        try:
            packed_updates, packed_state = transform.update(pack(grads), packed_state, packed_probe)
            packed_updates = unpack(packed_updates)
        except Exception as error:
            raise ValueError(
                "check_elementwise: the transform fails on packed parameters, so it is not element-wise "
                f"({type(error).__name__}: {error}); run it on the unpacked pytree instead"
            ) from error
        for (path, ours), theirs in zip(
            jax.tree_util.tree_flatten_with_path(tree_updates)[0], jax.tree.leaves(packed_updates)
        ):
            if not _same_update(ours, theirs):
                raise ValueError(
                    f"check_elementwise: the transform is not element-wise: at step {step} its update of "
                    f"params{_checks.path_str(path)} changes when the leaves are packed into one buffer (it "
                    "reads a whole leaf: a norm, clip, trust ratio or factored moment). Run it on the unpacked "
                    "pytree instead (do not pack)"
                )


_MIN_LEAVES = 16
_CPU_MAX_PARAMS = 2**18


def should_pack(params: Params, *, backend: str | None = None) -> bool:
    """Whether a train step on ``params`` runs faster packed, on ``backend``.

    A heuristic backed by ``benchmarks/optimizer_step.py`` and ``examples/packed_model.py``:

    - Fewer than 16 leaves: no; there is little per-leaf overhead to save.
    - GPU and TPU: yes. Every leaf is a kernel launch; on an H200, 1000 leaves took an optax
      train step 23 ms against 5 ms even for a naive packing.
    - CPU: only for small models (at most 2**18 parameters). The update itself always gains
      (one loop instead of one per leaf), but XLA:CPU copies every ``unpack`` slice out of
      the buffer before a dot and does so slowly, so at 10M parameters a packed train step
      took about twice as long as optax on the tree; at 1M it broke even, and a 33k-parameter
      16-leaf MLP ran 1.7x faster packed.

    Args:
      params: the unpacked parameters (a :class:`Packed` is already packed: ``True``).
      backend: ``"cpu"``, ``"gpu"`` or ``"tpu"``; ``None`` is ``jax.default_backend()``.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> jn.should_pack([jnp.ones((8, 8))] * 100, backend="gpu")
      True
    """
    backend = jax.default_backend() if backend is None else backend
    if backend not in ("cpu", "gpu", "cuda", "rocm", "tpu"):
        raise ValueError(
            f"should_pack: backend must be 'cpu', 'gpu' or 'tpu' (or None for the default), got {backend!r}"
        )
    if isinstance(params, Packed):
        return True
    leaves = jax.tree.leaves(params)
    if len(leaves) < _MIN_LEAVES:
        return False
    return backend != "cpu" or sum(int(np.size(leaf)) for leaf in leaves) <= _CPU_MAX_PARAMS
