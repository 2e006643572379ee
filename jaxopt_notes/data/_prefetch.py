"""Prefetching batches onto a device while the current one trains.

A background thread pulls the next items from the source (reading a memory-mapped file,
gathering rows: NumPy releases the GIL for both) and places them with ``jax.device_put``,
so host reads and transfers overlap the training step. The queue is bounded, so at most
``size`` placed batches wait at any time, plus the one the thread is preparing.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import jax

from jaxopt_notes import _checks

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _produce(source: Iterator[Any], place: Any, slots: queue.Queue, stop: threading.Event) -> None:
    # Holds no reference to the consumer's iterator, so dropping that iterator closes it.
    try:
        for item in source:
            if stop.is_set():
                return
            placed = jax.block_until_ready(place(item))
            slots.put(placed)
            if stop.is_set():
                return
        slots.put(_END)
    except BaseException as error:  # handed to the consumer, which re-raises it in order
        if not stop.is_set():
            slots.put(_Failure(error))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _shut_down(slots: queue.Queue, stop: threading.Event, thread: threading.Thread) -> None:
    """Stops the producer thread and waits for it; the thread closes the source as it ends."""
    stop.set()
    # Free the slot a blocked ``put`` waits for; the thread then sees ``stop`` and ends.
    while True:
        try:
            slots.get_nowait()
        except queue.Empty:
            break
    if thread is not threading.current_thread():
        thread.join()


class Prefetcher(Iterator[Any]):
    """Iterator returned by :func:`prefetch_to_device`; also a context manager.

    ``close()`` (called on ``with`` exit, on exhaustion, when the iterator is garbage
    collected, e.g. when a ``for`` loop over it breaks or raises, and at interpreter exit)
    stops the thread, closes the source iterator and waits for the thread to end.
    """

    def __init__(self, iterable: Iterable[Any], *, size: int, place: Any) -> None:
        source = iter(iterable)
        self._slots: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        thread = threading.Thread(
            target=_produce,
            args=(source, place, self._slots, self._stop),
            name="prefetch_to_device",
            daemon=True,
        )
        thread.start()
        # A finalizer, not ``__del__``: it runs when the iterator is collected and also at
        # interpreter exit before modules are torn down (a ``__del__`` run during teardown
        # finds ``queue.Empty`` already gone).
        self._close = weakref.finalize(self, _shut_down, self._slots, self._stop, thread)

    def __next__(self) -> Any:
        if self._stop.is_set():
            raise StopIteration
        item = self._slots.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stops the background thread and waits for it (idempotent)."""
        self._close()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def prefetch_to_device(
    iterable: Iterable[Any],
    *,
    size: int = 2,
    device: jax.Device | None = None,
    sharding: jax.sharding.Sharding | None = None,
) -> Prefetcher:
    """Yields the items of ``iterable`` (pytrees of arrays) already placed on a device.

    A background thread runs ``jax.device_put(item, device or sharding)`` ahead of the
    consumer, keeping at most ``size`` placed items in a bounded queue (default 2, as in
    flax's ``prefetch_to_device``: one in use, one ready). With a
    ``NamedSharding(mesh, PartitionSpec("data"))`` each device receives its slice of every
    batch along axis 0, so batch sizes must divide evenly (``drop_remainder=True`` in
    :func:`~jaxopt_notes.data.minibatches`). An exception in the source is re-raised by the
    consumer at the position where it happened.

    Args:
      iterable: e.g. ``minibatches(X, Y, batch_size=...)``.
      size: the queue length, an int >= 1.
      device: a ``jax.Device`` (default: JAX's default device).
      sharding: a ``jax.sharding.Sharding`` to shard every leaf; not with ``device``.

    Example:
      >>> import numpy as np
      >>> from jaxopt_notes.data import minibatches
      >>> X = np.arange(12.0).reshape(6, 2)
      >>> with prefetch_to_device(minibatches(X, batch_size=4, shuffle=False)) as batches:
      ...     print([b.shape for b in batches])
      [(4, 2), (2, 2)]
    """
    if not isinstance(iterable, Iterable):
        raise TypeError(f"iterable must be an iterable of batches, e.g. minibatches(X, Y, ...), got {iterable!r}")
    _checks.check_int("size", size, minimum=1)
    if device is not None and sharding is not None:
        raise ValueError("pass either device or sharding, not both")
    if sharding is not None and not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError(f"sharding must be a jax.sharding.Sharding, got {sharding!r}")
    if device is not None and not isinstance(device, jax.Device):
        raise TypeError(f"device must be a jax.Device, got {device!r}")
    target = sharding if sharding is not None else device

    def place(item: Any) -> Any:
        try:
            return jax.device_put(item, target)
        except ValueError as error:
            if sharding is None:
                raise
            shapes = [getattr(leaf, "shape", None) for leaf in jax.tree.leaves(item)]
            raise ValueError(
                f"cannot shard a batch with leaf shapes {shapes} over {sharding}: the batch axis must "
                "divide evenly over the devices; use a batch_size divisible by the number of shards "
                f"and drop_remainder=True ({error})"
            ) from error

    return Prefetcher(iterable, size=size, place=place)
