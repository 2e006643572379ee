"""prefetch_to_device: placement, order, bounded queue, clean shutdown, sharding over 4 devices."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import jax
import numpy as np
import pytest

from jaxopt_notes.data import minibatches
from jaxopt_notes.data._prefetch import prefetch_to_device


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch_to_device"]


class Source:
    """An endless source that records how far it was pulled and whether it was closed."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.pulled = 0
        self.closed = False
        self.fail_at = fail_at

    def __iter__(self):
        try:
            while True:
                if self.pulled == self.fail_at:
                    raise OSError("disk gone")
                self.pulled += 1
                yield {"x": np.full((2, 3), self.pulled, np.float32), "k": np.int32(self.pulled)}
        finally:
            self.closed = True


def test_items_placed_on_the_device_in_order():
    device = jax.devices()[0]
    X, Y = np.arange(40.0).reshape(20, 2), np.arange(20)
    expected = list(minibatches(X, Y, batch_size=6, seed=1))
    got = list(prefetch_to_device(minibatches(X, Y, batch_size=6, seed=1), size=3, device=device))
    assert len(got) == len(expected) == 4
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert isinstance(x, jax.Array) and x.devices() == {device}
        np.testing.assert_array_equal(np.asarray(x), ex)
        np.testing.assert_array_equal(np.asarray(y), ey)
    assert not prefetch_threads()


def test_consumer_stopping_early_stops_the_thread_and_closes_the_source():
    source = Source()
    for item in prefetch_to_device(source):
        if int(item["k"]) == 3:
            break
    assert not prefetch_threads()
    assert source.closed


def test_consumer_raising_stops_the_thread():
    source = Source()

    def train():
        for item in prefetch_to_device(source, size=1):
            if int(item["k"]) == 2:
                raise RuntimeError("loss is nan")

    with pytest.raises(RuntimeError, match="loss is nan"):
        train()
    assert not prefetch_threads()
    assert source.closed


def test_context_manager_closes_while_the_iterator_is_still_referenced():
    source = Source()
    with prefetch_to_device(source) as batches:
        first = next(batches)
    assert int(first["k"]) == 1
    assert not prefetch_threads()
    assert source.closed
    with pytest.raises(StopIteration):
        next(batches)


def test_queue_is_bounded():
    source = Source()
    with prefetch_to_device(source, size=2) as batches:
        next(batches)
        time.sleep(0.3)  # give the thread every chance to run ahead
        # One consumed, two waiting in the queue, one placed and blocked on the full queue.
        assert source.pulled <= 4


def test_source_errors_reach_the_consumer_in_order():
    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch_to_device(Source(fail_at=3)):
            seen.append(int(item["k"]))
    assert seen == [1, 2, 3]
    assert not prefetch_threads()


def test_argument_errors():
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        prefetch_to_device([], size=0)
    with pytest.raises(TypeError, match="size must be an integer >= 1"):
        prefetch_to_device([], size=1.5)
    with pytest.raises(ValueError, match="either device or sharding"):
        prefetch_to_device([], device=jax.devices()[0], sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    with pytest.raises(TypeError, match="sharding must be"):
        prefetch_to_device([], sharding="data")
    with pytest.raises(TypeError, match="device must be"):
        prefetch_to_device([], device="cpu")
    with pytest.raises(TypeError, match="iterable must be an iterable of batches"):
        prefetch_to_device(5)


SHARDED_CHILD = textwrap.dedent(
    """
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from jaxopt_notes.data import minibatches
    from jaxopt_notes.data._prefetch import prefetch_to_device

    devices = jax.devices()
    assert len(devices) == 4, devices
    sharding = NamedSharding(Mesh(np.array(devices), ("data",)), PartitionSpec("data"))
    X, Y = np.arange(60.0, dtype=np.float32).reshape(30, 2), np.arange(30)
    expected = list(minibatches(X, Y, batch_size=8, seed=2, drop_remainder=True))
    placed = list(prefetch_to_device(minibatches(X, Y, batch_size=8, seed=2, drop_remainder=True), sharding=sharding))
    assert len(placed) == len(expected) == 3
    for batch, reference in zip(placed, expected, strict=True):
        for leaf, ref in zip(batch, reference, strict=True):
            shards = leaf.addressable_shards
            assert {s.device for s in shards} == set(devices)
            for s in shards:
                assert s.data.shape[0] == 2 and s.data.devices() == {s.device}
                np.testing.assert_array_equal(np.asarray(s.data), ref[s.index])
            rows = sorted(s.index[0].start for s in shards)
            assert rows == [0, 2, 4, 6], rows
    try:
        list(prefetch_to_device(minibatches(X, batch_size=8, seed=2), sharding=sharding))
    except ValueError as error:
        assert "drop_remainder=True" in str(error), error
    else:
        raise AssertionError("a 6-row batch over 4 devices must raise")
    print("sharded ok")
    """
)


def test_sharded_placement_over_four_cpu_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SHARDED_CHILD], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "sharded ok" in done.stdout


class IteratorWithClose:
    """An iterator that is not a generator: nothing closes it unless its close() is called."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        self.pulled += 1
        return np.full(3, self.pulled, np.float32)

    def close(self) -> None:
        self.closed = True


def test_an_iterator_class_is_closed_when_the_consumer_stops():
    source = IteratorWithClose()
    for item in prefetch_to_device(source, size=1):
        if int(item[0]) == 2:
            break
    assert not prefetch_threads()
    assert source.closed


def test_a_grain_iterator_is_closed_when_the_consumer_stops():
    grain = pytest.importorskip("grain")
    iterator = iter(grain.MapDataset.range(1000).map(lambda i: np.full(3, i, np.float32)).to_iter_dataset())
    with prefetch_to_device(iterator, size=1) as batches:
        assert int(next(batches)[0]) == 0
    assert not prefetch_threads()
    assert iterator._closed


def test_an_iterator_left_open_at_exit_is_closed_quietly():
    # A probe that takes one batch and exits without closing: the prefetcher must shut down
    # while the interpreter still has its modules, not complain during teardown.
    script = textwrap.dedent(
        """
        import numpy as np
        from jaxopt_notes.data import prefetch_to_device

        class Source:
            def __iter__(self):
                return self
            def __next__(self):
                return np.ones(3)
            def close(self):
                print("source closed")

        batches = prefetch_to_device(Source())
        first = next(batches)
        """
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "source closed" in done.stdout
