"""Where :func:`~jaxopt_notes.fit` keeps resident data, and how a minibatch's rows are gathered.

The caller's NumPy arrays are not copied. XLA on a CPU aliases a host buffer only from a
64-byte boundary, while NumPy puts a large array 16 bytes past a page boundary, so the
buffer ``fit`` hands XLA starts at the 64-byte boundary just below the caller's first
element (in the same page: the few bytes before it are never read) and is read as flat
memory: row i is the window of ``width`` elements at ``offset + i * width`` (the offset is
traced, and the few elements the flat buffer cuts at the end come from a small copy, so
arrays at any address share compiled code). When X and Y are
column views of one array (``XY[:, :d]``, ``XY[:, d]``), the rows of that array are gathered
once, whole, and split: one gather of whole rows instead of two, with no copy at all.

A copy is made only where XLA cannot read the caller's memory: a dtype JAX does not hold
(float64 without ``jax_enable_x64``), rows that are not contiguous, or more than 2**31 - 1
elements in one buffer (window starts are int32). If both X and Y must be copied and share a
dtype, they are copied once, side by side, into 2 MiB-aligned memory (:func:`join_rows`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_ALIGN = 64
_HUGE_PAGE = 2 * 2**20
_MAX_ELEMENTS = 2**31 - 1
_TAIL = 16


class Rows(NamedTuple):
    """Where one array's rows sit in a placed buffer (static, part of the compiled key).

    ``buffer``: 0 or 1, which of the two placed buffers; ``windowed``: False when that buffer
    is an array gathered by rows, True when it is ``(flat memory, offset, last rows)`` (see
    ``_alias``), row i starting at ``offset + i * width``; ``width``: elements per buffer row;
    ``start``: the array's first element within a buffer row; ``shape``: its row shape."""

    buffer: int
    windowed: bool
    width: int
    start: int
    shape: tuple[int, ...]


class Layout(NamedTuple):
    """Where X's rows and Y's rows (None without Y) sit in the two placed buffers."""

    x: Rows
    y: Rows | None


