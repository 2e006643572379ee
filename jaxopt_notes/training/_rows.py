"""Where :func:`~jaxopt_notes.fit` keeps resident data, and how a minibatch's rows are gathered.

The caller's NumPy arrays are never copied: XLA reads their memory in place, and every
minibatch's rows are gathered from it inside the compiled step.

*Units.* The memory is read as a flat array of units: the array's own dtype when every
element starts on a multiple of its size (the usual case), else unsigned words of the
largest size that divides every element's address. A dtype JAX would convert (float64,
int64 without ``jax_enable_x64``) is read as its raw words and converted one minibatch at a
time (:mod:`._row_units`), so a float64 data set never exists as a whole float32 copy.

*Rows.* Row i of an array starts ``i * stride`` units after row 0. When a row's elements lie
close together (any C-ordered row, and column views such as ``XY[:, :d]`` and ``XY[:, d]``,
which share one read) a minibatch gathers one *window* of units per row and picks the
elements out of it; otherwise (a column-major array, whose row is spread over the whole
array) each element is gathered on its own. Strides may be any multiple of the unit,
negative ones included.

*Alignment.* XLA on a CPU aliases host memory only from a 64-byte boundary, so the buffer
handed to XLA starts at the boundary at or below the data's first unit (the bytes before it
share its cache line, hence its page: reading them is safe) and has the data's own length, so
it ends up to ``64 / unit size - 1`` units short of the data's end. Reads that would run into
that cut are taken from ``last``, a small copy of the data's final units: as many as the
largest cut plus one read. Shapes depend on the data's size and strides only, never on its
address, so compiled code is shared by arrays wherever they start.

*Blocks.* Window starts are int32, so data of more than 2**31 - 1 units is split into blocks
of whole rows, each under that size and read in place on its own. A minibatch gathers from
every block and keeps each row from the block that holds it; a row another block holds is
read as that block's first row instead, which stays in cache, so the extra blocks cost
little beyond their arithmetic.

Only what XLA cannot address this way is placed as a JAX array (a copy): non-NumPy input,
dtypes :func:`._row_units.held_dtype` does not decode (strings, objects, float8), and
arrays whose root is not one contiguous allocation (``as_strided`` views) or one of whose
rows alone spans more than a block.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes.training import _row_units

_ALIGN = 64
_MAX_UNITS = 2**31 - 1


class Region(NamedTuple):
    """How a placed buffer reads caller memory (static, part of the compiled key).

    The buffer is a tuple of blocks ``(flat, lead, last)``, block b holding rows
    ``[b * block_rows, (b + 1) * block_rows)``. ``unit``: the dtype the memory is read as;
    ``stride``: units from one row to the next; ``piece``: units read at each position;
    ``elements``: None when each row is read as one window of ``piece`` units from its lowest
    unit, else the positions (in units, from the row's lowest unit) of its elements, each
    read alone (``piece`` units, one element)."""

    unit: np.dtype
    rows: int
    stride: int
    block_rows: int
    piece: int
    elements: tuple[int, ...] | None


class Rows(NamedTuple):
    """Where one array's rows sit in a placed buffer (static, part of the compiled key).

    ``buffer``: 0 or 1, which placed buffer; ``dtype``: the caller's dtype (decoded from the
    units); ``shape``: the row shape; ``start``: units from a gathered row's start to the
    array's first element; ``positions``: None when the elements follow one another from
    ``start``, else each element's first unit in the gathered row."""

    buffer: int
    dtype: np.dtype
    shape: tuple[int, ...]
    start: int
    positions: tuple[int, ...] | None


class Layout(NamedTuple):
    """Where X's rows and Y's rows (None without Y) sit; ``regions[b]`` says how buffer b
    reads caller memory, None for a JAX array gathered by rows."""

    x: Rows
    y: Rows | None
    regions: tuple[Region | None, Region | None]


class _Geometry(NamedTuple):
    """One NumPy array's rows in bytes: row 0's first element at ``address``, rows
    ``stride`` apart, element k of a row at ``address + offsets[k]``, every element of row 0
    within ``[low, high)``."""

    array: np.ndarray
    address: int
    stride: int
    offsets: np.ndarray
    low: int
    high: int


