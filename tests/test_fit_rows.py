"""fit's placement of resident data (read in place, no copy) and its per-epoch orders, against
NumPy indexing and NumPy's own permutation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_notes.data._shuffle import EpochOrders, aligned_permutation
from jaxopt_notes.training import _rows
from jaxopt_notes.training._rows import place_rows, take_rows

M = 1001
_rng = np.random.default_rng(0)
XY = _rng.standard_normal((M, 7)).astype(np.float32)
BIG = _rng.standard_normal((M + 20, 7)).astype(np.float32)
IDX = np.array([M - 1, 0, 17, M - 12, 500, M - 5, 3], np.int32)  # the last rows are cut short in flat


def gathered(X, Y):
    buffers_x, buffers_y, layout = place_rows(X, Y)
    take = jax.jit(lambda a, b, i: take_rows((a, b), layout, i))
    return (buffers_x, buffers_y, layout), take(buffers_x, buffers_y, jnp.asarray(IDX))


def flat_address(buffer):
    flat = buffer[0] if isinstance(buffer, tuple) else buffer
    return flat.unsafe_buffer_pointer()


@pytest.mark.parametrize(
    "make",
    [
        lambda A: (A[:, :5].copy(), A[:, 5].copy()),  # two arrays of their own
        lambda A: (A[:, :5].reshape(M, 5, 1).copy(), A[:, 5:].copy()),  # row shapes kept
        lambda A: (A[:, :5], A[:, 5]),  # column views of one array
        lambda A: (A[:, 1:4], A[:, 5]),  # views that do not start at the row's start
        lambda A: (A[:, 5], A[:, :3]),  # X after Y in the row
        lambda A: (A[:, :5].copy(), None),  # no Y
        lambda A: (BIG[10 : M + 10, :5], BIG[5 : M + 5, 6]),  # other rows of one array: not joined
        lambda A: (A[:, :5].astype(np.float64), A[:, 5].copy()),  # a dtype JAX converts: copied
        lambda A: (A[::2, :5].repeat(2, axis=0)[:M], A[:, 5].copy()),  # a copy of its own
        lambda A: (np.asfortranarray(A[:, :5]), A[:, 5].copy()),  # rows not contiguous: copied
        lambda A: (jnp.asarray(A[:, :5]), jnp.asarray(A[:, 5])),  # JAX arrays, gathered as they are
    ],
)
def test_placed_rows_equal_numpy_indexing(make):
    X, Y = make(XY)
    _, (x, y) = gathered(X, Y)
    np.testing.assert_array_equal(x, np.asarray(X, np.float32)[IDX])
    if Y is None:
        assert y is None
    else:
        np.testing.assert_array_equal(y, np.asarray(Y)[IDX])


def test_caller_memory_is_read_in_place():
    X, Y = XY[:, :5].copy(), XY[:, 5].copy()
    (bx, by, layout), _ = gathered(X, Y)
    for buffer, array in ((bx, X), (by, Y)):  # the 64-byte boundary at or just below the array
        assert 0 <= array.ctypes.data - flat_address(buffer) < 64
    (shared, none, layout), _ = gathered(XY[:, :5], XY[:, 5])
    assert none is None and layout.x.buffer == layout.y.buffer == 0  # one buffer, one gather
    assert 0 <= XY.ctypes.data - flat_address(shared) < 64
    X[IDX[2]] = 99.0  # aliased: a change the caller makes shows (fit reads it during its call)
    np.testing.assert_array_equal(gathered(X, Y)[1][0][2], np.full(5, 99.0, np.float32))


def test_compiled_code_does_not_depend_on_where_an_array_starts():
    raw = np.arange(M * 5 + 64, dtype=np.float32)
    idx = jnp.asarray(IDX)
    for k in range(16):  # every offset from a 64-byte boundary
        X = raw[k : k + M * 5].reshape(M, 5)
        bx, _, layout = place_rows(X, None)
        assert layout == place_rows(raw[: M * 5].reshape(M, 5), None)[2]
        assert [a.shape for a in bx] == [(M * 5,), (), (5 + 16,)]  # shapes of m and width only
        np.testing.assert_array_equal(take_rows((bx, None), layout, idx)[0], X[IDX])


@pytest.mark.parametrize("m", [1, 2, 1000, 1 << 20 | 12345])
def test_aligned_permutation_is_numpys_permutation(m):
    seed = np.random.SeedSequence([7, 3])
    order = aligned_permutation(m, seed)
    assert order.dtype == np.int32 and order.ctypes.data % 64 == 0
    np.testing.assert_array_equal(order, np.random.default_rng(np.random.SeedSequence([7, 3])).permutation(m))
    np.testing.assert_array_equal(aligned_permutation(m, None), np.arange(m))


def test_epoch_orders_cut_numpys_permutations_and_keep_the_first():
    m, batch = 103, 10
    orders = EpochOrders(m, batch, 5, range(0, 3), drop_remainder=False, shuffle=True)
    drawn = [orders.order(epoch) for epoch in range(3)]
    orders.close()
    for epoch, (order, rest) in enumerate(drawn):
        perm = np.random.default_rng(np.random.SeedSequence([5, epoch])).permutation(m)
        np.testing.assert_array_equal(order, perm[:100].reshape(10, 10))
        np.testing.assert_array_equal(rest, perm[100:])
    again, rest = EpochOrders(m, batch, 5, range(0, 1), drop_remainder=True, shuffle=True).order(0)
    assert rest is None and np.shares_memory(again, drawn[0][0])  # kept, not drawn again
    other, _ = EpochOrders(m, batch, 6, range(0, 1), drop_remainder=True, shuffle=True).order(0)
    assert not np.shares_memory(other, drawn[0][0])
    np.testing.assert_array_equal(
        other.ravel(), np.random.default_rng(np.random.SeedSequence([6, 0])).permutation(m)[:100]
    )
    in_order, _ = EpochOrders(m, m, 5, range(0, 1), drop_remainder=False, shuffle=False).order(0)
    np.testing.assert_array_equal(in_order.ravel(), np.arange(m))


def test_data_that_must_be_copied_is_copied_once_side_by_side(monkeypatch):
    X, Y = np.asfortranarray(XY[:, :5]), XY[:, 5].astype(np.float64)  # neither readable in place
    (bx, by, layout), (x, y) = gathered(X, Y)
    assert by is None and layout.x.buffer == layout.y.buffer == 0 and not layout.x.windowed
    np.testing.assert_array_equal(x, X[IDX])
    np.testing.assert_array_equal(y, Y[IDX].astype(np.float32))
    monkeypatch.setattr(_rows, "_MAX_ELEMENTS", M * 5)  # window starts would overflow: copied
    X = XY[:, :5].copy()
    (bx, _, layout), (x, _) = gathered(X, None)
    assert not layout.x.windowed and bx.shape == X.shape
    np.testing.assert_array_equal(x, X[IDX])
