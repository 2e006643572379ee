"""The epoch source of a multi-process run: global minibatches joined from every process's own
rows (see :mod:`jaxopt_notes.training._processes` for the recipe)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from jaxopt_notes.data._batches import minibatches
from jaxopt_notes.data._shuffle import epoch_seed
from jaxopt_notes.training._chunks import Chunk, CutMinibatches
from jaxopt_notes.training._placement import Placement
from jaxopt_notes.training._run import Run


class ProcessShardSource:
    """Epochs of global minibatches built from this process's rows (see the module docstring)."""

    def __init__(self, X: Any, Y: Any, run: Run, place: Placement):
        options = run.options
        mesh = options.mesh
        assert mesh is not None and run.examples is not None and options.batch_size is not None
        self.X, self.Y, self.options = X, Y, options
        self.processes = jax.process_count()
        self.shuffle = options.batch_size < run.examples  # one minibatch of all rows: in order
        self.local_batch = min(options.batch_size, run.examples) // self.processes
        self.local_rows = run.examples // self.processes
        if run.chunk_steps is None:  # the whole epoch in one call, its last minibatch included
            self.chunk_rows = self.local_rows
        else:
            self.chunk_rows = min(run.chunk_steps, self.local_rows // self.local_batch) * self.local_batch
        self.cut = NamedSharding(mesh, PartitionSpec(None, mesh.axis_names[0]))
        self.replicated = place.replicated

    def _global(self, local: Any) -> jax.Array | None:
        """``(steps, local_batch, ...)`` rows of every process as one ``(steps, batch_size, ...)`` array."""
        if local is None:
            return None
        steps, _, *row = local.shape
        shape = (steps, self.local_batch * self.processes, *row)
        return jax.make_array_from_process_local_data(self.cut, np.ascontiguousarray(local), shape)

    def _gathered(self, local: Any) -> jax.Array | None:
        """Every process's leftover rows, in process order, as one replicated array."""
        if local is None:
            return None
        rows = np.asarray(multihost_utils.process_allgather(np.ascontiguousarray(local), tiled=True))
        return jax.make_array_from_process_local_data(self.replicated, rows, rows.shape)

    def epoch(self, epoch: int) -> Generator[Chunk, None, None]:
        """One :class:`~jaxopt_notes.training._chunks.CutMinibatches` per chunk of global minibatches."""
        seed = int(epoch_seed(self.options.seed, epoch, jax.process_index()).generate_state(1)[0])
        chunks = minibatches(self.X, self.Y, batch_size=self.chunk_rows, seed=seed, shuffle=self.shuffle)
        for chunk in chunks:
            x, y = chunk if self.Y is not None else (chunk, None)
            assert isinstance(x, np.ndarray)
            full = len(x) - len(x) % self.local_batch
            rest = None
            if full < len(x) and not self.options.drop_remainder:
                rest = (self._gathered(x[full:]), self._gathered(None if y is None else y[full:]))
            if full:
                xs, ys = (None if a is None else a[:full].reshape(-1, self.local_batch, *a.shape[1:]) for a in (x, y))
                yield CutMinibatches(self._global(xs), self._global(ys), rest)
            elif rest is not None:
                yield CutMinibatches(None, None, rest)

    def __enter__(self) -> ProcessShardSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass
