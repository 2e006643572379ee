"""Where each epoch's minibatches come from: an epoch source.

A source is used as a context manager; ``source.epoch(e)`` yields, for epoch e (0-based), one
``(batch_size, arguments)`` per call of the compiled ``run``: the minibatch size that call
cuts its rows into, and the arguments that follow the carry (``X, Y, order, rest, layout``,
see :func:`~jaxopt_notes.training._compiled.compiled_epoch`). Three variants:

- :class:`ResidentSource`: the data sit on the device for the whole run; each epoch is one
  call with a host-drawn permutation, cut into ``order`` (steps, batch) and ``rest``.
- :class:`StreamedSource`: the data (e.g. memory-mapped) stream in shuffled chunks of
  ``chunk_steps`` minibatches, one call per chunk, the next chunk copied to the device by a
  background thread while the current one trains.
- :class:`LoaderSource`: X is a callable ``epoch -> iterable of batches`` (a grain, PyTorch
  or tf.data loader, a generator); consecutive batches of one shape are joined into chunks
  of ``chunk_steps`` by :func:`~jaxopt_notes.data._loaders.batch_chunks` on a background
  thread, one call per chunk; a batch of another shape is a chunk of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

from jaxopt_notes.data._batches import minibatches
from jaxopt_notes.data._loaders import batch_chunks
from jaxopt_notes.data._prefetch import prefetch_to_device
from jaxopt_notes.data._shuffle import EpochOrders, epoch_seed
from jaxopt_notes.training import _processes
from jaxopt_notes.training._compiled import PRE_CUT
from jaxopt_notes.training._config import FitConfig
from jaxopt_notes.training._placement import Placement
from jaxopt_notes.training._process_source import ProcessShardSource
from jaxopt_notes.training._rows import place_rows

RunArguments = tuple[Any, Any, Any, Any, Any]
"""``(X, Y, order, rest, layout)``: what follows the carry in a call of the compiled run."""

Piece = tuple[int, RunArguments]
"""``(batch_size, arguments)``: one call of the compiled run for that minibatch size."""

LOADER_CHUNK_STEPS = 64
"""Batches from a loader are joined into chunks of this many, unless ``chunk_steps`` says otherwise."""


class EpochSource(Protocol):
    def epoch(self, epoch: int) -> Generator[Piece, None, None]: ...

    def __enter__(self) -> EpochSource: ...

    def __exit__(self, *exc_info: object) -> None: ...


class ResidentSource:
    """The whole data set on the device, read in place from the caller's arrays where XLA can
    (``_rows.place_rows``: no copy of NumPy data of a dtype JAX holds, with contiguous rows);
    each epoch is one call over a host-drawn permutation (:class:`~jaxopt_notes.data._shuffle.EpochOrders`), the
    first one drawn while the data are placed."""

    def __init__(self, X: Any, Y: Any, config: FitConfig, place: Placement, start_epoch: int):
        epochs = range(start_epoch, config.epochs)
        m, batch_size = config.examples, config.batch_size
        self._orders = EpochOrders(m, batch_size, config.seed, epochs, config.drop_remainder, shuffle=batch_size < m)
        self.X, self.Y, self.layout = place_rows(X, Y, place.replicated)
        self.batch_size = batch_size

    def epoch(self, epoch: int) -> Generator[Piece, None, None]:
        for order, rest in self._orders.pieces(epoch):  # the first while the rest is still being drawn
            yield self.batch_size, (self.X, self.Y, order, rest, self.layout)

    def __enter__(self) -> ResidentSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._orders.close()


class StreamedSource:
    """The data stay on the host (e.g. memory-mapped) and stream through the device in shuffled
    chunks of ``config.chunk_steps`` minibatches (see :mod:`jaxopt_notes.data` for how a memmap
    is shuffled), prefetched to the device by a background thread."""

    def __init__(self, X: Any, Y: Any, config: FitConfig, place: Placement, chunk_steps: int):
        self.X, self.Y, self.config, self.place = X, Y, config, place
        self.chunk_rows = chunk_steps * config.batch_size

    def _cut(self, chunk: Any) -> tuple[Any, Any]:
        x, y = chunk if self.Y is not None else (chunk, None)
        keep = len(x) - len(x) % self.config.batch_size if self.config.drop_remainder else len(x)
        return x[:keep], None if y is None else y[:keep]

    def epoch(self, epoch: int) -> Generator[Piece, None, None]:
        seed = int(epoch_seed(self.config.seed, epoch).generate_state(1)[0])
        chunks = minibatches(self.X, self.Y, batch_size=self.chunk_rows, seed=seed)
        with prefetch_to_device((self._cut(c) for c in chunks), size=2, sharding=self.place.replicated) as device:
            for x, y in device:
                yield self.config.batch_size, (x, y, None, None, None)

    def __enter__(self) -> StreamedSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class LoaderSource:
    """Batches from ``loader(epoch)``, joined into chunks of up to ``chunk_steps`` batches of
    one shape and prefetched to the device on a background thread; leaving an epoch early
    (a callback's stop, an exception) stops the thread and closes the loader's iterator."""

    def __init__(self, loader: Callable[[int], Any], config: FitConfig, place: Placement):
        self.loader, self.config, self.place = loader, config, place

    def epoch(self, epoch: int) -> Generator[Piece, None, None]:
        chunk_steps = self.config.chunk_steps or LOADER_CHUNK_STEPS
        with batch_chunks(self.loader, epoch, chunk_steps=chunk_steps, sharding=self.place.chunks) as chunks:
            for x, y, batch_size in chunks:
                yield batch_size, (x, y, None, None, PRE_CUT)

    def __enter__(self) -> LoaderSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def epoch_source(X: Any, Y: Any, config: FitConfig, place: Placement, start_epoch: int) -> EpochSource:
    """The source fit reads: a loader when X is callable, streamed when ``config.chunk_steps``
    is set, else resident."""
    if callable(X):
        return LoaderSource(X, config, place)
    if _processes.multi_process():
        return ProcessShardSource(X, Y, config, place)
    if config.chunk_steps is None:
        return ResidentSource(X, Y, config, place, start_epoch)
    return StreamedSource(X, Y, config, place, config.chunk_steps)
