"""``jn.keras``'s schedules against Keras 3's on every step of a long range (staircase and
smooth, boundaries included), eagerly and under ``jax.jit`` and ``jax.vmap`` with a traced
step, each against Keras' run the same way (compiled, XLA evaluates the power its own way, in
Keras' schedule as in ours); and their step numbering as the optimizers see it."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
import jaxopt_notes.keras  # noqa: F401  (jn.keras)

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

SCHEDULES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.96}),
    ("ExponentialDecay", {"initial_learning_rate": 0.3, "decay_steps": 7, "decay_rate": 0.5, "staircase": True}),
    ("ExponentialDecay", {"initial_learning_rate": 1e-3, "decay_steps": 2.5, "decay_rate": 1.01}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 1.0, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.2, "decay_steps": 50, "decay_rate": 1.0, "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [100, 110], "values": [1.0, 0.5, 0.1]}),
    ("PiecewiseConstantDecay", {"boundaries": [0, 5, 6, 1000], "values": [0.3, 0.2, 0.1, 0.05, 0.0]}),
]
STEPS = np.concatenate([np.arange(0, 1200), np.array([10_000, 99_999, 100_000, 1_000_000, 2**31 - 1])]).astype(np.int32)


def both(name, kwargs):
    return getattr(keras.optimizers.schedules, name)(**kwargs), getattr(jn.keras, name)(**kwargs)


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=lambda value: str(value))
def test_every_step_equals_keras_eagerly_and_compiled(name, kwargs):
    theirs, ours = both(name, kwargs)
    expected = np.array([np.asarray(theirs(jnp.asarray(step))) for step in STEPS], np.float32)
    eager = np.array([np.asarray(ours(jnp.asarray(step))) for step in STEPS], np.float32)
    np.testing.assert_array_equal(eager, expected)
    steps = jnp.asarray(STEPS)
    compiled, their_compiled = (np.asarray(jax.jit(jax.vmap(schedule))(steps)) for schedule in (ours, theirs))
    assert compiled.dtype == np.float32
    np.testing.assert_array_max_ulp(compiled, their_compiled, maxulp=1)


def test_the_first_update_uses_step_0_as_keras():
    """Keras evaluates the schedule at ``iterations``, 0 on the first update; so do the
    optimizers of this library, the core ones included."""
    schedule = jn.keras.PiecewiseConstantDecay([0], [0.5, 0.25])
    for optimizer in (jn.keras.SGD(schedule), jn.sgd(schedule)):
        state = optimizer.init(jnp.zeros(1))
        first, state = optimizer.update(jnp.ones(1), state)
        second, state = optimizer.update(jnp.ones(1), state)
        assert float(first[0]) == -0.5 and float(second[0]) == -0.25
        assert float(jn.learning_rate_in_use(state)) == 0.25


def test_a_schedule_is_hashable_and_equal_to_its_twin():
    """Frozen dataclasses: equal arguments, equal schedules (the boundaries stored as tuples)."""
    first = jn.keras.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001])
    second = jn.keras.PiecewiseConstantDecay((10, 20), (0.1, 0.01, 0.001))
    assert first == second and hash(first) == hash(second)
    assert jn.keras.ExponentialDecay(0.1, 10, 0.5) != jn.keras.ExponentialDecay(0.1, 10, 0.5, staircase=True)


def test_inject_hyperparams_evaluates_a_keras_schedule_at_keras_step_numbers():
    schedule = jn.keras.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    optimizer = jn.inject_hyperparams(jn.keras.SGD)(learning_rate=schedule, momentum=0.9)
    state = optimizer.init(jnp.zeros(1))
    rates = []
    for _ in range(3):
        _, state = optimizer.update(jnp.ones(1), state)
        rates.append(float(state.hyperparams["learning_rate"]))
    assert rates == pytest.approx([0.1, 0.05, 0.025])
