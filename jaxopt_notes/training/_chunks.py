"""What an epoch source hands the compiled run: one typed chunk per call.

Each kind of source yields its own record, and the compiled run picks its code by the
record's type, which JAX sees in the pytree's structure: the choice is made when the run is
traced, never per step. Fields marked static (the rows' layout, a minibatch size) are part of
that structure too, so a new value traces a new run instead of being passed as an array.

- :class:`ResidentEpoch`: a piece of an epoch over rows placed on the device once
  (``_rows.place_rows``): ``order`` (steps, batch) and ``rest`` index them.
- :class:`ShuffledRows`: rows already in shuffled order (a streamed chunk), cut in order into
  minibatches of ``batch_size``, plus a smaller last one for what remains.
- :class:`CutMinibatches`: minibatches already cut, ``(steps, batch, ...)`` (None when there
  is no full one), and the rows of a last, smaller one in ``rest`` (or None): a loader's
  chunks and a multi-process run's global minibatches.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from jaxopt_notes.training._rows import Layout


@dataclasses.dataclass(frozen=True)
class ResidentEpoch:
    """A piece of an epoch over placed rows: ``buffers`` and ``layout`` as ``place_rows``
    returned them, ``order`` the int32 ``(steps, batch)`` row indices of its full minibatches,
    ``rest`` those of the epoch's last, smaller one (None without one, and in every piece but
    the last)."""

    buffers: tuple[Any, Any]
    order: Any
    rest: Any
    layout: Layout


@dataclasses.dataclass(frozen=True)
class ShuffledRows:
    """Rows ``x`` (and ``y``, or None) in the order they are trained on, cut into minibatches of
    ``batch_size``; the rows past the last full one form a smaller minibatch."""

    x: Any
    y: Any
    batch_size: int


@dataclasses.dataclass(frozen=True)
class CutMinibatches:
    """Full minibatches ``x`` (and ``y``) shaped ``(steps, batch, ...)``, or None when there is
    none; ``rest``, the ``(x, y)`` rows of a last, smaller minibatch, or None."""

    x: Any
    y: Any
    rest: tuple[Any, Any] | None


Chunk = ResidentEpoch | ShuffledRows | CutMinibatches
"""One call of the compiled run."""

jax.tree_util.register_dataclass(ResidentEpoch, data_fields=["buffers", "order", "rest"], meta_fields=["layout"])
jax.tree_util.register_dataclass(ShuffledRows, data_fields=["x", "y"], meta_fields=["batch_size"])
jax.tree_util.register_dataclass(CutMinibatches, data_fields=["x", "y", "rest"], meta_fields=[])