def join_rows(X: Any, Y: Any) -> tuple[np.ndarray, Layout] | None:
    """X's and Y's rows side by side in one new 2 MiB-aligned ``(m, x_columns + y_columns)``
    NumPy array, and the :class:`Layout` that splits them; None when their dtypes differ as JAX
    holds them. ``fit`` joins only data it must copy anyway: one gather of whole rows beats two,
    and the aligned copy is aliased by ``jax.device_put`` and sits on transparent huge pages."""
    dtype = jax.dtypes.canonicalize_dtype(X.dtype)
    if jax.dtypes.canonicalize_dtype(Y.dtype) != dtype:
        return None
    m = X.shape[0]
    x_columns = math.prod(X.shape[1:])
    width = x_columns + math.prod(Y.shape[1:])
    raw = np.empty(m * width * dtype.itemsize + _HUGE_PAGE, np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    joined = raw[start : start + m * width * dtype.itemsize].view(dtype).reshape(m, width)
    joined[:, :x_columns] = np.reshape(X, (m, x_columns))
    joined[:, x_columns:] = np.reshape(Y, (m, width - x_columns))
    layout = Layout(_row_spec(0, False, width, 0, X), _row_spec(0, False, width, x_columns, Y))
    return joined, layout


def _row_spec(buffer: int, windowed: bool, width: int, start: int, A: Any) -> Rows:
    return Rows(buffer, windowed, width, start, tuple(int(n) for n in A.shape[1:]))


def _owner(A: np.ndarray) -> np.ndarray:
    while isinstance(A.base, np.ndarray):
        A = A.base
    return A


def _region(arrays: list[np.ndarray]) -> tuple[int, int, list[int]] | None:
    """``(address, width, starts)`` when every array's rows lie in one run of m equally long
    rows of caller memory (``width`` elements each, from ``address``) at element ``starts``
    within a row; None when they do not, when JAX would convert their dtype, or when XLA
    could not read them in place (see :func:`_alias`)."""
    first = arrays[0]
    dtype, m, row_stride = first.dtype, first.shape[0], first.strides[0] if first.ndim else 0
    owner = _owner(first)
    for A in arrays:
        inner = np.empty(A.shape[1:], dtype).strides
        if (
            not isinstance(A, np.ndarray)
            or A.dtype != dtype
            or jax.dtypes.canonicalize_dtype(dtype) != dtype
            or not A.flags.aligned
            or (A.ndim > 1 and A.strides[1:] != inner)
            or (m > 1 and A.strides[0] != row_stride)
            or _owner(A) is not owner
        ):
            return None
    if not (owner.flags.c_contiguous or owner.flags.f_contiguous):
        return None
    row_bytes = max(math.prod(A.shape[1:]) * dtype.itemsize for A in arrays)
    row_stride = row_bytes if m == 1 and len(arrays) == 1 else row_stride
    if row_stride <= 0 or row_stride % dtype.itemsize:
        return None
    low, high = np.lib.array_utils.byte_bounds(owner)
    starts = [A.ctypes.data for A in arrays]
    ends = [A.ctypes.data + math.prod(A.shape[1:]) * dtype.itemsize for A in arrays]
    address = min(min(starts), high - m * row_stride)
    if address < max(max(ends) - row_stride, low) or (min(starts) - address) % dtype.itemsize:
        return None
    if address % _ALIGN % dtype.itemsize or m * row_stride // dtype.itemsize + _ALIGN > _MAX_ELEMENTS:
        return None  # XLA could not start at the boundary below, or window starts overflow int32
    return address, row_stride // dtype.itemsize, [(start - address) // dtype.itemsize for start in starts]


class _Memory:
    """A NumPy view of ``size`` elements of caller memory from ``address``, keeping ``owner`` alive."""

    def __init__(self, owner: np.ndarray, address: int, size: int, dtype: np.dtype):
        self.owner = owner
        self.__array_interface__ = {"data": (address, True), "shape": (size,), "typestr": dtype.str, "version": 3}


def _alias(owner: np.ndarray, address: int, m: int, width: int, dtype: np.dtype, sharding: Any) -> Any:
    """``(flat, offset, last)`` placed for ``m`` rows of ``width`` elements at ``address``
    (a :func:`_region`). ``flat`` aliases the ``m * width`` elements from
    the 64-byte boundary at or below ``address``, so it ends ``offset`` elements short of the
    data (never past it); ``last`` is a copy of the data's last ``width + 16`` elements, for
    the rows ``flat`` cuts. Every shape depends on m and width only, never on the address, so
    compiled code is shared by arrays wherever they start (a different shape would recompile)."""
    lead, size = address % _ALIGN, m * width
    flat = np.asarray(_Memory(owner, address - lead, size, dtype))
    last = np.array(np.asarray(_Memory(owner, address, size, dtype))[-min(size, width + _TAIL) :])
    return jax.device_put((flat, np.int32(lead // dtype.itemsize), last), sharding, may_alias=True)


def _place_group(arrays: list[Any], buffer: int, sharding: Any) -> tuple[Any, list[Rows]] | None:
    """One buffer reading every NumPy array of ``arrays`` in place and their :class:`Rows`, or None."""
    if not all(isinstance(A, np.ndarray) for A in arrays) or (region := _region(arrays)) is None:
        return None
    address, width, starts = region
    placed = _alias(_owner(arrays[0]), address, arrays[0].shape[0], width, arrays[0].dtype, sharding)
    return placed, [_row_spec(buffer, True, width, start, A) for A, start in zip(arrays, starts, strict=True)]


def _placed_alone(A: Any, buffer: int, sharding: Any) -> tuple[Any, Rows]:
    """A read in place if it can be, else placed as it is (a JAX array) or copied."""
    placed = _place_group([A], buffer, sharding)
    if placed is not None:
        return placed[0], placed[1][0]
    data = jax.device_put(A, sharding)
    return data, _row_spec(buffer, False, math.prod(data.shape[1:]), 0, data)


def place_rows(X: Any, Y: Any, sharding: Any = None) -> tuple[Any, Any, Layout]:
    """``(buffer 0, buffer 1, layout)``: X and Y placed for the compiled run, read in place
    where XLA can (see the module's docstring), and where :func:`take_rows` finds their rows."""
    if Y is None:
        data, rows = _placed_alone(X, 0, sharding)
        return data, None, Layout(rows, None)
    if (shared := _place_group([X, Y], 0, sharding)) is not None:
        data, (x_rows, y_rows) = shared
        return data, None, Layout(x_rows, y_rows)
    copied = [A for A in (X, Y) if isinstance(A, np.ndarray) and _region([A]) is None]
    if len(copied) == 2 and (joined := join_rows(X, Y)) is not None:
        data, layout = joined
        return jax.device_put(data, sharding, may_alias=True), None, layout
    (x_data, x_rows), (y_data, y_rows) = _placed_alone(X, 0, sharding), _placed_alone(Y, 1, sharding)
    return x_data, y_data, Layout(x_rows, y_rows)


def _plain_rows(A: jax.Array, idx: jax.Array) -> jax.Array:
    # The indices are a permutation of range(m): in bounds and unique, so XLA may skip the
    # clamping a general gather needs.
    return A.at[idx].get(mode="promise_in_bounds", unique_indices=True)


def _gather(buffer: Any, spec: Rows, idx: jax.Array) -> jax.Array:
    """Rows ``idx`` of a placed buffer as ``(len(idx), width)``."""
    if not spec.windowed:
        return _plain_rows(buffer, idx).reshape(idx.shape[0], spec.width)
    flat, offset, last = buffer
    size, width = flat.shape[0], spec.width
    first = idx * width  # of each row in the data; in flat it is at first + offset
    cut = first + offset + width > size  # the last few rows, which flat cuts short
    rows = _windows(flat, jnp.minimum(first + offset, size - width), width)

    def mend(rows: jax.Array) -> jax.Array:
        return jnp.where(cut[:, None], _windows(last, jnp.maximum(first - (size - last.shape[0]), 0), width), rows)

    # Only the few minibatches holding one of the last rows need mending: skip it in the others.
    return jax.lax.cond(jnp.any(cut), mend, lambda rows: rows, rows)


def _windows(flat: jax.Array, starts: jax.Array, width: int) -> jax.Array:
    """``flat[s : s + width]`` for each start ``s`` (all in bounds), as ``(len(starts), width)``."""
    dimensions = jax.lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(), start_index_map=(0,))
    mode = jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS
    return jax.lax.gather(flat, starts[:, None], dimensions, (width,), mode=mode)


def _columns(block: jax.Array, spec: Rows) -> jax.Array:
    columns = math.prod(spec.shape)
    return block[:, spec.start : spec.start + columns].reshape(-1, *spec.shape)


def take_rows(buffers: tuple[Any, Any], layout: Layout | None, idx: jax.Array) -> tuple[jax.Array, Any]:
    """X's and Y's rows ``idx`` from the buffers :func:`place_rows` placed (a buffer holding
    both is gathered once), or, with ``layout`` None, from plain X and Y arrays."""
    if layout is None:
        X, Y = buffers
        return _plain_rows(X, idx), None if Y is None else _plain_rows(Y, idx)
    specs = [layout.x] if layout.y is None else [layout.x, layout.y]
    blocks: dict[int, jax.Array] = {}
    for spec in specs:
        if spec.buffer not in blocks:
            blocks[spec.buffer] = _gather(buffers[spec.buffer], spec, idx)
    x = _columns(blocks[layout.x.buffer], layout.x)
    return x, None if layout.y is None else _columns(blocks[layout.y.buffer], layout.y)
