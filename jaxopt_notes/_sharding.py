"""Optimizer state placed like the parameters it belongs to.

When the parameters are sharded over a mesh (data parallel, model parallel, FSDP-style
``P('x')`` on large leaves), each moment should live where its parameter lives: a replicated
or single-device copy of a sharded parameter's moments costs the memory sharding was meant to
save. Every transform of this library already does this: its zeros are made from the
parameters, so ``jax.jit(opt.init)(params)`` gives each moment its parameter's sharding, and
element-wise updates keep it there. Foreign transforms (optax's) build their zeros as
constants, which ``jit`` puts on one device; :func:`init_sharded` places any optimizer's state
explicitly, and :func:`state_shardings` gives the placement itself, for ``out_shardings`` or
for restoring a checkpoint.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from jaxopt_notes import _checks
from jaxopt_notes._base import Params, State


def _param_shardings(params: Params) -> tuple[list[jax.sharding.Sharding], jax.sharding.Sharding]:
    """Each leaf's sharding, and the sharding that replicates a value over the same devices."""
    shardings = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if not isinstance(leaf, jax.Array):
            raise TypeError(
                f"params{_checks.path_str(path)} must be a jax.Array placed on its devices (e.g. by "
                f"jax.device_put(leaf, NamedSharding(mesh, spec))), got {type(leaf).__name__}"
            )
        shardings.append(leaf.sharding)
    if not shardings:
        raise ValueError("params must hold at least one array leaf, got an empty pytree")
    meshes = {sharding.mesh for sharding in shardings if isinstance(sharding, jax.sharding.NamedSharding)}
    if len(meshes) > 1:
        raise ValueError(f"params must all be placed over one mesh, got {len(meshes)} different meshes")
    if meshes:
        replicated: jax.sharding.Sharding = jax.sharding.NamedSharding(meshes.pop(), jax.sharding.PartitionSpec())
    elif len({frozenset(sharding.device_set) for sharding in shardings}) == 1 and shardings[0].is_fully_replicated:
        replicated = shardings[0]
    else:
        raise ValueError(
            "params must be placed with NamedSharding over one mesh, or all on the same device(s) fully "
            f"replicated; got {sorted({type(sharding).__name__ for sharding in shardings})}"
        )
    return shardings, replicated


def state_shardings(optimizer: optax.GradientTransformation, params: Params) -> State:
    """The sharding of every leaf of ``optimizer.init(params)``, without running it.

    Every part of the state with the parameters' tree structure and leaf shapes (a moment,
    whatever its dtype) gets the parameters' shardings leaf by leaf; every other leaf (step
    counts, learning rates, flags) is replicated over the parameters' mesh.

    Args:
      optimizer: any gradient transformation (this library's or optax's).
      params: the parameters, as placed ``jax.Array`` leaves.

    Returns:
      a pytree of ``jax.sharding.Sharding`` with the state's structure.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> params = {"w": jnp.ones(3)}
      >>> shardings = jn.state_shardings(jn.adam(1e-3), params)
      >>> shardings[0].mu["w"] == params["w"].sharding
      True
    """
    _checks.check_transformation("optimizer", optimizer)
    leaf_shardings, replicated = _param_shardings(params)
    treedef: Any = jax.tree.structure(params)
    shapes = [leaf.shape for leaf in jax.tree.leaves(params)]
    like_params = jax.tree.unflatten(treedef, leaf_shardings)

    def mirrors_params(node: Any) -> bool:
        same_tree = treedef == jax.tree.structure(node)
        return same_tree and [getattr(leaf, "shape", None) for leaf in jax.tree.leaves(node)] == shapes

    abstract_state = jax.eval_shape(optimizer.init, params)
    return jax.tree.map(
        lambda node: like_params if mirrors_params(node) else replicated,
        abstract_state,
        is_leaf=mirrors_params,
    )


def init_sharded(optimizer: optax.GradientTransformation, params: Params) -> State:
    """``optimizer.init(params)`` under ``jax.jit``, each state leaf placed by
    :func:`state_shardings`: moments like their parameters, the rest replicated.

    Works for any optimizer, optax's included, and in a multi-process run (every process calls
    it with the same global ``params``), where it returns global arrays.

    Example:
      >>> import optax, jax.numpy as jnp, jaxopt_notes as jn
      >>> state = jn.init_sharded(optax.adam(1e-3), {"w": jnp.ones(3)})
      >>> state[0].mu["w"].shape
      (3,)
    """
    return jax.jit(optimizer.init, out_shardings=state_shardings(optimizer, params))(params)
