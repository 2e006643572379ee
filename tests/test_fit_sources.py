"""fit over a loader (X a callable ``epoch -> batches``): a grain pipeline and a plain generator
giving fit's own shuffles equal fit over the arrays; the loader is closed when the run ends
early or raises; batch_chunks joins same-shape batches in order."""

import os
import subprocess
import sys
import textwrap
import threading

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.data._loaders import batch_chunks

M, D, BATCH = 203, 3, 20  # 10 full minibatches and a remainder of 3
_rng = np.random.default_rng(0)
X = _rng.standard_normal((M, D)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3 * _rng.standard_normal(M) > 0).astype(np.float32)
PARAMS = {"w": jnp.zeros(D), "b": jnp.zeros(())}


def logistic_loss(params, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def centred_loss(params, x):
    return jnp.mean((x - params["w"]) ** 2)


def fit_order(epoch, seed=0):
    """The permutation fit draws for ``epoch`` over arrays (``SeedSequence([seed, epoch])``)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(M)


def generator_loader(epoch):
    order = fit_order(epoch)
    for start in range(0, M, BATCH):
        rows = order[start : start + BATCH]
        yield X[rows], Y[rows]


def grain_loader(epoch):
    """A grain pipeline: fit's permutation as a MapDataset of row indices, rows looked up by a
    map, batched (the last batch smaller), iterated through grain's prefetching iterator."""
    rows = grain.MapDataset.source(fit_order(epoch).tolist())
    pairs = rows.map(lambda i: (X[i], Y[i]))
    return pairs.batch(BATCH, drop_remainder=False).to_iter_dataset()


def assert_trees_close(a, b, rtol=1e-6, atol=1e-7):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("loader", [generator_loader, grain_loader], ids=["generator", "grain"])
@pytest.mark.parametrize("chunk_steps", [None, 3])
def test_loader_equals_fit_over_arrays(loader, chunk_steps):
    expected, history = jn.fit(
        logistic_loss, PARAMS, optax.adam(0.05), X, Y, batch_size=BATCH, epochs=3, progress=False
    )
    params, loaded = jn.fit(
        logistic_loss, PARAMS, optax.adam(0.05), loader, epochs=3, chunk_steps=chunk_steps, progress=False
    )
    assert_trees_close(params, expected)
    np.testing.assert_allclose(loaded.cost, history.cost, rtol=1e-6)
    assert loaded.steps == 3 * 11


def test_x_only_jax_batches_in_order_equal_a_host_loop():
    batches = [jnp.asarray(X[i : i + BATCH]) for i in range(0, M, BATCH)]
    params, history = jn.fit(centred_loss, {"w": jnp.zeros(D)}, jn.sgd(0.1), lambda epoch: iter(batches), epochs=2,
                             progress=False)  # fmt: skip
    w = np.zeros(D, np.float32)
    for _ in range(2):
        for x in batches:
            w = w - 0.1 * (2 * (w - np.asarray(x).mean(axis=0)) / D).astype(np.float32)
    np.testing.assert_allclose(params["w"], w, rtol=1e-5, atol=1e-6)
    assert history.steps == 22


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "prefetch_to_device" and t.is_alive()]


def test_loader_is_closed_when_a_callback_stops_the_run():
    opened, closed = [], []

    def endless_epochs(epoch):
        opened.append(epoch)
        try:
            yield from generator_loader(epoch)
        finally:
            closed.append(epoch)

    def stop_after_two(event):
        event.stop = event.epoch == 2

    _, history = jn.fit(logistic_loss, PARAMS, jn.adam(0.05), endless_epochs, epochs=10, callbacks=[stop_after_two],
                        progress=False)  # fmt: skip
    assert history.epochs == 2
    assert opened == closed == [0, 1]
    assert not _prefetch_threads()


def test_loader_is_closed_when_training_raises():
    closed, served = [], []

    def endless(epoch):
        try:
            step = 0
            while True:  # never ends on its own: only closing it stops it
                step += 1
                served.append(step)
                width = D if step < 5 else D + 1  # batch 5 does not fit the model
                yield np.ones((BATCH, width), np.float32), np.ones(BATCH, np.float32)
        finally:
            closed.append(epoch)

    with pytest.raises(TypeError):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), endless, epochs=2, chunk_steps=2, progress=False)
    assert closed == [0]
    assert not _prefetch_threads()
    assert len(served) < 20  # the background thread stopped pulling batches