def _root(A: np.ndarray) -> np.ndarray:
    while isinstance(A.base, np.ndarray):
        A = A.base
    return A


def _geometry(A: Any) -> _Geometry | None:
    """Row geometry of ``A`` when its memory can be read in place, else None."""
    if not isinstance(A, np.ndarray) or A.ndim == 0 or A.size == 0 or _row_units.held_dtype(A.dtype) is None:
        return None
    root = _root(A)
    if not (root.flags.c_contiguous or root.flags.f_contiguous):
        return None  # e.g. an as_strided view: the memory between its elements may not be its own
    inner = np.zeros((), np.int64)
    for size, stride in zip(A.shape[1:], A.strides[1:]):
        inner = (inner[..., None] + np.arange(size, dtype=np.int64) * stride).reshape(-1)
    offsets = inner.reshape(-1)
    address = A.ctypes.data
    stride = A.strides[0] if A.shape[0] > 1 else 0
    low, high = address + int(offsets.min()), address + int(offsets.max()) + A.itemsize
    rows_low, rows_high = (low + min(0, stride * (len(A) - 1)), high + max(0, stride * (len(A) - 1)))
    root_low, root_high = np.lib.array_utils.byte_bounds(root)
    if rows_low < root_low or rows_high > root_high:
        return None
    return _Geometry(A, address, stride, offsets, low, high)


def _unit(geometries: list[_Geometry], low: int) -> np.dtype:
    """The unsigned word memory is read as: the widest dividing every element's size and
    address (the elements' own size when they are aligned, as NumPy aligns them)."""
    common = _ALIGN - low % _ALIGN
    for g in geometries:
        common = math.gcd(common, g.array.itemsize, abs(g.stride), g.address - low, *np.unique(g.offsets % _ALIGN))
    if any(not g.array.dtype.isnative for g in geometries):
        common = 1  # bytes, put in native order one number at a time
    return _row_units.unit_dtype(common & -common)  # its largest power-of-two divisor


def _window_size(g: _Geometry) -> int:
    return g.high - g.low


def _reads_windows(geometries: list[_Geometry], low: int, high: int) -> bool:
    """Whether one window per row beats reading elements alone: the window wastes at most one
    cache line beyond what the elements need."""
    needed = sum(g.array.itemsize * math.prod(g.array.shape[1:]) for g in geometries)
    return high - low <= needed + _ALIGN or len(geometries) > 1


class _Plan(NamedTuple):
    """A region of caller memory to place: the :class:`Region`, each array's :class:`Rows`,
    the lowest address of row 0 and the bytes one row spans."""

    region: Region
    rows: list[Rows]
    row_low: int
    row_bytes: int


