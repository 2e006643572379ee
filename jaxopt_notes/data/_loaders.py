"""Batches from any loader, stacked into chunks and prefetched to the device.

A data source is a callable ``epoch -> iterable of batches``: a grain ``DataLoader`` or
``MapDataset`` pipeline, a PyTorch ``DataLoader`` yielding NumPy arrays, ``tf.data`` through
``as_numpy_iterator``, or a plain generator. Each batch is ``(x, y)`` or ``x`` (arrays or
pytrees of arrays, NumPy or JAX). :func:`batch_chunks` stacks up to ``chunk_steps``
consecutive batches of one shape along a new leading axis into a chunk ``(steps, batch, ...)``,
so a compiled ``lax.scan`` takes a whole chunk per call and each device can hold its own slice
of every minibatch; a batch of another shape (the last one, say) starts a chunk of its own.
A background thread builds and places the chunks while the device trains on the previous
one; closing the returned iterator (a ``with`` block, a ``break``, an exception) stops the
thread and closes the loader's iterator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes.data._prefetch import Prefetcher


def _split(batch: Any, index: int) -> tuple[Any, Any]:
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    if hasattr(batch, "shape"):
        return batch, None
    raise TypeError(
        f"X: the data source's batch {index} must be (x, y) or an array x, got {type(batch).__name__} {batch!r:.200}"
    )


def _signature(x: Any, y: Any, index: int) -> tuple:
    leaves = jax.tree.leaves((x, y))
    rows = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(rows) != 1 or None in rows:
        raise ValueError(
            f"X: the data source's batch {index} must hold the same number of rows in every array (axis 0), "
            f"got shapes {[np.shape(leaf) for leaf in leaves]}"
        )
    return jax.tree.structure((x, y)), tuple(
        (np.shape(a), getattr(a, "dtype", None) or np.result_type(a)) for a in leaves
    )


def _join(batches: list[tuple[Any, Any]]) -> tuple[Any, Any, int]:
    def join(*leaves):
        if any(isinstance(leaf, jax.Array) for leaf in leaves):
            return jnp.stack(leaves)
        return np.stack(leaves)

    x, y = jax.tree.map(join, *batches)
    return x, y, int(np.shape(jax.tree.leaves(batches[0])[0])[0])


def _chunks(batches: Iterable[Any], chunk_steps: int) -> Iterator[tuple[Any, Any, int]]:
    iterator = iter(batches)
    try:
        pending: list[tuple[Any, Any]] = []
        kind, shapes = None, None
        for index, batch in enumerate(iterator):
            x, y = _split(batch, index)
            signature = _signature(x, y, index)
            if kind is not None and (y is None) != kind:
                raise TypeError(f"X: the data source's batch {index} mixes (x, y) batches with x-only batches")
            if pending and (signature != shapes or len(pending) == chunk_steps):
                yield _join(pending)
                pending = []
            kind, shapes = y is None, signature
            pending.append((x, y))
        if pending:
            yield _join(pending)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def batch_chunks(
    source: Callable[[int], Iterable[Any]],
    epoch: int,
    *,
    chunk_steps: int,
    sharding: jax.sharding.Sharding | None = None,
    size: int = 2,
) -> Prefetcher:
    """One epoch of ``source`` as chunks ``(x, y, batch_size)``, ``x`` and ``y`` already on the device.

    A chunk is up to ``chunk_steps`` consecutive batches of ``batch_size`` rows and equal
    shapes and dtypes, stacked as ``(steps, batch_size, ...)`` (``y`` is None for x-only
    batches); the next
    chunks are gathered and placed by a background thread. Use it as a context manager, or
    close it, to stop the thread and close the loader's iterator (a generator's ``finally``
    runs, a grain iterator's ``close()`` is called).

    Args:
      source: ``source(epoch) -> iterable of batches``, each ``(x, y)`` or ``x``.
      epoch: passed to ``source`` (0-based), so a loader can reshuffle per epoch.
      chunk_steps: batches per chunk, an int >= 1.
      sharding: where to place each chunk; default the default device. A ``NamedSharding``
        whose spec splits the batch axis (``P(None, "data")``) gives each device its slice of
        every minibatch; a batch whose size the mesh axis does not divide (a last, smaller
        one) is replicated over the mesh instead.
      size: chunks placed ahead of the consumer.

    Example:
      >>> import numpy as np
      >>> def source(epoch):
      ...     for start in range(0, 10, 4):
      ...         yield np.arange(start, min(start + 4, 10.0)), np.ones(min(4, 10 - start))
      >>> with batch_chunks(source, 0, chunk_steps=8) as chunks:
      ...     print([(x.shape, batch_size) for x, y, batch_size in chunks])
      [((2, 4), 4), ((1, 2), 2)]
    """
    if not callable(source):
        raise TypeError(f"X: a data source must be callable as source(epoch) -> iterable of batches, got {source!r}")
    _checks.check_int("chunk_steps", chunk_steps, minimum=1)
    if sharding is not None and not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError(f"sharding must be a jax.sharding.Sharding, got {sharding!r}")
    batches = source(epoch)
    if not isinstance(batches, Iterable):
        raise TypeError(f"X: source({epoch}) must return an iterable of batches, got {type(batches).__name__}")

    def place(chunk: tuple[Any, Any, int]) -> tuple[Any, Any, int]:
        x, y, batch_size = chunk
        return (*jax.device_put((x, y), _fitting(sharding, batch_size)), batch_size)

    return Prefetcher(_chunks(batches, int(chunk_steps)), size=size, place=place)


def _fitting(sharding: jax.sharding.Sharding | None, batch_size: int) -> jax.sharding.Sharding | None:
    """``sharding``, or the same mesh replicated when its spec splits a batch of ``batch_size``
    rows (axis 1 of a chunk) over more devices than divide it."""
    if not isinstance(sharding, jax.sharding.NamedSharding) or len(sharding.spec) < 2 or sharding.spec[1] is None:
        return sharding
    axes = sharding.spec[1] if isinstance(sharding.spec[1], tuple) else (sharding.spec[1],)
    devices = int(np.prod([sharding.mesh.shape[axis] for axis in axes]))
    if batch_size % devices == 0:
        return sharding
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
