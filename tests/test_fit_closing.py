"""fit closes the epoch's loader and stops its prefetch thread as soon as training raises:
checked while the exception is still held, when nothing else (no garbage collection of the
traceback's frames) can have closed them."""

import threading

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn

D, BATCH = 3, 8


def loss(params, x, y):
    return jnp.mean((x @ params["w"] - y) ** 2)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "prefetch_to_device" and t.is_alive()]


class Batches:
    """A loader's iterator that is not a generator: only its close() says it was closed.
    Its fifth batch is one column too wide for the model, so training raises there."""

    def __init__(self):
        self.served = 0
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        self.served += 1
        width = D if self.served < 5 else D + 1
        return np.ones((BATCH, width), np.float32), np.ones(BATCH, np.float32)

    def close(self):
        self.closed = True


def generator_batches(log):
    try:
        step = 0
        while True:  # never ends on its own: only closing it stops it
            step += 1
            width = D if step < 5 else D + 1
            yield np.ones((BATCH, width), np.float32), np.ones(BATCH, np.float32)
    finally:
        log.append("closed")


@pytest.mark.parametrize("kind", ["iterator class", "generator"])
def test_the_loader_is_closed_while_the_error_is_still_held(kind):
    opened, log = [], []

    def loader(epoch):
        batches = Batches() if kind == "iterator class" else generator_batches(log)
        opened.append(batches)
        return batches

    params = {"w": jnp.zeros(D)}
    try:
        jn.fit(loss, params, jn.sgd(0.1), loader, epochs=2, chunk_steps=2, progress=False)
    except TypeError as error:
        # The traceback, and with it every frame of the failed run, is alive here.
        assert error.__traceback__ is not None
        assert len(opened) == 1
        assert opened[0].closed if kind == "iterator class" else log == ["closed"], "the loader was left open"
        assert not prefetch_threads(), "a prefetch thread outlived the failed run"
    else:
        raise AssertionError("a batch one column too wide must fail")
