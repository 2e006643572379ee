"""Where a fit run's arrays live: without a mesh on the default device; with one, parameters,
optimizer state and data replicated on its devices and each minibatch sharded along the
mesh's first axis (data parallel)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


def copy_tree(tree: Any) -> Any:
    """A copy of every leaf: fit donates its state, so it never holds the caller's buffers."""
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


@dataclasses.dataclass(frozen=True)
class Placement:
    """``replicated``: the sharding of state and resident data (None: the default device);
    ``batch``: the sharding constraint on each minibatch inside the compiled step (None: none);
    ``chunks``: the sharding of minibatches stacked as ``(steps, batch, ...)``, each device
    holding its slice of every minibatch (None: the default device)."""

    replicated: jax.sharding.Sharding | None = None
    batch: jax.sharding.Sharding | None = None
    chunks: jax.sharding.Sharding | None = None

    def put_state(self, tree: Any) -> Any:
        """A fresh copy of ``tree`` (parameters or optimizer state) placed for the run."""
        tree = copy_tree(tree)
        return tree if self.replicated is None else jax.device_put(tree, self.replicated)


def placement(mesh: jax.sharding.Mesh | None) -> Placement:
    """The placement of a run on ``mesh`` (None: one device)."""
    if mesh is None:
        return Placement()
    return Placement(
        replicated=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
        batch=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0])),
        chunks=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, mesh.axis_names[0])),
    )
