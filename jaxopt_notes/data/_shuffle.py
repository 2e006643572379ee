"""An exactly uniform random permutation that can be consumed while it is still being drawn.

NumPy's ``Generator.permutation`` of 5,000,000 indices costs about as much as gathering a
whole epoch of 20-feature minibatches, and nothing can be gathered until it is done. The
Rao-Sandelius method splits the work without giving up exactness: put every index in one of
``k`` buckets uniformly at random, permute each bucket uniformly, and concatenate. The first
bucket is permuted at once; a background thread permutes the rest (NumPy releases the GIL
there) while the consumer gathers the first bucket's rows.

:class:`EpochOrders` draws ``fit``'s per-epoch orders over resident data (see its docstring).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

import numpy as np

# Below this many rows a plain permutation takes a few milliseconds: not worth a thread.
PIPELINE_MIN_ROWS = 1 << 20
# Four buckets measured fastest for m = 5,000,000 (two and eight were slower): the first
# bucket is small enough to start soon, the grouping passes few enough to stay cheap.
BUCKETS = 4


class PipelinedPermutation:
    """A uniform random permutation of ``range(m)``, fixed by ``seed``, read by slices.

    ``prefix(stop)`` returns the whole order once positions ``[0, stop)`` are final, waiting
    for the background thread if needed. The result does not depend on thread timing: each
    bucket is permuted by its own generator spawned from ``seed``.
    """

    def __init__(self, m: int, seed: int, buckets: int = BUCKETS) -> None:
        seeds = np.random.SeedSequence(seed).spawn(buckets + 1)
        keys = np.random.default_rng(seeds[0]).integers(0, buckets, size=m, dtype=np.uint8)
        groups = [np.flatnonzero(keys == bucket) for bucket in range(buckets)]
        self.order = np.concatenate(groups)
        self._ends = np.cumsum([len(group) for group in groups])
        starts = self._ends - [len(group) for group in groups]
        self._ready = [threading.Event() for _ in groups]
        self._error: BaseException | None = None
        self._spans = [(int(start), int(end), seeds[i + 1]) for i, (start, end) in enumerate(zip(starts, self._ends))]
        self._permute(0)
        self._thread = threading.Thread(target=self._permute_rest, name="jaxopt-notes-shuffle", daemon=True)
        self._thread.start()

    def _permute(self, bucket: int) -> None:
        start, end, seed = self._spans[bucket]
        np.random.default_rng(seed).shuffle(self.order[start:end])
        self._ready[bucket].set()

    def _permute_rest(self) -> None:
        try:
            for bucket in range(1, len(self._spans)):
                self._permute(bucket)
        except BaseException as error:  # surfaced to the consumer by prefix()
            self._error = error
            for event in self._ready:
                event.set()

    def prefix(self, stop: int) -> np.ndarray:
        """The order, with positions ``[0, stop)`` final."""
        if stop > 0:
            bucket = int(np.searchsorted(self._ends, stop, side="left"))
            self._ready[min(bucket, len(self._ready) - 1)].wait()
            if self._error is not None:
                raise RuntimeError("drawing the epoch's permutation failed") from self._error
        return self.order


def uniform_permutation_source(m: int, seed: int) -> Callable[[int], np.ndarray]:
    """``prefix(stop) -> order`` for an exactly uniform permutation of ``range(m)``: a plain
    ``default_rng(seed).permutation(m)`` for small ``m``, a :class:`PipelinedPermutation`
    from :data:`PIPELINE_MIN_ROWS` rows on."""
    if m < PIPELINE_MIN_ROWS:
        order = np.random.default_rng(seed).permutation(m)
        return lambda stop: order
    return PipelinedPermutation(m, seed).prefix


def epoch_seed(seed: int, epoch: int, process: int | None = None) -> np.random.SeedSequence:
    """The seed of epoch ``epoch``'s shuffle in a run seeded ``seed``: ``SeedSequence([seed,
    epoch])``, or ``SeedSequence([seed, epoch, process])`` for ``process``'s own rows in a
    multi-process run. The one place this rule is written."""
    return np.random.SeedSequence([seed, epoch] if process is None else [seed, epoch, process])


_ALIGN = 64
_FILL_ROWS = 1 << 20


def aligned_permutation(m: int, seed: np.random.SeedSequence | None) -> np.ndarray:
    """``np.random.default_rng(seed).permutation(m)`` as int32 on a 64-byte boundary (so
    ``jax.device_put`` on a CPU aliases it instead of copying); ``range(m)`` when ``seed`` is
    None. Same permutation, cheaper: NumPy's shuffle draws the same swaps whatever the
    dtype, and shuffling int32 in place skips the int64 array and its conversion."""
    raw = np.empty(4 * m + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    order = raw[start : start + 4 * m].view(np.int32)
    for first in range(0, m, _FILL_ROWS):  # in pieces: no temporary of m indices
        stop = min(first + _FILL_ROWS, m)
        order[first:stop] = np.arange(first, stop, dtype=np.int32)
    if seed is not None:
        np.random.default_rng(seed).shuffle(order)
    return order


class EpochOrders:
    """Each epoch's minibatches of a run over resident data, as ``(order (steps, batch), rest)``
    int32 arrays (``rest`` None without a remainder or with ``drop_remainder``).

    Epoch e follows ``np.random.default_rng(np.random.SeedSequence([seed, e])).permutation(m)``
    (:func:`aligned_permutation`); with ``shuffle=False`` (batch gradient descent) the rows stay
    in order. The first epoch's permutation is drawn on a background thread from construction
    on, so it overlaps whatever the caller does next (placing the data); each later one while
    the previous epoch trains. The first epoch's permutation of the latest run is kept, so a
    later run with the same ``m``, ``seed`` and first epoch (a repeated 1-epoch call) draws
    nothing; permutations are never written after they are drawn, so sharing one is safe.
    """

    _kept: tuple[tuple[int, int, int], np.ndarray] | None = None

    def __init__(self, m: int, batch_size: int, seed: int, epochs: range, drop_remainder: bool, shuffle: bool):
        self._m, self._batch_size, self._seed, self._shuffle = m, batch_size, seed, shuffle
        self._steps, self._drop_remainder, self._epochs = m // batch_size, drop_remainder, epochs
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxopt-notes-orders")
        self._pending = {epoch: self._pool.submit(self._draw, epoch) for epoch in epochs[:1]}

    def _draw(self, epoch: int) -> np.ndarray:
        key = (self._m, self._seed, epoch)
        kept = EpochOrders._kept
        if self._shuffle and kept is not None and kept[0] == key:
            return kept[1]
        order = aligned_permutation(self._m, epoch_seed(self._seed, epoch) if self._shuffle else None)
        if self._shuffle and epoch == self._epochs[0]:
            EpochOrders._kept = (key, order)
        return order

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Epoch ``epoch``'s minibatches; starts drawing the next epoch's permutation."""
        pending = self._pending.pop(epoch, None)
        perm = (pending or self._pool.submit(self._draw, epoch)).result()
        if epoch + 1 < self._epochs.stop and epoch + 1 not in self._pending:
            self._pending[epoch + 1] = self._pool.submit(self._draw, epoch + 1)
        cut = self._steps * self._batch_size
        rest = None if self._drop_remainder or cut == self._m else perm[cut:]
        return perm[:cut].reshape(self._steps, self._batch_size), rest

    def close(self) -> None:
        """Stops drawing: a pending permutation is abandoned, the thread ends after it."""
        for pending in self._pending.values():
            pending.cancel()
        self._pool.shutdown(wait=False)
