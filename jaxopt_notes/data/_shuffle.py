"""Exactly uniform random permutations that can be consumed while they are still being drawn.

NumPy's ``Generator.permutation`` of 5,000,000 indices costs a third of an epoch of
20-feature minibatches, and nothing can be gathered until it is done. The Rao-Sandelius
method splits the work without giving up exactness: give every index a bucket label drawn
independently from one distribution, list each bucket's indices in increasing order, permute
each bucket uniformly, and concatenate the buckets. A background thread permutes the buckets
one after the other; a consumer may read positions as soon as the buckets covering them are
done.

Why the result is uniform: the labels are independent and identically distributed, so given
the bucket sizes ``n_1, ..., n_k``, every way of splitting the m indices into buckets of those
sizes is equally likely (``n_1! ... n_k! / m!`` each); each bucket's order is then uniform among
its ``n_b!`` orders, independently; so every permutation of ``range(m)`` comes out with
probability ``(n_1! ... n_k! / m!) * 1 / (n_1! ... n_k!) = 1 / m!`` whatever the sizes were.
The buckets need not be equally likely.

:class:`EpochOrders` draws ``fit``'s per-epoch orders over resident data (see its docstring).
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Callable, Iterator

import numpy as np

# Below this many rows a plain permutation takes a few milliseconds: not worth a thread.
PIPELINE_MIN_ROWS = 1 << 20
# minibatches(): four buckets measured fastest for m = 5,000,000 (two and eight were slower).
BUCKETS = 4
# fit: bucket b holds the rows whose random byte lies in [FIT_BOUNDS[b], FIT_BOUNDS[b + 1]):
# 1/64, 1/64, 1/32, 1/16 of the rows, then eighths (none larger: an int64 eighth is m bytes).
FIT_BOUNDS = (0, 4, 8, 16, 32, 64, 96, 128, 160, 192, 224, 256)
# Bucket members are found an eighth of the byte range at a time (8 passes over the bytes; the
# first eighth is split into the four small buckets): splitting a larger share costs more.
_FIT_PASSES = tuple(zip(range(0, 256, 32), range(32, 257, 32)))
# fit hands an epoch out in this many pieces: the first about as long as the first two buckets.
FIT_PIECES = 32
# The first order of the latest run is kept for a repeated call up to this many rows (64 MiB).
KEPT_MAX_ROWS = 1 << 24

_ALIGN = 64
_SLICE = 1 << 20


def _aligned(m: int, dtype: np.dtype) -> np.ndarray:
    """An empty array of m ``dtype`` values on a 64-byte boundary (so ``jax.device_put`` on a
    CPU aliases it instead of copying)."""
    raw = np.empty(m * dtype.itemsize + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + m * dtype.itemsize].view(dtype)


class _Pipelined:
    """A uniform random permutation of ``range(m)`` drawn bucket after bucket by a background
    thread (Rao-Sandelius, see the module docstring) into ``order`` (``dtype``, 64-byte
    aligned), read by prefixes: ``prefix(stop)`` returns ``order`` once positions ``[0, stop)``
    are final. Subclasses make the buckets (:meth:`_buckets`). The result does not depend on
    thread timing. With ``after``, drawing starts once ``after`` is finished: one draw at a
    time, so that an order is not slowed by the next one, and one draw's temporaries live at
    a time."""

    def __init__(self, m: int, dtype: type, after: _Pipelined | None) -> None:
        self.order = _aligned(m, np.dtype(dtype))
        self._final = 0  # positions [0, _final) are drawn
        self._error: BaseException | None = None
        self._cancelled = False
        self._changed = threading.Condition()
        self._finished = threading.Event()
        self._after = after
        self._thread = threading.Thread(target=self._draw, name="jaxopt-notes-shuffle", daemon=True)
        self._thread.start()

    def _buckets(self) -> Iterator[np.ndarray]:
        """Each bucket's indices (int64), permuted, in order."""
        raise NotImplementedError

    def _draw(self) -> None:
        try:
            if self._after is not None:
                self._after._finished.wait()
                self._after = None
            start = 0
            for members in self._buckets():
                self.order[start : start + len(members)] = members
                start += len(members)
                with self._changed:
                    self._final = start
                    self._changed.notify_all()
                if self._cancelled:
                    return
        except BaseException as error:  # surfaced to the consumer by prefix()
            with self._changed:
                self._error = error
                self._changed.notify_all()
        finally:
            self._finished.set()

    def prefix(self, stop: int) -> np.ndarray:
        """The order, with positions ``[0, stop)`` final."""
        with self._changed:
            self._changed.wait_for(lambda: self._final >= stop or self._error is not None)
        if self._error is not None:
            raise RuntimeError("drawing the epoch's permutation failed") from self._error
        return self.order

    def cancel(self) -> None:
        """Stops drawing after the bucket in progress (the order stays incomplete)."""
        self._cancelled = True