def _plan(geometries: list[_Geometry], buffer: int) -> _Plan | None:
    """How to read ``geometries`` (one array, or X and Y sharing rows) from one buffer, or None."""
    low, high = min(g.low for g in geometries), max(g.high for g in geometries)
    m, stride = len(geometries[0].array), geometries[0].stride
    unit = _unit(geometries, low + min(0, stride * (m - 1)))
    size = unit.itemsize
    windows = _reads_windows(geometries, low, high)
    rows, elements = [], None
    for g in geometries:
        positions = (g.address - low + g.offsets) // size  # of each element's first unit in the row
        if not windows:
            elements = tuple(int(p) for p in positions)
            rows.append(Rows(buffer, g.array.dtype, g.array.shape[1:], 0, None))
        elif np.all(np.diff(positions) == g.array.itemsize // size):
            rows.append(Rows(buffer, g.array.dtype, g.array.shape[1:], int(positions[0]), None))
        else:
            rows.append(Rows(buffer, g.array.dtype, g.array.shape[1:], 0, tuple(int(p) for p in positions)))
    row_units = (high - low) // size
    room = _MAX_UNITS - (_ALIGN // size - 1) - row_units  # rows beyond the first that a block may add
    if room < 0:
        return None  # one row alone spans more than a block
    block_rows = m if stride == 0 else min(m, room // (abs(stride) // size) + 1)
    piece = row_units if windows else geometries[0].array.itemsize // size
    return _Plan(Region(unit, m, stride // size, block_rows, piece, elements), rows, low, high - low)


class _Memory:
    """A NumPy view of ``size`` units of caller memory from ``address``, keeping ``owner`` alive."""

    def __init__(self, owner: np.ndarray, address: int, size: int, unit: np.dtype):
        self.owner = owner
        bytes_ = {"data": (address, True), "shape": (size * unit.itemsize,), "typestr": "|u1", "version": 3}
        self.__array_interface__ = bytes_


def _memory(owner: np.ndarray, address: int, size: int, unit: np.dtype) -> np.ndarray:
    return np.asarray(_Memory(owner, address, size, unit)).view(unit)


def _blocks(plan: _Plan, owner: np.ndarray) -> tuple[tuple[np.ndarray, np.int32, np.ndarray], ...]:
    """Each block's ``(flat, lead, last)``: ``flat`` its units from the 64-byte boundary at or
    below its lowest unit, as many as it holds; ``lead`` the units before its lowest; ``last``
    a copy of its final ``lead_max + piece`` units (all of them if fewer)."""
    region = plan.region
    size = region.unit.itemsize
    tail = _ALIGN // size - 1 + region.piece
    blocks = []
    for first in range(0, region.rows, region.block_rows):
        count = min(region.block_rows, region.rows - first)
        stride_bytes = region.stride * size
        low = plan.row_low + stride_bytes * (first if stride_bytes >= 0 else first + count - 1)
        units = (abs(stride_bytes) * (count - 1) + plan.row_bytes) // size
        lead = low % _ALIGN
        flat = _memory(owner, low - lead, units, region.unit)
        last = np.array(_memory(owner, low, units, region.unit)[-min(units, tail) :])
        blocks.append((flat, np.int32(lead // size), last))
    return tuple(blocks)


def _place_in_place(arrays: list[Any], buffer: int, sharding: Any) -> tuple[Any, Region, list[Rows]] | None:
    """One buffer reading every array of ``arrays`` in place, its :class:`Region` and their
    :class:`Rows`; None when that cannot be done (see the module docstring)."""
    geometries = [_geometry(A) for A in arrays]
    if any(g is None for g in geometries):
        return None
    known = [g for g in geometries if g is not None]
    if len(known) > 1 and not _share_rows(known):
        return None
    plan = _plan(known, buffer)
    if plan is None:
        return None
    placed = jax.device_put(_blocks(plan, known[0].array), sharding, may_alias=True)
    return placed, plan.region, plan.rows


def _share_rows(geometries: list[_Geometry]) -> bool:
    """Whether X and Y are parts of the same rows of one array (``XY[:, :d]``, ``XY[:, d]``),
    close enough that one window read per row serves both."""
    x, y = geometries
    if _root(x.array) is not _root(y.array) or x.stride != y.stride or len(x.array) != len(y.array):
        return False
    low, high = min(x.low, y.low), max(x.high, y.high)
    return high - low <= _window_size(x) + _window_size(y) + _ALIGN and (x.stride == 0 or high - low <= abs(x.stride))


def _placed_alone(A: Any, buffer: int, sharding: Any) -> tuple[Any, Region | None, Rows]:
    """A read in place if it can be, else placed as it is (a JAX array) or copied."""
    placed = _place_in_place([A], buffer, sharding)
    if placed is not None:
        return placed[0], placed[1], placed[2][0]
    data = jax.device_put(A, sharding)
    return data, None, Rows(buffer, np.dtype(data.dtype), tuple(data.shape[1:]), 0, None)


def place_rows(X: Any, Y: Any, sharding: Any = None) -> tuple[Any, Any, Layout]:
    """``(buffer 0, buffer 1, layout)``: X and Y placed for the compiled run, read in place
    where XLA can (see the module's docstring), and where :func:`take_rows` finds their rows."""
    if Y is None:
        data, region, rows = _placed_alone(X, 0, sharding)
        return data, None, Layout(rows, None, (region, None))
    if (shared := _place_in_place([X, Y], 0, sharding)) is not None:
        data, region, (x_rows, y_rows) = shared
        return data, None, Layout(x_rows, y_rows, (region, None))
    x_data, x_region, x_rows = _placed_alone(X, 0, sharding)
    y_data, y_region, y_rows = _placed_alone(Y, 1, sharding)
    return x_data, y_data, Layout(x_rows, y_rows, (x_region, y_region))


def _plain_rows(A: jax.Array, idx: jax.Array) -> jax.Array:
    # The indices are a permutation of range(m): in bounds and unique, so XLA may skip the
    # clamping a general gather needs.
    return A.at[idx].get(mode="promise_in_bounds", unique_indices=True)


def _windows(flat: jax.Array, starts: jax.Array, size: int) -> jax.Array:
    """``flat[s : s + size]`` for each start ``s`` (all in bounds), shaped ``starts.shape + (size,)``."""
    dimensions = jax.lax.GatherDimensionNumbers(
        offset_dims=(starts.ndim,), collapsed_slice_dims=(), start_index_map=(0,)
    )
    mode = jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS
    return jax.lax.gather(flat, starts[..., None], dimensions, (size,), mode=mode)


def _read(block: tuple[jax.Array, jax.Array, jax.Array], positions: jax.Array, piece: int) -> jax.Array:
    """``piece`` units from each of ``positions`` (counted from the block's lowest unit)."""
    flat, lead, last = block
    size, tail = flat.shape[0], last.shape[0]
    units = _windows(flat, jnp.minimum(positions + lead, size - piece), piece)
    cut = positions + lead + piece > size  # reads that run past flat's end: from the copy

    def mend(units: jax.Array) -> jax.Array:
        from_last = _windows(last, jnp.maximum(positions - (size - tail), 0), piece)
        return jnp.where(cut[..., None], from_last, units)

    # Only the few minibatches that read the data's last units need mending: skip it in the others.
    return jax.lax.cond(jnp.any(cut), mend, lambda units: units, units)


def _gather_region(blocks: tuple, region: Region, idx: jax.Array) -> jax.Array:
    """Rows ``idx`` of a region as ``(len(idx), units per gathered row)``."""
    result = None
    for b, block in enumerate(blocks):
        first = b * region.block_rows
        count = min(region.block_rows, region.rows - first)
        mine = (idx >= first) & (idx < first + count)
        local = idx - first if len(blocks) == 1 else jnp.where(mine, idx - first, 0)
        positions = local * region.stride + (0 if region.stride >= 0 else -region.stride * (count - 1))
        if region.elements is not None:
            positions = positions[:, None] + jnp.asarray(region.elements, jnp.int32)
        units = _read(block, positions, region.piece).reshape(idx.shape[0], -1)
        result = units if result is None else jnp.where(mine[:, None], units, result)
    assert result is not None
    return result


def _values(gathered: jax.Array, spec: Rows, unit: np.dtype) -> jax.Array:
    """One array's rows, decoded, from the gathered rows of its buffer."""
    per_element = spec.dtype.itemsize // unit.itemsize
    width = math.prod(spec.shape)
    if spec.positions is None:
        units = gathered[:, spec.start : spec.start + width * per_element]
    else:
        picks = np.asarray(spec.positions)[:, None] + np.arange(per_element)
        units = gathered[:, picks.reshape(-1)]
    units = units.reshape(gathered.shape[0], width, per_element)
    return _row_units.decode(units, spec.dtype).reshape(gathered.shape[0], *spec.shape)


def take_rows(buffers: tuple[Any, Any], layout: Layout | None, idx: jax.Array) -> tuple[jax.Array, Any]:
    """X's and Y's rows ``idx`` from the buffers :func:`place_rows` placed (a buffer holding
    both is gathered once), or, with ``layout`` None, from plain X and Y arrays."""
    if layout is None:
        X, Y = buffers
        return _plain_rows(X, idx), None if Y is None else _plain_rows(Y, idx)
    specs = [layout.x] if layout.y is None else [layout.x, layout.y]
    values = []
    gathered: dict[int, jax.Array] = {}
    for spec in specs:
        region = layout.regions[spec.buffer]
        if region is None:
            values.append(_plain_rows(buffers[spec.buffer], idx))
            continue
        if spec.buffer not in gathered:
            gathered[spec.buffer] = _gather_region(buffers[spec.buffer], region, idx)
        values.append(_values(gathered[spec.buffer], spec, region.unit))
    return values[0], None if layout.y is None else values[1]
