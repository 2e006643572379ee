"""Minibatches over large data sets (notes, section 1).

One setting covers the three regimes of the notes: ``batch_size=m`` is batch gradient
descent, ``batch_size=1`` stochastic gradient descent, anything in between minibatch
gradient descent. Examples lie along axis 0 (rows), as in NumPy and JAX; the notes' classic
recipe with examples as columns is kept as :func:`random_mini_batches`.

How :func:`minibatches` reads the rows, and what that does to randomness:

* In-memory arrays (NumPy, or JAX arrays brought to the host once with ``np.asarray``):
  the epoch follows one uniformly random permutation of the m rows, and each minibatch is
  gathered with ``np.take`` (2-3x faster than fancy indexing ``X[idx]`` for rows of 20
  float32). The shuffled array is never built, only the index permutation. From about a
  million rows the permutation is drawn by the exact Rao-Sandelius method, its later parts
  on a background thread while the first minibatches are gathered (``_shuffle.py``); below
  that it is ``np.random.default_rng(seed).permutation(m)``.
* Memory-mapped arrays (``np.load(path, mmap_mode="r")``): reading scattered rows from a
  file costs a page fault (4 KiB, often a disk read) per row, so rows are read in *blocks*
  of ``block_rows`` consecutive rows. The block order is a uniformly random permutation;
  the blocks are taken a *window* of about ``window_rows`` rows at a time (read in file
  order), and the rows inside a window are permuted uniformly. Every row is still seen
  exactly once per epoch, and each minibatch is a uniform sample without replacement of
  its window; but rows of one block always share a window, so a minibatch mixes about
  ``window_rows / block_rows`` regions of the file rather than all of it. If the file is
  sorted (by label, by time), shuffle it once on disk or lower ``block_rows``;
  ``block_rows=1`` gives an exactly uniform permutation at the price of scattered reads.
  Pages are unmapped from the process (``madvise``) every few MiB as the window is read, so
  the memory held is one window (64 MiB by default) plus the batches in flight, whatever
  the file size. The kernel keeps the file in its page cache, which it reclaims as needed.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes.data._shuffle import uniform_permutation_source

Batch = np.ndarray | tuple[np.ndarray, np.ndarray]

# Measured on a cold memmapped .npy (benchmarks/minibatch_epoch.py, part c): random blocks of
# 80 KiB read 4-6x more rows per second than blocks of 5 KiB, and the gain flattens past
# ~256 KiB; a 64 MiB window then mixes 256 blocks.
_BLOCK_BYTES = 256 * 1024
_WINDOW_BYTES = 64 * 1024 * 1024
# Mapped rows are copied, and their pages unmapped, a 4 MiB stretch of the file at a time:
# that bounds the pages mapped at once, whatever the kernel maps around each row it reads.
_PIECE_BYTES = 4 * 1024 * 1024


def steps_per_epoch(m: int, batch_size: int, *, drop_remainder: bool = False) -> int:
    """Number of minibatches in one epoch: ``ceil(m / batch_size)``, or ``floor`` when dropping.

    The notes' running example: ``steps_per_epoch(5_000_000, 1_000) == 5_000``.

    Raises:
      ValueError: when ``m`` or ``batch_size`` is below 1, or when ``drop_remainder`` leaves
        no minibatch at all (``batch_size > m``).
    """
    _checks.check_int("m", m, minimum=1)
    _checks.check_int("batch_size", batch_size, minimum=1)
    if drop_remainder:
        if batch_size > m:
            raise ValueError(
                f"batch_size={batch_size} > m={m} with drop_remainder=True leaves no minibatch; "
                "use a smaller batch_size or drop_remainder=False"
            )
        return m // batch_size
    return -(-m // batch_size)


def _shared_mapping(array: np.ndarray) -> mmap.mmap | None:
    """The shared file mapping behind ``array``, if any; ``None`` for private (``mode="c"``) ones,
    and where ``madvise`` is missing (Windows): there the pages stay mapped until exit."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    mode: str | None = None
    base: Any = array
    while base is not None:
        if isinstance(base, np.memmap) and mode is None:
            mode = base.mode
        if isinstance(base, mmap.mmap):
            # Dropping pages of a copy-on-write mapping would discard the caller's edits.
            return base if mode in ("r", "r+", "readonly", "readwrite") else None
        base = getattr(base, "base", None)
    return None


