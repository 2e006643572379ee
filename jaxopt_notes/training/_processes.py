"""fit across processes: one JAX process per host, a mesh over every process's devices.

In a multi-process run (``jax.process_count() > 1``, after ``jax.distributed.initialize()``)
each process passes fit *its own rows* of X and Y, the same number on every process, and the
global ``batch_size``. Every global minibatch takes ``batch_size / process_count`` rows from
each process: each process shuffles its rows with its own seed, ``SeedSequence([seed, epoch,
process_index])``, cuts them into slices of that size, and
``jax.make_array_from_process_local_data`` joins the slices of all processes into one global
array, cut into minibatches along its first axis and sharded along the mesh's first axis, so
no row ever leaves the host that holds it. The rows stream through the devices in chunks of
``chunk_steps`` minibatches (all of an epoch's when unset), memory-mapped rows included; the
last, smaller minibatch (unless ``drop_remainder``) is gathered from every process's leftover
rows. Costs, gradients, parameters and optimizer state are global arrays, the same on every
process. This module holds the checks and the process-0-only writes; the minibatches are
:class:`~jaxopt_notes.training._process_source.ProcessShardSource`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def multi_process() -> bool:
    """Whether this is one of several JAX processes (``jax.distributed.initialize`` was called)."""
    return jax.process_count() > 1


def check_process_rows(local_rows: int, batch_size: int, mesh: Any, checkpoint_dir: Any) -> int:
    """The global number of rows, after checking that every process holds ``local_rows`` rows,
    that each minibatch splits evenly over processes and the mesh's first axis, and that all
    processes or none pass a ``checkpoint_dir`` (process 0 writes, all of them resume)."""
    processes = jax.process_count()
    if not isinstance(mesh, jax.sharding.Mesh):
        raise ValueError(
            f"fit: this is a multi-process run ({processes} processes): pass mesh=, a jax.sharding.Mesh "
            "over every process's devices (e.g. jax.sharding.Mesh(np.array(jax.devices()), ('data',)))"
        )
    spanned = {device.process_index for device in mesh.devices.flat}
    if spanned != set(range(processes)):
        raise ValueError(
            f"fit: mesh must span the devices of all {processes} processes, it spans processes {sorted(spanned)}"
        )
    mine = np.array([local_rows, checkpoint_dir is not None], np.int64)
    counts, with_dir = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2).T
    if with_dir.min() != with_dir.max():
        raise ValueError(
            "fit: pass checkpoint_dir on every process or on none (the same directory, shared: process 0 "
            f"writes it and every process resumes from it); got one on processes {np.flatnonzero(with_dir).tolist()}"
        )
    if len(set(counts.tolist())) != 1:
        raise ValueError(
            "fit: every process must pass the same number of rows of X and Y; got "
            + ", ".join(f"{int(n)} on process {p}" for p, n in enumerate(counts))
        )
    total = local_rows * processes
    shards = mesh.shape[mesh.axis_names[0]]
    if min(batch_size, total) % processes or min(batch_size, total) % shards:
        raise ValueError(
            f"fit: in a multi-process run batch_size must be a multiple of the process count ({processes}) and "
            f"of the mesh's first axis ({mesh.axis_names[0]!r}, {shards} devices), got {batch_size}: each "
            "process contributes batch_size / process_count of its rows to every minibatch"
        )
    return total


def write_once(write: Callable[[], None], name: str) -> None:
    """Runs ``write`` on process 0 only (checkpoints: one writer for a shared directory); in a
    multi-process run every process then waits until it is done, so none goes on (or returns
    and resumes) before the file exists."""
    if jax.process_index() == 0:
        write()
    if multi_process():
        multihost_utils.sync_global_devices(name)
