"""Minibatches: every example once per epoch, X/Y paired, reproducible seeds, bounded memory."""

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxopt_notes.data import _batches as data
from jaxopt_notes.data import _shuffle, minibatches, random_mini_batches, steps_per_epoch, suggest_batch_size
from jaxopt_notes.data._shuffle import PipelinedPermutation


def paired_data(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Row i of X is (i, -i, 2i); Y[i] = i: pairing and identity are readable from any batch."""
    ids = np.arange(m)
    return np.stack([ids, -ids, 2 * ids], axis=1).astype(np.float64), ids


def expected_sizes(m: int, batch_size: int, drop_remainder: bool) -> list[int]:
    sizes = []
    start = 0
    while start < m:
        sizes.append(min(batch_size, m - start))
        start += batch_size
    if drop_remainder and sizes[-1] < batch_size:
        sizes.pop()
    return sizes


def check_epoch(batches: list, m: int, batch_size: int, drop_remainder: bool) -> np.ndarray:
    assert [len(y) for _, y in batches] == expected_sizes(m, batch_size, drop_remainder)
    for x, y in batches:
        np.testing.assert_array_equal(x, np.stack([y, -y, 2 * y], axis=1))
    seen = np.concatenate([y for _, y in batches])
    assert len(np.unique(seen)) == len(seen)
    if not drop_remainder:
        np.testing.assert_array_equal(np.sort(seen), np.arange(m))
    else:
        assert len(seen) == m - m % batch_size
    return seen


@given(
    m=st.integers(1, 70),
    batch_size=st.integers(1, 80),
    drop_remainder=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    shuffle=st.booleans(),
    reader=st.sampled_from([(None, None), (1, 1), (1, 7), (3, 5), (4, 64), (16, 16)]),
)
def test_every_example_once_and_paired(m, batch_size, drop_remainder, seed, shuffle, reader):
    if drop_remainder and batch_size > m:
        with pytest.raises(ValueError, match="leaves no minibatch"):
            minibatches(*paired_data(m), batch_size=batch_size, drop_remainder=True)
        return
    block_rows, window_rows = reader
    batches = list(
        minibatches(
            *paired_data(m),
            batch_size=batch_size,
            seed=seed,
            shuffle=shuffle,
            drop_remainder=drop_remainder,
            block_rows=block_rows,
            window_rows=window_rows,
        )
    )
    seen = check_epoch(batches, m, batch_size, drop_remainder)
    assert len(batches) == steps_per_epoch(m, batch_size, drop_remainder=drop_remainder)
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


@pytest.mark.parametrize("batch_size", [1, 7, 50, 51, 100])
def test_in_memory_order_is_one_uniform_permutation(batch_size):
    m = 50
    X, Y = paired_data(m)
    reference = np.random.default_rng(11).permutation(m)
    batches = list(minibatches(X, Y, batch_size=batch_size, seed=11))
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), reference)
    check_epoch(batches, m, batch_size, False)


def test_seeds_reproducible_and_different():
    X, Y = paired_data(200)
    for kwargs in ({}, {"block_rows": 8, "window_rows": 40}):
        epoch = minibatches(X, Y, batch_size=16, seed=5, **kwargs)
        first = np.concatenate([y for _, y in epoch])
        np.testing.assert_array_equal(first, np.concatenate([y for _, y in epoch]))
        again = np.concatenate([y for _, y in minibatches(X, Y, batch_size=16, seed=5, **kwargs)])
        np.testing.assert_array_equal(first, again)
        other = np.concatenate([y for _, y in minibatches(X, Y, batch_size=16, seed=6, **kwargs)])
        assert not np.array_equal(first, other)
        assert not np.array_equal(first, np.arange(200))


def test_x_alone_and_batch_gd_and_sgd():
    X, _ = paired_data(9)
    assert [b.shape for b in minibatches(X, batch_size=9)] == [(9, 3)]
    assert [b.shape for b in minibatches(X, batch_size=10)] == [(9, 3)]
    sgd = list(minibatches(X, batch_size=1, seed=2))
    assert len(sgd) == len(minibatches(X, batch_size=1)) == 9
    np.testing.assert_array_equal(np.sort(np.concatenate(sgd)[:, 0]), np.arange(9))


def test_jax_arrays_give_the_numpy_batches():
    X, Y = paired_data(30)
    ours = list(minibatches(jnp.asarray(X, dtype=jnp.float32), jnp.asarray(Y), batch_size=8, seed=3))
    reference = np.random.default_rng(3).permutation(30)
    for k, (x, y) in enumerate(ours):
        assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
        np.testing.assert_array_equal(y, reference[8 * k : 8 * k + 8])
        np.testing.assert_array_equal(x, X[y].astype(np.float32))


def test_exact_uniform_shuffle_with_single_row_blocks():
    # block_rows=1: the windowed reader must still draw every order of 4 rows equally often.
    counts = {}
    trials = 4800
    for seed in range(trials):
        order = tuple(
            np.concatenate(list(minibatches(np.arange(4), batch_size=4, seed=seed, block_rows=1, window_rows=2)))
        )
        counts[order] = counts.get(order, 0) + 1
    assert len(counts) == 24
    expected = trials / 24
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 49.7  # the 0.999 quantile of chi-square with 23 degrees of freedom


@pytest.mark.parametrize("buckets", [2, 3])
def test_pipelined_permutation_is_exactly_uniform(buckets):
    # Rao-Sandelius: random buckets, each permuted, concatenated. Every order of 4 rows must
    # come up equally often (a bucket-order bias or a dropped bucket would skew this).
    counts = {}
    trials = 4800
    for seed in range(trials):
        order = tuple(PipelinedPermutation(4, seed, buckets).prefix(4))
        counts[order] = counts.get(order, 0) + 1
    assert len(counts) == 24
    expected = trials / 24
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 49.7  # the 0.999 quantile of chi-square with 23 degrees of freedom


def test_large_in_memory_epoch_draws_a_pipelined_permutation(monkeypatch):
    monkeypatch.setattr(_shuffle, "PIPELINE_MIN_ROWS", 1000)
    m = 5003
    X, Y = paired_data(m)
    epoch = minibatches(X, Y, batch_size=64, seed=9)
    batches = list(epoch)
    check_epoch(batches, m, 64, False)
    order = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(order, PipelinedPermutation(m, 9).prefix(m))
    np.testing.assert_array_equal(order, np.concatenate([y for _, y in epoch]))
    assert not np.array_equal(order, np.concatenate([y for _, y in minibatches(X, Y, batch_size=64, seed=10)]))
    assert not np.array_equal(order, np.random.default_rng(9).permutation(m))


def test_window_structure_as_documented():
    # Blocks of 10 rows, windows of 10 blocks: each window is 4 batches of 25 rows that
    # together cover exactly 10 whole blocks.
    batches = list(minibatches(np.arange(1000), batch_size=25, seed=1, block_rows=10, window_rows=100))
    for w in range(10):
        rows = np.concatenate(batches[4 * w : 4 * w + 4])
        blocks, per_block = np.unique(rows // 10, return_counts=True)
        assert len(blocks) == 10 and np.all(per_block == 10)


def write_npy(path, m: int) -> None:
    X, Y = paired_data(m)
    np.save(path / "X.npy", X.astype(np.float32))
    np.save(path / "Y.npy", Y)


@pytest.mark.parametrize("piece_bytes", [None, 100])
@pytest.mark.parametrize("block_rows", [None, 1, 5, 300])
def test_memmap_every_row_once(tmp_path, monkeypatch, block_rows, piece_bytes):
    if piece_bytes is not None:  # copy (and unmap) 5 rows at a time: runs get cut and grouped
        monkeypatch.setattr(data, "_PIECE_BYTES", piece_bytes)
    write_npy(tmp_path, 1003)
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    Y = np.load(tmp_path / "Y.npy", mmap_mode="r")
    batches = list(minibatches(X, Y, batch_size=64, seed=4, block_rows=block_rows, window_rows=200))
    assert all(type(x) is np.ndarray and type(y) is np.ndarray for x, y in batches)
    check_epoch(batches, 1003, 64, False)
    unshuffled = list(minibatches(X[100:], Y[100:], batch_size=64, shuffle=False, drop_remainder=True))
    np.testing.assert_array_equal(np.concatenate([y for _, y in unshuffled]), np.arange(100, 100 + 903 - 903 % 64))


def test_memmap_column_view_with_in_memory_labels(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_PIECE_BYTES", 64)
    write_npy(tmp_path, 777)
    X = np.load(tmp_path / "X.npy", mmap_mode="r")[:, ::2]  # strided rows: (i, 2i)
    Y = np.arange(777)
    batches = list(minibatches(X, Y, batch_size=50, seed=8, block_rows=7, window_rows=70))
    for x, y in batches:
        np.testing.assert_array_equal(x, np.stack([y, 2 * y], axis=1))
    np.testing.assert_array_equal(np.sort(np.concatenate([y for _, y in batches])), np.arange(777))


def test_copy_on_write_memmap_keeps_the_callers_edits(tmp_path):
    write_npy(tmp_path, 500)
    X = np.load(tmp_path / "X.npy", mmap_mode="c")
    X[:, 0] += 1000.0
    for x in minibatches(X, batch_size=100, seed=0):
        assert np.all(x[:, 0] >= 1000.0)
    assert np.all(X[:, 0] >= 1000.0)


RSS_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from jaxopt_notes.data import minibatches

    def current_rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def peak_rss():
        # Not ru_maxrss: after fork/exec it starts from the forked image, i.e. the parent's RSS.
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmHWM:")).split()[1]) * 1024

    X = np.load(sys.argv[1], mmap_mode="r")
    Y = np.load(sys.argv[2], mmap_mode="r")
    seen = np.zeros(len(X), np.int8)
    seen[:] = 0
    paired = True
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    before = current_rss()
    for x, y in minibatches(X, Y, batch_size=1000, seed=3):
        paired &= bool(np.array_equal(x[:, 0], y) and np.array_equal(x[:, -1], y + x.shape[1] - 1))
        seen[y] += 1
    print(json.dumps({"growth": peak_rss() - before, "once": bool(np.all(seen == 1)), "paired": paired}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memmap_larger_than_allowed_memory(tmp_path):
    m, n = 4_000_000, 20
    file_bytes = m * n * 4
    allowed = 128 * 2**20
    x_path, y_path = tmp_path / "big_X.npy", tmp_path / "big_Y.npy"
    try:
        with open(x_path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (m, n)})
            for start in range(0, m, 250_000):
                rows = np.arange(start, start + 250_000, dtype=np.float32)
                f.write((rows[:, None] + np.arange(n, dtype=np.float32)).tobytes())
        np.save(y_path, np.arange(m, dtype=np.int32))
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        done = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, str(x_path), str(y_path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        for path in (x_path, y_path):
            path.unlink(missing_ok=True)
    assert file_bytes > 2 * allowed
    assert result["once"] and result["paired"]
    assert result["growth"] < allowed, f"peak RSS grew by {result['growth'] / 2**20:.0f} MiB"


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_batch_size_value(bad):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        minibatches(np.ones((4, 2)), batch_size=bad)


@pytest.mark.parametrize("bad", [2.5, True, "3", None])
def test_bad_batch_size_type(bad):
    with pytest.raises(TypeError, match="batch_size must be an integer >= 1"):
        minibatches(np.ones((4, 2)), batch_size=bad)


def test_clear_errors_for_bad_data():
    with pytest.raises(ValueError, match="X is empty"):
        minibatches(np.ones((0, 3)), batch_size=2)
    with pytest.raises(ValueError, match="Y is empty"):
        minibatches(np.ones((3, 3)), np.ones(0), batch_size=2)
    with pytest.raises(ValueError, match="same number of examples"):
        minibatches(np.ones((4, 2)), np.ones(5), batch_size=2)
    with pytest.raises(ValueError, match="scalar"):
        minibatches(np.float32(1.0), batch_size=1)
    with pytest.raises(ValueError, match="seed"):
        minibatches(np.ones(3), batch_size=1, seed=-1)
    with pytest.raises(ValueError, match="block_rows"):
        minibatches(np.ones(3), batch_size=1, block_rows=0)
    with pytest.raises(TypeError):
        minibatches(np.ones(3), 2)  # batch_size is keyword-only


def test_steps_per_epoch():
    assert steps_per_epoch(5_000_000, 1_000) == 5_000
    for m, b in itertools.product(range(1, 30), range(1, 35)):
        assert steps_per_epoch(m, b) == math.ceil(m / b)
        if b <= m:
            assert steps_per_epoch(m, b, drop_remainder=True) == m // b
    with pytest.raises(ValueError, match="leaves no minibatch"):
        steps_per_epoch(3, 4, drop_remainder=True)
    with pytest.raises(ValueError, match="m must be"):
        steps_per_epoch(0, 4)


def classic_recipe(X, Y, mini_batch_size=64, seed=0):
    """The notes' recipe, transcribed as it is usually written."""
    np.random.seed(seed)
    m = X.shape[1]
    mini_batches = []
    permutation = list(np.random.permutation(m))
    shuffled_X = X[:, permutation]
    shuffled_Y = Y[:, permutation].reshape((1, m))
    num_complete_minibatches = math.floor(m / mini_batch_size)
    for k in range(0, num_complete_minibatches):
        mini_batch_X = shuffled_X[:, k * mini_batch_size : k * mini_batch_size + mini_batch_size]
        mini_batch_Y = shuffled_Y[:, k * mini_batch_size : k * mini_batch_size + mini_batch_size]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    if m % mini_batch_size != 0:
        mini_batch_X = shuffled_X[:, num_complete_minibatches * mini_batch_size : m]
        mini_batch_Y = shuffled_Y[:, num_complete_minibatches * mini_batch_size : m]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    return mini_batches


@pytest.mark.parametrize(("m", "size", "seed"), [(148, 64, 0), (128, 64, 1), (5, 1, 3), (7, 10, 2), (1000, 37, 10)])
def test_random_mini_batches_reproduces_the_recipe(m, size, seed):
    data = np.random.default_rng(m).standard_normal((13, m))
    X, Y = data[:12], (data[12:] > 0).astype(np.float64)
    expected = classic_recipe(X, Y, size, seed)
    after_recipe = np.random.random()
    ours = random_mini_batches(X, Y, mini_batch_size=size, seed=seed)
    assert np.random.random() == after_recipe  # the same draws from the global RNG
    assert len(ours) == len(expected)
    for (x, y), (ex, ey) in zip(ours, expected, strict=True):
        assert x.tobytes() == ex.tobytes() and x.shape == ex.shape
        assert y.tobytes() == ey.tobytes() and y.shape == ey.shape


def test_random_mini_batches_errors():
    with pytest.raises(ValueError, match="examples as columns"):
        random_mini_batches(np.ones(5), np.ones((1, 5)))
    with pytest.raises(ValueError, match="same number of columns"):
        random_mini_batches(np.ones((2, 5)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="mini_batch_size"):
        random_mini_batches(np.ones((2, 5)), np.ones((1, 5)), mini_batch_size=0)


def reference_suggestion(m, per_example, budget):
    fits = int(budget // per_example)
    if m <= 2000 and m <= fits:
        return m
    for size in (1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1):
        if size <= fits and size <= m:
            return size


@pytest.mark.parametrize(
    ("m", "per_example", "budget"),
    [(2000, 100, 1e6), (2001, 100, 1e9), (5_000_000, 4096, 2**21), (5_000_000, 4096, 2**21 - 1), (1500, 10, 1000)]
    + [(300, 8, 1e9), (10**6, 3.5, 230.0), (10**6, 1000, 1000), (100, 1, 64 * 1.5)],
)
def test_suggest_batch_size(m, per_example, budget):
    suggestion = suggest_batch_size(m, per_example, memory_budget_bytes=budget)
    assert suggestion.batch_size == reference_suggestion(m, per_example, budget)
    assert suggestion.reason
    assert ("batch gradient descent" in suggestion.reason) == (suggestion.batch_size == m)


def test_suggest_batch_size_errors():
    with pytest.raises(ValueError, match="does not fit"):
        suggest_batch_size(100, 1000, memory_budget_bytes=999)
    with pytest.raises(ValueError, match="bytes_per_example"):
        suggest_batch_size(100, 0, memory_budget_bytes=999)
    with pytest.raises(TypeError, match="memory_budget_bytes"):
        suggest_batch_size(100, 1, memory_budget_bytes="lots")