def _is_mapped(array: np.ndarray) -> bool:
    base: Any = array
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def _as_examples(name: str, value: Any) -> np.ndarray:
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"{name} must have examples along axis 0, got a scalar")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 examples along axis 0, shape {array.shape})")
    return array


class Minibatches:
    """One epoch of minibatches; see :func:`minibatches`. Iterating again replays the same epoch."""

    def __init__(
        self,
        X: Any,
        Y: Any,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool,
        drop_remainder: bool,
        block_rows: int | None,
        window_rows: int | None,
    ) -> None:
        _checks.check_int("batch_size", batch_size, minimum=1)
        for name, rows in (("block_rows", block_rows), ("window_rows", window_rows)):
            if rows is not None:
                _checks.check_int(name, rows, minimum=1)
        _checks.check_int("seed", seed, minimum=0)
        arrays = [_as_examples("X", X)]
        if Y is not None:
            arrays.append(_as_examples("Y", Y))
            if arrays[1].shape[0] != arrays[0].shape[0]:
                raise ValueError(
                    f"X and Y must hold the same number of examples along axis 0, "
                    f"got X.shape={arrays[0].shape} and Y.shape={arrays[1].shape}"
                )
        self.num_examples = m = int(arrays[0].shape[0])
        self.steps = steps_per_epoch(self.num_examples, batch_size, drop_remainder=drop_remainder)
        self._arrays = tuple(arrays)
        self._paired = Y is not None
        self._batch_size = int(batch_size)
        self._seed = int(seed)
        self._shuffle = bool(shuffle)
        self._drop_remainder = bool(drop_remainder)
        self._mappings = [mapping for a in arrays if (mapping := _shared_mapping(a)) is not None]
        self._windowed = any(_is_mapped(a) for a in arrays) or block_rows is not None or window_rows is not None
        row_bytes = max(1, sum(a.itemsize * math.prod(a.shape[1:]) for a in arrays))
        self.block_rows = int(block_rows) if block_rows is not None else max(1, _BLOCK_BYTES // row_bytes)
        wanted = int(window_rows) if window_rows is not None else max(self._batch_size, _WINDOW_BYTES // row_bytes)
        self.window_blocks = max(1, -(-wanted // self.block_rows))
        self._piece_rows = max(1, _PIECE_BYTES // row_bytes) if self._mappings else m

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Batch]:
        batches = self._windows() if self._windowed else self._in_memory()
        for batch in batches:
            yield (batch[0], batch[1]) if self._paired else batch[0]

    def _in_memory(self) -> Iterator[tuple[np.ndarray, ...]]:
        m, size = self.num_examples, self._batch_size
        orders = uniform_permutation_source(m, self._seed) if self._shuffle else None
        stop = m - m % size if self._drop_remainder else m
        for start in range(0, stop, size):
            if orders is None:
                yield tuple(a[start : start + size] for a in self._arrays)
            else:
                end = min(start + size, m)
                rows = orders(end)[start:end]
                yield tuple(np.take(a, rows, axis=0) for a in self._arrays)

    def _windows(self) -> Iterator[tuple[np.ndarray, ...]]:
        m, size = self.num_examples, self._batch_size
        rng = np.random.default_rng(self._seed)
        num_blocks = -(-m // self.block_rows)
        block_order = rng.permutation(num_blocks) if self._shuffle else np.arange(num_blocks)
        carry: tuple[np.ndarray, ...] | None = None
        for first in range(0, num_blocks, self.window_blocks):
            window = self._read_window(np.sort(block_order[first : first + self.window_blocks]))
            rows = len(window[0])
            order = rng.permutation(rows) if self._shuffle else np.arange(rows)
            start = 0
            if carry is not None:
                start = min(size - len(carry[0]), rows)
                head = order[:start]
                carry = tuple(np.concatenate([c, np.take(w, head, axis=0)]) for c, w in zip(carry, window, strict=True))
                if len(carry[0]) == size:
                    yield carry
                    carry = None
            while start + size <= rows:
                yield tuple(np.take(w, order[start : start + size], axis=0) for w in window)
                start += size
            if start < rows:
                carry = tuple(np.take(w, order[start:], axis=0) for w in window)
            # Free this window before the next one is read: one window in memory at a time.
            del window, order
        if carry is not None and not self._drop_remainder:
            yield carry

    def _read_window(self, blocks: np.ndarray) -> tuple[np.ndarray, ...]:
        """Rows of ``blocks`` (sorted) in file order, copied out of every array."""
        starts, stops = _pieces(blocks * self.block_rows, self.block_rows, self.num_examples, self._piece_rows)
        ends = np.cumsum(stops - starts)
        window = tuple(np.empty((int(ends[-1]), *a.shape[1:]), a.dtype) for a in self._arrays)
        first = 0
        while first < len(starts):
            begin = int(ends[first - 1]) if first else 0
            # The group: the following pieces that end within piece_rows of where it starts.
            last = max(first + 1, int(np.searchsorted(stops, starts[first] + self._piece_rows, side="right")))
            if last - first == 1:
                for out, a in zip(window, self._arrays, strict=True):
                    out[begin : ends[first]] = a[starts[first] : stops[first]]
            else:
                rows = _expand(starts[first:last], stops[first:last])
                for out, a in zip(window, self._arrays, strict=True):
                    np.take(a, rows, axis=0, out=out[begin : ends[last - 1]], mode="clip")
            for mapping in self._mappings:
                # The copy is ours now: unmap the file pages (the kernel keeps them cached), so
                # the process holds one window, not every page it touched. Done every few MiB,
                # because one fault may map a whole large folio (MiBs) around a single row.
                mapping.madvise(mmap.MADV_DONTNEED)
            first = last
        return window


def _pieces(starts: np.ndarray, block_rows: int, m: int, piece_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted blocks as contiguous row ranges: adjacent blocks merged, then cut to ``piece_rows``."""
    stops = np.minimum(starts + block_rows, m)
    breaks = np.flatnonzero(starts[1:] != stops[:-1]) + 1
    run_starts, run_stops = starts[np.r_[0, breaks]], stops[np.r_[breaks - 1, len(starts) - 1]]
    cuts = -(-(run_stops - run_starts) // piece_rows)
    piece_starts = np.repeat(run_starts, cuts) + _expand(np.zeros_like(cuts), cuts) * piece_rows
    return piece_starts, np.minimum(piece_starts + piece_rows, np.repeat(run_stops, cuts))


def _expand(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])``, vectorised."""
    lengths = stops - starts
    offsets = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    return offsets + np.arange(int(lengths.sum()))


def minibatches(
    X: Any,
    Y: Any = None,
    *,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = False,
    block_rows: int | None = None,
    window_rows: int | None = None,
) -> Minibatches:
    """One epoch of minibatches ``(X_batch, Y_batch)`` (or ``X_batch`` alone when ``Y`` is None).

    X and Y share one permutation along axis 0; the last minibatch holds the remaining
    ``m % batch_size`` examples unless ``drop_remainder``. Batches are fresh NumPy arrays
    (views when an in-memory array is not shuffled). The result has ``len()`` (the number of
    steps) and replays the same epoch each time it is iterated: pass ``seed=epoch`` (or
    ``seed=base + epoch``) for a new order every epoch. See the module docstring for how
    memory-mapped arrays are read and what that does to randomness.

    Args:
      X: array-like, m examples along axis 0: NumPy, JAX, or ``np.memmap`` (larger than RAM).
      Y: optional array-like with the same m along axis 0.
      batch_size: examples per minibatch; m is batch gradient descent, 1 stochastic.
      seed: seed of ``np.random.default_rng`` for this epoch's order.
      shuffle: False keeps the stored order.
      drop_remainder: drop the last, smaller minibatch.
      block_rows: rows read together from a memory-mapped file (default: ~256 KiB of rows);
        1 makes the shuffle exactly uniform (slower reads, and 8 bytes per row of indices).
      window_rows: rows shuffled together (default: ~64 MiB of rows, at least batch_size).
        Passing either forces the windowed reader on in-memory arrays too.

    Example:
      >>> X, Y = np.arange(10.0).reshape(5, 2), np.arange(5)
      >>> [y.tolist() for _, y in minibatches(X, Y, batch_size=2, shuffle=False)]
      [[0, 1], [2, 3], [4]]
    """
    return Minibatches(
        X,
        Y,
        batch_size=batch_size,
        seed=seed,
        shuffle=shuffle,
        drop_remainder=drop_remainder,
        block_rows=block_rows,
        window_rows=window_rows,
    )


def random_mini_batches(
    X: Any, Y: Any, mini_batch_size: int = 64, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The notes' classic recipe, examples as *columns*: X is (features, m), Y is (1, m).

    Seeds NumPy's global legacy RNG with ``np.random.seed(seed)`` (a side effect, as in the
    recipe), draws ``np.random.permutation(m)``, shuffles the columns of X and Y with it, and
    cuts ``floor(m / mini_batch_size)`` full minibatches plus one partial minibatch for the
    remainder. Same seed, same batches, bit for bit, as the recipe. Unlike
    :func:`minibatches`, it builds the whole shuffled copy: it is meant for small data.

    Example:
      >>> X, Y = np.arange(10.0).reshape(2, 5), np.arange(5).reshape(1, 5)
      >>> [y.shape for _, y in random_mini_batches(X, Y, mini_batch_size=2)]
      [(1, 2), (1, 2), (1, 1)]
    """
    _checks.check_int("mini_batch_size", mini_batch_size, minimum=1)
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(
            "X and Y must be 2-D with examples as columns (features x m, 1 x m), "
            f"got X.shape={X.shape}, Y.shape={Y.shape}"
        )
    m = X.shape[1]
    if m == 0:
        raise ValueError(f"X is empty (0 examples as columns, shape {X.shape})")
    if Y.shape[1] != m:
        raise ValueError(f"X and Y must hold the same number of columns (examples), got {X.shape} and {Y.shape}")
    np.random.seed(seed)
    permutation = np.random.permutation(m)
    shuffled_X, shuffled_Y = X[:, permutation], Y[:, permutation]
    num_complete = m // mini_batch_size
    batches = [
        (
            shuffled_X[:, k * mini_batch_size : (k + 1) * mini_batch_size],
            shuffled_Y[:, k * mini_batch_size : (k + 1) * mini_batch_size],
        )
        for k in range(num_complete)
    ]
    if m % mini_batch_size:
        batches.append(
            (shuffled_X[:, num_complete * mini_batch_size :], shuffled_Y[:, num_complete * mini_batch_size :])
        )
    return batches


class BatchSizeSuggestion(NamedTuple):
    """What :func:`suggest_batch_size` advises, and why."""

    batch_size: int
    reason: str


def suggest_batch_size(m: int, bytes_per_example: float, *, memory_budget_bytes: float) -> BatchSizeSuggestion:
    """The notes' rule of thumb for the minibatch size.

    Small training sets (m <= 2000) use batch gradient descent (``batch_size = m``) when all
    m examples fit the budget. Otherwise the largest power of two from 64 up to 1024 (the
    notes' typical sizes) that is at most m and whose minibatch,
    ``batch_size * bytes_per_example``, fits ``memory_budget_bytes``; below 64 only when
    nothing larger fits. ``bytes_per_example`` is whatever one example costs the device
    (inputs, labels, activations), counted by the caller.

    Example:
      >>> suggest_batch_size(5_000_000, 4_096, memory_budget_bytes=2**21).batch_size
      512

    Raises:
      ValueError: when not even one example fits the budget.
    """
    _checks.check_int("m", m, minimum=1)
    for name, value in (("bytes_per_example", bytes_per_example), ("memory_budget_bytes", memory_budget_bytes)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise TypeError(f"{name} must be a number > 0, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    fits = max(0, math.floor(memory_budget_bytes / bytes_per_example))
    if fits < 1:
        raise ValueError(
            f"one example ({bytes_per_example} bytes) does not fit memory_budget_bytes={memory_budget_bytes}"
        )
    if m <= 2000 and m <= fits:
        return BatchSizeSuggestion(m, f"m={m} <= 2000: small training set, use batch gradient descent (batch_size=m)")
    largest = 1 << (min(fits, m, 1024).bit_length() - 1)
    if largest >= 64:
        limit = "1024, the largest typical size" if largest == 1024 else f"the memory budget ({fits} examples fit)"
        if largest < 1024 and largest * 2 > m:
            limit = f"m={m}"
        return BatchSizeSuggestion(largest, f"largest power of two in 64..1024 within {limit}")
    return BatchSizeSuggestion(
        largest, f"only {min(fits, m)} examples fit: {largest} is below the typical 64..1024, expect noisier steps"
    )
