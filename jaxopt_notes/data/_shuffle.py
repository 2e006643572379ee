"""An exactly uniform random permutation that can be consumed while it is still being drawn.

NumPy's ``Generator.permutation`` of 5,000,000 indices costs about as much as gathering a
whole epoch of 20-feature minibatches, and nothing can be gathered until it is done. The
Rao-Sandelius method splits the work without giving up exactness: put every index in one of
``k`` buckets uniformly at random, permute each bucket uniformly, and concatenate. The first
bucket is permuted at once; a background thread permutes the rest (NumPy releases the GIL
there) while the consumer gathers the first bucket's rows.
"""

from __future__ import annotations

import threading

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


def uniform_permutation_source(m: int, seed: int):
    """``prefix(stop) -> order`` for an exactly uniform permutation of ``range(m)``: a plain
    ``default_rng(seed).permutation(m)`` for small ``m``, a :class:`PipelinedPermutation`
    from :data:`PIPELINE_MIN_ROWS` rows on."""
    if m < PIPELINE_MIN_ROWS:
        order = np.random.default_rng(seed).permutation(m)
        return lambda stop: order
    return PipelinedPermutation(m, seed).prefix