class PipelinedPermutation(_Pipelined):
    """:func:`~jaxopt_notes.data.minibatches`' permutation from :data:`PIPELINE_MIN_ROWS` rows
    (int64): ``seed`` (an int) spawns ``buckets + 1`` children; the first labels every index,
    ``integers(0, buckets, size=m, dtype=uint8)``; child ``b + 1`` shuffles bucket b (its
    indices in increasing order) with ``Generator.shuffle``."""

    def __init__(self, m: int, seed: int, buckets: int = BUCKETS) -> None:
        self._seeds = np.random.SeedSequence(seed).spawn(buckets + 1)
        self._count = buckets
        super().__init__(m, np.int64, None)

    def _buckets(self) -> Iterator[np.ndarray]:
        labels = np.random.default_rng(self._seeds[0]).integers(0, self._count, size=len(self.order), dtype=np.uint8)
        for bucket in range(self._count):
            members = np.flatnonzero(labels == bucket)
            np.random.default_rng(self._seeds[bucket + 1]).shuffle(members)
            yield members


class FitPermutation(_Pipelined):
    """``fit``'s permutation of ``range(m)`` from :data:`PIPELINE_MIN_ROWS` rows (int32).

    ``seed`` (a ``SeedSequence``) spawns ``len(FIT_BOUNDS)`` children. The first gives every
    row a byte: the first m little-endian bytes of ``PCG64(child).random_raw(ceil(m / 8))``.
    Bucket b holds the rows whose byte lies in ``[FIT_BOUNDS[b], FIT_BOUNDS[b + 1])``, in
    increasing order, shuffled (as int64) by ``np.random.default_rng(child b + 1).shuffle``.
    The first buckets are small (1/64, 1/64, 1/32, 1/16 of the rows), so an epoch can start
    after drawing about a sixtieth of its order while the rest is drawn ahead of the
    minibatches; the later ones are eighths. Bucket members are found an eighth of the byte
    range at a time.
    """

    def __init__(self, m: int, seed: np.random.SeedSequence, after: _Pipelined | None = None) -> None:
        self._seeds = seed.spawn(len(FIT_BOUNDS))
        super().__init__(m, np.int32, after)

    def _buckets(self) -> Iterator[np.ndarray]:
        m = len(self.order)
        raw = np.random.PCG64(self._seeds[0]).random_raw(-(-m // 8))  # 8 random bytes a draw
        labels = raw.astype("<u8", copy=False).view(np.uint8)[:m]
        bucket = 0
        for low, high in _FIT_PASSES:
            rows = _rows_between(labels, low, high)
            edges = [bound for bound in FIT_BOUNDS if low <= bound <= high]
            for start, stop in zip(edges, edges[1:]):
                members = rows if len(edges) == 2 else rows[_between(labels[rows], start, stop)]
                np.random.default_rng(self._seeds[bucket + 1]).shuffle(members)
                yield members
                bucket += 1


def _between(labels: np.ndarray, low: int, high: int) -> np.ndarray:
    """``(low <= labels) & (labels < high)`` for uint8 labels, in one comparison (wrapping)."""
    return (labels - np.uint8(low)) < np.uint8(high - low)


def _rows_between(labels: np.ndarray, low: int, high: int) -> np.ndarray:
    """The indices (int64, increasing) of the uint8 labels in ``[low, high)``, found a slice of
    ``labels`` at a time, so that no temporary as long as ``labels`` is made."""
    # Room for the count's mean plus 8 standard deviations (labels are uniform bytes): counting
    # first would cost a second pass; a count beyond the room (p < 1e-15) is counted, then found.
    share = (high - low) / 256
    room = int(len(labels) * share + 8 * math.sqrt(len(labels) * share * (1 - share))) + 64
    rows = np.empty(min(room, len(labels)), np.int64)
    found = 0
    for first in range(0, len(labels), _SLICE):
        here = np.flatnonzero(_between(labels[first : first + _SLICE], low, high))
        if found + len(here) > len(rows):
            return np.flatnonzero(_between(labels, low, high))
        rows[found : found + len(here)] = here + first
        found += len(here)
    return rows[:found]


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


def aligned_permutation(m: int, seed: np.random.SeedSequence | None) -> np.ndarray:
    """``np.random.default_rng(seed).permutation(m)`` as int32 on a 64-byte boundary;
    ``range(m)`` when ``seed`` is None. (NumPy shuffles int64 fastest: the int32 copy is made
    after.)"""
    order = _aligned(m, np.dtype(np.int32))
    order[:] = np.arange(m) if seed is None else np.random.default_rng(seed).permutation(m)
    return order


class _Drawn:
    """An order drawn whole on a worker thread, read like a :class:`_Pipelined`."""

    def __init__(self, future: concurrent.futures.Future) -> None:
        self._future = future

    def prefix(self, stop: int) -> np.ndarray:
        return self._future.result()

    def cancel(self) -> None:
        self._future.cancel()


class EpochOrders:
    """Each epoch's minibatches of a run over resident data, as int32 ``(order (steps, batch),
    rest)`` arrays (``rest`` None without a remainder or with ``drop_remainder``).

    Epoch e's order is a uniform random permutation of ``range(m)`` fixed by ``(seed, e)``
    (:func:`epoch_seed`): below :data:`PIPELINE_MIN_ROWS` rows
    ``np.random.default_rng(SeedSequence([seed, e])).permutation(m)``; from there on a
    :class:`FitPermutation` seeded with ``SeedSequence([seed, e])``, which :meth:`pieces` hands
    out as its buckets are drawn. With ``shuffle=False`` (batch gradient descent) the rows stay
    in order. The first epoch's order is drawn on a background thread from construction on,
    each later one while the previous epoch trains, once the previous order is drawn. The first
    epoch's order of the latest run (of at most :data:`KEPT_MAX_ROWS` rows) is kept, so a later
    run with the same ``m``, ``seed`` and first epoch (a repeated 1-epoch call) draws nothing;
    orders are never written after they are drawn, so sharing one is safe.
    """

    _kept: tuple[tuple[int, int, int, bool], _Pipelined | _Drawn] | None = None

    def __init__(self, m: int, batch_size: int, seed: int, epochs: range, drop_remainder: bool, shuffle: bool):
        self._m, self._batch_size, self._seed, self._shuffle = m, batch_size, seed, shuffle
        self._steps, self._drop_remainder, self._epochs = m // batch_size, drop_remainder, epochs
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxopt-notes-orders")
        self._latest: _Pipelined | _Drawn | None = None
        self._pending = {epoch: self._draw(epoch) for epoch in epochs[:1]}

    def _draw(self, epoch: int) -> _Pipelined | _Drawn:
        pipelined = self._shuffle and self._m >= PIPELINE_MIN_ROWS
        key = (self._m, self._seed, epoch, pipelined)
        kept = EpochOrders._kept
        if self._shuffle and kept is not None and kept[0] == key:
            return kept[1]
        drawing: _Pipelined | _Drawn
        if pipelined:
            after = self._latest if isinstance(self._latest, _Pipelined) else None
            drawing = FitPermutation(self._m, epoch_seed(self._seed, epoch), after)
        else:
            seed = epoch_seed(self._seed, epoch) if self._shuffle else None
            drawing = _Drawn(self._pool.submit(aligned_permutation, self._m, seed))
        if self._shuffle and epoch == self._epochs[0] and self._m <= KEPT_MAX_ROWS:
            EpochOrders._kept = (key, drawing)
        self._latest = drawing
        return drawing

    def _start(self, epoch: int) -> _Pipelined | _Drawn:
        """Epoch ``epoch``'s drawing; starts drawing the next epoch's."""
        drawing = self._pending.pop(epoch, None) or self._draw(epoch)
        if epoch + 1 < self._epochs.stop and epoch + 1 not in self._pending:
            self._pending[epoch + 1] = self._draw(epoch + 1)
        return drawing

    def _rest(self, order: np.ndarray) -> np.ndarray | None:
        cut = self._steps * self._batch_size
        return None if self._drop_remainder or cut == self._m else order[cut:]

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Epoch ``epoch``'s minibatches, once its whole order is drawn; starts drawing the next epoch's."""
        order = self._start(epoch).prefix(self._m)
        return order[: self._steps * self._batch_size].reshape(self._steps, self._batch_size), self._rest(order)

    def pieces(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Epoch ``epoch``'s minibatches in consecutive pieces ``(order (piece steps, batch),
        rest or None)``, each handed out as soon as its rows are drawn (``rest`` comes with the
        last piece): one piece below :data:`PIPELINE_MIN_ROWS` rows, else about
        :data:`FIT_PIECES` pieces of equal steps but the last (two shapes to compile), each
        starting on a 64-byte boundary (so XLA reads it uncopied). Starts drawing the next
        epoch's order."""
        drawing = self._start(epoch)
        steps, batch = self._steps, self._batch_size
        per_piece = steps
        if isinstance(drawing, _Pipelined):
            whole = _ALIGN // 4 // math.gcd(batch, _ALIGN // 4)  # steps of int32 rows that fill 64 bytes
            per_piece = -(-steps // (FIT_PIECES * whole)) * whole
        for first in range(0, max(steps, 1), max(per_piece, 1)):
            stop = min(first + per_piece, steps)
            last = stop == steps
            order = drawing.prefix(self._m if last else stop * batch)
            yield order[first * batch : stop * batch].reshape(stop - first, batch), self._rest(order) if last else None

    def close(self) -> None:
        """Stops drawing: a pending order is abandoned (a kept first order is finished)."""
        kept = EpochOrders._kept
        for drawing in self._pending.values():
            if kept is None or drawing is not kept[1]:
                drawing.cancel()
        self._pool.shutdown(wait=False)
