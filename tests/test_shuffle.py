"""fit's per-epoch orders: exactly uniform (chi-square over positions and over whole orders),
reproducible from (seed, epoch), the documented rule written out independently, handed out
in pieces that join into the same order, and a run over pieces resuming bit for bit."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.data import _shuffle
from jaxopt_notes.data._shuffle import EpochOrders, FitPermutation, aligned_permutation


def fits_rule(m, seed):
    """fit's documented rule from 2**20 rows, written out plainly: the seed's children; every
    row's byte from the first child's raw PCG64 draws; bucket b the rows whose byte lies in
    [FIT_BOUNDS[b], FIT_BOUNDS[b + 1]), in increasing order, shuffled by child b + 1; the
    buckets concatenated in order."""
    bounds = _shuffle.FIT_BOUNDS
    children = seed.spawn(len(bounds))
    draws = np.random.PCG64(children[0]).random_raw((m + 7) // 8)
    labels = [int(byte) for draw in draws for byte in int(draw).to_bytes(8, "little")][:m]
    order = []
    for bucket in range(len(bounds) - 1):
        members = np.array([i for i in range(m) if bounds[bucket] <= labels[i] < bounds[bucket + 1]], np.int64)
        np.random.default_rng(children[bucket + 1]).shuffle(members)
        order.extend(members.tolist())
    return np.array(order)


def joined(orders, epoch):
    """An epoch's pieces joined back into one order, and their numbers of steps."""
    pieces = list(orders.pieces(epoch))
    assert all(rest is None for _, rest in pieces[:-1])  # the remainder comes with the last piece
    assert all(order.ctypes.data % 64 == 0 for order, _ in pieces)
    rest = pieces[-1][1]
    parts = [order.ravel() for order, _ in pieces] + ([] if rest is None else [rest])
    return np.concatenate(parts), [len(order) for order, _ in pieces]


@pytest.fixture
def pipelined(monkeypatch):
    """fit's bucketed draw from 40 rows on (1,048,576 outside the tests)."""
    monkeypatch.setattr(_shuffle, "PIPELINE_MIN_ROWS", 40)


@pytest.mark.parametrize("m", [1, 2, 1000, 1 << 20 | 12345])
def test_aligned_permutation_is_numpys_permutation(m):
    order = aligned_permutation(m, np.random.SeedSequence([7, 3]))
    assert order.dtype == np.int32 and order.ctypes.data % 64 == 0
    np.testing.assert_array_equal(order, np.random.default_rng(np.random.SeedSequence([7, 3])).permutation(m))
    np.testing.assert_array_equal(aligned_permutation(m, None), np.arange(m))


def test_small_runs_cut_numpys_permutations_and_keep_the_first():
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
    in_order, rest = EpochOrders(m, m, 5, range(0, 1), drop_remainder=False, shuffle=False).order(0)
    np.testing.assert_array_equal(in_order.ravel(), np.arange(m))
    pieces = list(EpochOrders(5, 10, 5, range(0, 1), drop_remainder=False, shuffle=False).pieces(0))
    assert len(pieces) == 1 and pieces[0][0].shape == (0, 10)  # a batch larger than the data
    np.testing.assert_array_equal(pieces[0][1], np.arange(5))


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_large_runs_follow_the_documented_rule_in_pieces(pipelined, drop_remainder):
    m, batch, seed = 1003, 10, 4
    orders = EpochOrders(m, batch, seed, range(2, 5), drop_remainder=drop_remainder, shuffle=True)
    for epoch in range(2, 5):
        expected = fits_rule(m, np.random.SeedSequence([seed, epoch]))
        order, steps = joined(orders, epoch)
        # About a 32nd of the 100 steps each, rounded up to 8 steps (8 x 10 int32 rows are
        # 5 x 64 bytes: every piece starts on a 64-byte boundary, so XLA reads it uncopied),
        # and a last piece of what is left: two shapes to compile, however many pieces.
        assert steps == [8] * 12 + [4]
        np.testing.assert_array_equal(order, expected[: 1000 if drop_remainder else m])
    orders.close()


def test_the_order_does_not_depend_on_thread_timing(pipelined, monkeypatch):
    m = 5000
    reference = FitPermutation(m, np.random.SeedSequence([1, 0])).prefix(m)
    real_flatnonzero = np.flatnonzero

    def slow_flatnonzero(a):  # the drawing thread now lags far behind the consumer
        time.sleep(0.01)
        return real_flatnonzero(a)

    monkeypatch.setattr(_shuffle.np, "flatnonzero", slow_flatnonzero)
    EpochOrders._kept = None
    order, _ = joined(EpochOrders(m, 7, 1, range(0, 1), drop_remainder=False, shuffle=True), 0)
    np.testing.assert_array_equal(order, reference)


def test_every_position_is_uniform_over_rows(pipelined):
    # m = 48 rows, 6 buckets of 8 on average: over 3000 draws each (position, row) cell
    # should be hit 3000 / 48 times. A bucket-order bias, a dropped bucket or a biased
    # in-bucket shuffle would pile rows up in some positions.
    m, draws = 48, 3000
    counts = np.zeros((m, m))
    for seed in range(draws):
        order, _ = joined(EpochOrders(m, 6, seed, range(0, 1), drop_remainder=False, shuffle=True), 0)
        counts[np.arange(m), order] += 1
    expected = draws / m
    chi2 = ((counts - expected) ** 2 / expected).sum()
    # (m - 1)**2 = 2209 degrees of freedom; the 0.999 quantile is about 2209 + 3.09 * sqrt(2 * 2209) = 2414.
    assert chi2 < 2414, chi2


def test_every_order_of_four_rows_is_equally_likely():
    counts = {}
    trials = 4800
    for seed in range(trials):
        order = tuple(FitPermutation(4, np.random.SeedSequence(seed)).prefix(4))
        counts[order] = counts.get(order, 0) + 1
    assert len(counts) == 24
    expected = trials / 24
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 49.7  # the 0.999 quantile of chi-square with 23 degrees of freedom


def loss(params, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def data(m, d=3):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, d)).astype(np.float32)
    return X, (X @ np.arange(1.0, d + 1, dtype=np.float32) > 0).astype(np.float32)


def test_fit_over_pieces_takes_the_documented_minibatches_and_resumes_bit_for_bit(pipelined, tmp_path):
    m, batch, seed = 203, 10, 2
    X, Y = data(m)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    adam = optax.adam(0.05)
    trained, history = jn.fit(loss, params, adam, X, Y, batch_size=batch, epochs=3, seed=seed, progress=False)
    # The same minibatches by hand: optax steps over the documented rule's rows.
    expected, state = params, adam.init(params)
    for epoch in range(3):
        order = fits_rule(m, np.random.SeedSequence([seed, epoch]))
        for start in range(0, m, batch):
            rows = order[start : start + batch]
            grads = jax.grad(loss)(expected, X[rows], Y[rows])
            updates, state = adam.update(grads, state, expected)
            expected = optax.apply_updates(expected, updates)
    for name in params:
        np.testing.assert_allclose(trained[name], expected[name], rtol=2e-5, atol=1e-6)
    jn.fit(loss, params, adam, X, Y, batch_size=batch, epochs=1, seed=seed, checkpoint_dir=tmp_path, progress=False)
    resumed, again = jn.fit(loss, params, adam, X, Y, batch_size=batch, epochs=3, seed=seed, checkpoint_dir=tmp_path,
                            progress=False)  # fmt: skip
    np.testing.assert_array_equal(again.cost, history.cost)
    for name in params:
        np.testing.assert_array_equal(resumed[name], trained[name])
