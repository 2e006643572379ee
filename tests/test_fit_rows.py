"""fit's placement of resident data (read in place, no copy) against NumPy indexing: every dtype
at every start offset in a 64-byte block, every memory layout, data split into blocks, and
64-bit dtypes converted per minibatch exactly as JAX converts a whole array."""

import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from jaxopt_notes.training import _rows
from jaxopt_notes.training._rows import place_rows, take_rows

M = 200
WIDTHS = range(1, 71)
_order = np.random.default_rng(0).permutation(M).astype(np.int32)
LATE = _order[_order >= M // 2]  # rows near the end: reads past the aliased buffer's end are mended
EARLY = _order[_order < M // 2]  # none near the end: the mending is skipped
# The exhaustive test compiles one gather per dtype and width; XLA's optimisations do not
# change what a gather returns, and skipping them makes compiling several times faster.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def bits(a):
    """An array's raw bits, so that NaNs with different payloads (or -0.0 and 0.0) differ."""
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}") if a.dtype.kind in "fcV" else a


def reference(A, idx):
    """NumPy's rows ``idx``, as JAX holds them (float64 narrowed to float32 without x64, etc.;
    JAX refuses a non-native byte order, which fit reads as NumPy's ``astype`` to native)."""
    rows = np.asarray(A)[idx]
    with warnings.catch_warnings():
        # Random bits narrowed from float64 to float32 overflow to inf or are NaN here as in fit's
        # rows (compared bit for bit, so they count too): NumPy's warning about it is expected.
        warnings.filterwarnings("ignore", "(overflow|invalid value) encountered in cast", RuntimeWarning)
        return np.asarray(jax.device_put(rows.astype(rows.dtype.newbyteorder("="))))


def at_byte(offset, shape, dtype, rng):
    """A C-ordered array of random bits starting ``offset`` bytes past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + offset
    raw[start : start + nbytes] = rng.integers(0, 2 if dtype == np.bool_ else 256, nbytes)
    return raw[start : start + nbytes].view(dtype).reshape(shape)


DTYPE_CASES = [
    (np.float16, False),
    (ml_dtypes.bfloat16, False),
    (np.float32, False),
    (np.float64, True),  # held as it is under x64
    (np.float64, False),  # narrowed to float32, one minibatch at a time
    (np.int64, False),  # integer labels, narrowed to int32
    (np.int32, False),
    (np.uint8, False),  # images
    (np.bool_, False),
]


@pytest.mark.parametrize(("dtype", "x64"), DTYPE_CASES, ids=[f"{np.dtype(d)}{'-x64' * x}" for d, x in DTYPE_CASES])
def test_every_dtype_start_offset_and_width_reads_numpys_rows(dtype, x64):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(1)
    with jax.enable_x64(x64):
        for width in WIDTHS:
            take = jax.jit(take_rows, static_argnums=1, compiler_options=QUICK_COMPILE)
            keys = set()
            for offset in range(0, 64, dtype.itemsize):  # every element start in a 64-byte block
                A = at_byte(offset, (M, width), dtype, rng)
                bx, by, layout = place_rows(A, None)
                keys.add((layout, tuple((a.shape, a.dtype) for a in jax.tree.leaves(bx))))
                for idx in (LATE, EARLY):
                    x, _ = take((bx, by), layout, jnp.asarray(idx))
                    expected = reference(A, idx)
                    assert x.dtype == expected.dtype and x.shape == expected.shape
                    wrong = np.flatnonzero(np.any(bits(x) != bits(expected), axis=1))
                    assert not len(wrong), f"{dtype} width {width} at byte {offset}: rows {idx[wrong]} wrong"
            # What keys the compiled gather depends on m and the width only, not on where the
            # array starts: one compiled gather serves every offset.
            assert len(keys) == 1


def views(XY, Z):
    """(X, Y) pairs in every memory layout fit reads in place, built from (M, 9) float32 XY and
    a structured array Z."""
    return {
        "two arrays of their own": (XY[:, :5].copy(), XY[:, 5].copy()),
        "row shapes kept": (XY[:, :6].reshape(M, 3, 2).copy(), XY[:, 6:].copy()),
        "column views of one array": (XY[:, :5], XY[:, 5]),
        "views not at the row's start": (XY[:, 1:4], XY[:, 5]),
        "Y before X in the row": (XY[:, 5], XY[:, :3]),
        "no Y": (XY[:, :5].copy(), None),
        "other rows of one array": (XY[10:, :5][: M - 20], XY[5:, 6][: M - 20]),
        "far apart in one row": (XY[:, :2], XY[:, 8]),
        "float64 narrowed per minibatch": (XY[:, :5].astype(np.float64), XY[:, 5].copy()),
        "int64 labels": (XY[:, :5].copy(), (XY[:, 5] > 0).astype(np.int64)),
        "column-major": (np.asfortranarray(XY[:, :5]), XY[:, 5].copy()),
        "column-major float64": (np.asfortranarray(XY[:, :5].astype(np.float64)), None),
        "rows reversed": (XY[::-1, :5], XY[::-1, 5]),
        "every other column": (XY[:, ::2], XY[:, 1]),
        "columns reversed": (XY[:, 4::-1], None),
        "every third row": (XY[::3, :4], XY[::3, 4]),
        "one row repeated (stride 0)": (np.broadcast_to(XY[0, :4], (M, 4)), XY[:, 4]),
        "structured fields of mixed dtype": (Z["x"], Z["y"]),
        "misaligned float32": (at_byte(1, (M, 3), np.float32, np.random.default_rng(2)), None),
        "bytes of a 3-D image": (np.ascontiguousarray((XY[:, :8] * 40).astype(np.uint8).reshape(M, 2, 2, 2)), XY[:, 8]),
        "a single row": (XY[:1, :5], XY[:1, 5]),
        "JAX arrays, gathered as they are": (jnp.asarray(XY[:, :5]), jnp.asarray(XY[:, 5])),
        "big-endian": (XY[:, :5].astype(">f4"), (XY[:, 5] * 1e6).astype(">i8")),
        "big-endian complex": ((XY[:, :4] + 1j * XY[:, 4:8]).astype(">c16"), None),
        "strings: copied, as JAX takes them": (XY[:, :5].copy(), XY[:, 5].astype("U8").astype(np.float32)),
    }


def layout_cases():
    rng = np.random.default_rng(3)
    XY = rng.standard_normal((M, 9)).astype(np.float32)
    Z = np.zeros(M, dtype=[("x", np.float32, (3,)), ("flag", np.bool_), ("y", np.int64)])  # packed: 21-byte rows
    Z["x"], Z["flag"], Z["y"] = XY[:, :3], XY[:, 3] > 0, rng.integers(-(2**40), 2**40, M)
    return views(XY, Z)


@pytest.mark.parametrize("name", list(layout_cases()))
def test_every_layout_reads_numpys_rows(name):
    X, Y = layout_cases()[name]
    m = len(X)
    idx = np.random.default_rng(4).permutation(m).astype(np.int32)
    whole = place_rows(X, Y)
    regions = [region for region in whole[2].regions if region is not None]
    # The same data split into three or four blocks of whole rows (a block must hold one row
    # and the 63 bytes before the 64-byte boundary below it).
    block_units = max(abs(r.stride) * r.rows // 3 + r.piece + 64 for r in regions) if regions else None
    for bx, by, layout in (whole, *([blocked(X, Y, block_units)] if block_units else [])):
        x, y = jax.jit(take_rows, static_argnums=1)((bx, by), layout, jnp.asarray(idx))
        np.testing.assert_array_equal(bits(x), bits(reference(X, idx)))
        if Y is None:
            assert y is None
        else:
            np.testing.assert_array_equal(bits(y), bits(reference(Y, idx)))


def blocked(X, Y, block_units):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_rows, "_MAX_UNITS", block_units)
        return place_rows(X, Y)


def test_blocks_split_rows_and_each_row_comes_from_its_block():
    rng = np.random.default_rng(5)
    XY = rng.standard_normal((1001, 7)).astype(np.float32)
    for X, Y in ((XY[:, :5], XY[:, 5]), (XY[::-1, 1:4], None), (XY[:, :6].astype(np.float64), XY[:, 6].copy())):
        bx, by, layout = blocked(X, Y, 7 * 1001 // 3)  # three blocks of whole rows, or more
        region = layout.regions[0]
        assert region is not None and len(bx) == -(-len(X) // region.block_rows) >= 3
        for flat, _, _ in bx:  # each block's buffer stays under the limit
            assert flat.size < 7 * 1001 // 3
        take = jax.jit(take_rows, static_argnums=1)
        for idx in (rng.permutation(len(X)), np.arange(len(X))[::-1], [0, 1000, 285, 286, 287, 571, 572, 999]):
            idx = np.asarray(idx, np.int32)
            x, y = take((bx, by), layout, jnp.asarray(idx))
            np.testing.assert_array_equal(x, reference(X, idx))
            if Y is not None:
                np.testing.assert_array_equal(y, reference(Y, idx))


def test_caller_memory_is_read_in_place():
    XY = np.random.default_rng(6).standard_normal((M, 7)).astype(np.float32)
    X, Y = XY[:, :5].copy(), XY[:, 5].copy()

    def first_block_address(buffer):
        return buffer[0][0].unsafe_buffer_pointer()

    bx, by, separate = place_rows(X, Y)
    for buffer, array in ((bx, X), (by, Y)):  # the 64-byte boundary at or just below the array
        assert 0 <= array.ctypes.data - first_block_address(buffer) < 64
    shared, none, layout = place_rows(XY[:, :5], XY[:, 5])
    assert none is None and layout.x.buffer == layout.y.buffer == 0  # one buffer, one gather
    assert 0 <= XY.ctypes.data - first_block_address(shared) < 64
    wide = XY[:, :5].astype(np.float64)
    bw, _, _ = place_rows(wide, None)
    assert 0 <= wide.ctypes.data - first_block_address(bw) < 64  # float64: read in place, narrowed per minibatch
    idx = jnp.asarray([3, 0])
    X[3] = 99.0  # aliased: a change the caller makes shows (fit reads it during its call)
    np.testing.assert_array_equal(take_rows((bx, by), separate, idx)[0][0], np.full(5, 99.0))


BIGGEST = float(np.finfo(np.float32).max)
FLOAT64_EDGES = [  # ties, the subnormal range and its edges, overflow, specials
    0.0, -0.0, 1.0, -1.5, np.pi, 1 / 3, 1 + 2.0**-24, 1 + 3 * 2.0**-24, 1 + 2.0**-24 + 2.0**-52,
    2.0**-126, 2.0**-127, 2.0**-149, 2.0**-150, 2.0**-151, 3 * 2.0**-151, 2.0**-150 * (1 + 2.0**-30),
    1.5 * 2.0**-149, 2.5 * 2.0**-149, 2.0**-126 * (1 - 2.0**-25), 1e-300, 5e-324,
    BIGGEST, BIGGEST * (1 + 2.0**-25), BIGGEST * (1 + 2.0**-24), 2.0**128, 1e300, np.inf, np.nan,
]  # fmt: skip


def test_float64_is_narrowed_exactly_as_numpy_narrows_it():
    rng = np.random.default_rng(7)
    patterns = rng.integers(0, 2**64, 20000, dtype=np.uint64).view(np.float64)  # every class, uniformly
    in_range = rng.uniform(-1, 1, 20000) * 2.0 ** rng.integers(-160, 130, 20000)
    signalling = np.array([0x7FF0000000000001, 0x7FF4000000000000, 0xFFF8000000000123], np.uint64).view(np.float64)
    values = np.concatenate([FLOAT64_EDGES, -np.asarray(FLOAT64_EDGES), patterns, in_range, signalling])
    X = values[: len(values) // 4 * 4].reshape(-1, 4)
    bx, _, layout = place_rows(X, None)
    idx = np.arange(len(X), dtype=np.int32)
    x, _ = jax.jit(lambda b, i: take_rows((b, None), layout, i))(bx, jnp.asarray(idx))
    with np.errstate(over="ignore", invalid="ignore"):
        expected = X.astype(np.float32)
    np.testing.assert_array_equal(bits(x), bits(expected))


def test_fit_over_float16_rows_off_a_boundary_trains_as_over_a_jax_array():
    # The case that once went wrong: (200, 1) float16 rows 40 bytes past a 64-byte boundary,
    # whose last rows were read from memory after the data.
    import jaxopt_notes as jn

    rng = np.random.default_rng(8)
    X = at_byte(40, (M, 1), np.float16, rng)
    X[:] = rng.standard_normal((M, 1)) * 10
    Y = (3 * X[:, 0].astype(np.float32) + 1).astype(np.float32)

    def loss(p, x, y):
        return jnp.mean((x[:, 0].astype(jnp.float32) * p["w"] + p["b"] - y) ** 2)

    params = {"w": jnp.zeros(()), "b": jnp.zeros(())}
    runs = [
        jn.fit(loss, params, jn.sgd(1e-3), x, y, batch_size=16, epochs=4, seed=3, progress=False)[1].epoch_cost
        for x, y in ((X, Y), (jnp.asarray(X), jnp.asarray(Y)))
    ]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)


def test_fit_over_rows_split_into_blocks_trains_as_over_jax_arrays(monkeypatch):
    import jaxopt_notes as jn

    rng = np.random.default_rng(9)
    XY = rng.standard_normal((1001, 7)).astype(np.float32)
    XY[:, 5] = XY[:, :5] @ np.arange(1.0, 6.0) > 0
    params = {"w": jnp.zeros(5), "b": jnp.zeros(())}

    def loss(p, x, y):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    def costs(X, Y):
        return jn.fit(loss, params, jn.adam(0.05), X, Y, batch_size=64, epochs=3, seed=4, progress=False)[1].cost

    reference = costs(jnp.asarray(XY[:, :5]), jnp.asarray(XY[:, 5]))
    monkeypatch.setattr(_rows, "_MAX_UNITS", 7 * 1001 // 3)  # three blocks and a bit
    assert len(place_rows(XY[:, :5], XY[:, 5])[0]) == 4
    np.testing.assert_allclose(costs(XY[:, :5], XY[:, 5]), reference, rtol=1e-6)