def test_grain_iterator_is_closed_on_early_stop():
    iterators = []

    def loader(epoch):
        iterator = iter(grain_loader(epoch))
        iterators.append(iterator)
        return iterator

    def stop_now(event):
        event.stop = True

    jn.fit(logistic_loss, PARAMS, jn.adam(0.05), loader, epochs=5, callbacks=[stop_now], progress=False)
    assert len(iterators) == 1 and iterators[0]._closed


def test_batch_chunks_joins_equal_batches_and_keeps_odd_ones_apart():
    sizes = [4, 4, 4, 4, 4, 2, 4]
    rows = np.arange(sum(sizes), dtype=np.float32)
    starts = np.cumsum([0] + sizes)

    def source(epoch):
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            yield rows[a:b, None] + epoch, rows[a:b]

    with batch_chunks(source, 7, chunk_steps=2) as chunks:
        got = [(np.asarray(x), np.asarray(y), size) for x, y, size in chunks]
    assert [size for *_, size in got] == [4, 4, 4, 2, 4]
    assert [x.shape for x, *_ in got] == [(2, 4, 1), (2, 4, 1), (1, 4, 1), (1, 2, 1), (1, 4, 1)]
    np.testing.assert_array_equal(np.concatenate([x.reshape(-1) for x, *_ in got]), rows + 7)
    np.testing.assert_array_equal(np.concatenate([y.reshape(-1) for _, y, _ in got]), rows)


def test_bad_loaders_name_x():
    with pytest.raises(TypeError, match=r"X: the data source's batch 0 must be \(x, y\) or an array x"):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), lambda e: iter([{"x": X}]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="same number of rows"):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), lambda e: iter([(X, Y[:5])]), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"X: source\(0\) must return an iterable"):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), lambda e: 3, epochs=1, progress=False)
    with pytest.raises(ValueError, match="pass batch_size=None"):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), generator_loader, batch_size=20, epochs=1, progress=False)
    with pytest.raises(ValueError, match="Y must be None"):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), generator_loader, Y, epochs=1, progress=False)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        jn.fit(logistic_loss, PARAMS, jn.adam(0.05), X, Y, epochs=1, progress=False)


MESH_SCRIPT = """
import jax, numpy as np
from jax.sharding import Mesh
import tests.test_fit_sources as t
import jaxopt_notes as jn
assert jax.device_count() == 4
mesh = Mesh(np.array(jax.devices()), ("batch",))
kw = dict(epochs=2, progress=False, validation=(t.X, t.Y))
single, h1 = jn.fit(t.logistic_loss, t.PARAMS, jn.adam(0.05), t.X, t.Y, batch_size=t.BATCH, **kw)
sharded, h4 = jn.fit(t.logistic_loss, t.PARAMS, jn.adam(0.05), t.generator_loader, mesh=mesh, chunk_steps=4, **kw)
assert len(sharded["w"].sharding.device_set) == 4
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), single, sharded)
np.testing.assert_allclose(h1.cost, h4.cost, rtol=1e-5)
np.testing.assert_allclose(h1.validation["cost"], h4.validation["cost"], rtol=1e-5)
# Each device holds its own quarter of every full minibatch; the odd last one is replicated.
spread = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "batch"))
with jn.batch_chunks(t.generator_loader, 0, chunk_steps=4, sharding=spread) as chunks:
    placed = [(x, size) for x, _, size in chunks]
full = [x for x, size in placed if size == t.BATCH]
assert full and all(x.sharding.spec == spread.spec for x in full)
assert all(shard.data.shape[1] == t.BATCH // 4 for x in full for shard in x.addressable_shards)
odd = [x for x, size in placed if size % 4]
assert all(x.sharding.is_fully_replicated for x in odd)
print("ok")
"""


def test_loader_on_a_mesh_equals_arrays_on_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MESH_SCRIPT)], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
