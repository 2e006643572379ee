"""Where each epoch's minibatches come from: an epoch source.

A source is used as a context manager; ``source.epoch(e)`` yields, for epoch e (0-based), one
typed chunk (:mod:`~jaxopt_notes.training._chunks`) per call of the compiled ``run``. Three
variants here, and :class:`~jaxopt_notes.training._process_source.ProcessShardSource` across
processes:

- :class:`ResidentSource`: the data sit on the device for the whole run; each epoch is a few
  :class:`~jaxopt_notes.training._chunks.ResidentEpoch` pieces of a host-drawn permutation,
  each handed on as soon as it is drawn, cut into ``order`` (steps, batch) and, in the last,
  ``rest``.
- :class:`StreamedSource`: the data (e.g. memory-mapped) stream in shuffled chunks of
  ``chunk_steps`` minibatches (:class:`~jaxopt_notes.training._chunks.ShuffledRows`), the
  next chunk copied to the device by a background thread while the current one trains.
- :class:`LoaderSource`: X is a callable ``epoch -> iterable of batches`` (a grain, PyTorch
  or tf.data loader, a generator); consecutive batches of one shape are joined into chunks
  of ``chunk_steps`` by :func:`~jaxopt_notes.data._loaders.batch_chunks` on a background
  thread (:class:`~jaxopt_notes.training._chunks.CutMinibatches`); a batch of another shape
  is a chunk of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

from jaxopt_notes.data._batches import minibatches
from jaxopt_notes.data._loaders import batch_chunks
from jaxopt_notes.data._prefetch import prefetch_to_device
from jaxopt_notes.data._shuffle import EpochOrders, epoch_seed
from jaxopt_notes.training import _processes
from jaxopt_notes.training._chunks import Chunk, CutMinibatches, ResidentEpoch, ShuffledRows
from jaxopt_notes.training._placement import Placement
from jaxopt_notes.training._process_source import ProcessShardSource
from jaxopt_notes.training._rows import place_rows
from jaxopt_notes.training._run import Run, is_loader

LOADER_CHUNK_STEPS = 64
"""Batches from a loader are joined into chunks of this many, unless ``chunk_steps`` says otherwise."""


class EpochSource(Protocol):
    def epoch(self, epoch: int) -> Generator[Chunk, None, None]: ...

    def __enter__(self) -> EpochSource: ...

    def __exit__(self, *exc_info: object) -> None: ...


class ResidentSource:
    """The whole data set on the device, read in place from the caller's NumPy arrays
    (``_rows.place_rows``); each epoch is a few calls over the pieces of a host-drawn
    permutation (:class:`~jaxopt_notes.data._shuffle.EpochOrders`), the first one drawn while
    the data are placed."""

    def __init__(self, X: Any, Y: Any, run: Run, place: Placement, start_epoch: int):
        options = run.options
        assert run.examples is not None and options.batch_size is not None
        m, batch_size = run.examples, options.batch_size
        epochs = range(start_epoch, options.epochs)
        self._orders = EpochOrders(m, batch_size, options.seed, epochs, options.drop_remainder, shuffle=batch_size < m)
        X, Y, self.layout = place_rows(X, Y, place.replicated)
        self.buffers = (X, Y)

    def epoch(self, epoch: int) -> Generator[Chunk, None, None]:
        for order, rest in self._orders.pieces(epoch):  # the first while the rest is still being drawn
            yield ResidentEpoch(self.buffers, order, rest, self.layout)

    def __enter__(self) -> ResidentSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._orders.close()


class StreamedSource:
    """The data stay on the host (e.g. memory-mapped) and stream through the device in shuffled
    chunks of ``run.chunk_steps`` minibatches (see :mod:`jaxopt_notes.data` for how a memmap
    is shuffled), prefetched to the device by a background thread."""

    def __init__(self, X: Any, Y: Any, run: Run, place: Placement, chunk_steps: int):
        assert run.options.batch_size is not None
        self.X, self.Y, self.options, self.place = X, Y, run.options, place
        self.batch_size = run.options.batch_size
        self.chunk_rows = chunk_steps * self.batch_size

    def _cut(self, chunk: Any) -> tuple[Any, Any]:
        x, y = chunk if self.Y is not None else (chunk, None)
        keep = len(x) - len(x) % self.batch_size if self.options.drop_remainder else len(x)
        return x[:keep], None if y is None else y[:keep]

    def epoch(self, epoch: int) -> Generator[Chunk, None, None]:
        seed = int(epoch_seed(self.options.seed, epoch).generate_state(1)[0])
        chunks = minibatches(self.X, self.Y, batch_size=self.chunk_rows, seed=seed)
        with prefetch_to_device((self._cut(c) for c in chunks), size=2, sharding=self.place.replicated) as device:
            for x, y in device:
                yield ShuffledRows(x, y, self.batch_size)

    def __enter__(self) -> StreamedSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class LoaderSource:
    """Batches from ``loader(epoch)``, joined into chunks of up to ``chunk_steps`` batches of
    one shape and prefetched to the device on a background thread; leaving an epoch early
    (a callback's stop, an exception) stops the thread and closes the loader's iterator."""

    def __init__(self, loader: Callable[[int], Any], run: Run, place: Placement):
        self.loader, self.place = loader, place
        self.chunk_steps = run.chunk_steps or LOADER_CHUNK_STEPS

    def epoch(self, epoch: int) -> Generator[Chunk, None, None]:
        with batch_chunks(self.loader, epoch, chunk_steps=self.chunk_steps, sharding=self.place.chunks) as chunks:
            for x, y, _ in chunks:
                yield CutMinibatches(x, y, rest=None)

    def __enter__(self) -> LoaderSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def epoch_source(X: Any, Y: Any, run: Run, place: Placement, start_epoch: int) -> EpochSource:
    """The source fit reads: a loader when X is callable, one process's rows in a multi-process
    run, streamed when ``run.chunk_steps`` is set, else resident."""
    if is_loader(X):
        return LoaderSource(X, run, place)
    if _processes.multi_process():
        return ProcessShardSource(X, Y, run, place)
    if run.chunk_steps is None:
        return ResidentSource(X, Y, run, place, start_epoch)
    return StreamedSource(X, Y, run, place, run.chunk_steps)
