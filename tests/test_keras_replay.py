"""The replay check from a user's side: ``assert_equivalent`` with a Keras optimizer as the
reference steps it on the same gradients as ours, passes for a faithful port, and for an
unfaithful one names the first step and pytree path that differ."""

from __future__ import annotations

import os
import subprocess
import sys

import jax.numpy as jnp
import optax
import pytest

import jaxopt_notes as jn
import jaxopt_notes.keras  # noqa: F401  (jn.keras)
from jaxopt_notes.testing import NotEquivalentError, assert_equivalent

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

PARAMS = {
    "dense": {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "bias": jnp.zeros(4)},
    "scale": jnp.asarray(0.5),
}


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: jn.keras.AdamW(1e-2), lambda: keras.optimizers.AdamW(1e-2)),
        (
            lambda: jn.keras.SGD(jn.keras.InverseTimeDecay(0.1, 3, 0.5), momentum=0.9, nesterov=True, clipnorm=1.0),
            lambda: keras.optimizers.SGD(
                keras.optimizers.schedules.InverseTimeDecay(0.1, 3, 0.5), momentum=0.9, nesterov=True, clipnorm=1.0
            ),
        ),
        (
            lambda: jn.keras.RMSprop(1e-2, centered=True, momentum=0.5, use_ema=True),
            lambda: keras.optimizers.RMSprop(1e-2, centered=True, momentum=0.5, use_ema=True),
        ),
    ],
    ids=["AdamW", "SGD nesterov schedule clipnorm", "RMSprop centered momentum EMA"],
)
def test_a_faithful_port_passes(ours, theirs):
    worst = assert_equivalent(ours(), theirs(), params=PARAMS, steps=30, rtol=1e-6, atol=1e-7)
    assert worst < 1e-6


def test_an_unfaithful_port_names_the_first_step_and_path_that_differ():
    """optax's SGD with momentum under a schedule equals Keras' on the first step only: the
    rate sits inside Keras' velocity. The check says so at step 2, first leaf in tree order."""
    schedule = jn.keras.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    reference = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5), momentum=0.9)
    with pytest.raises(NotEquivalentError, match=r"^step 2: params\['dense'\]\['bias'\]: values differ"):
        assert_equivalent(optax.sgd(schedule, momentum=0.9), reference, params=PARAMS, steps=5)


def test_a_different_rate_fails_at_step_1():
    with pytest.raises(NotEquivalentError, match=r"^step 1: params\['dense'\]\['bias'\]"):
        assert_equivalent(jn.keras.Adam(1e-2), keras.optimizers.Adam(2e-2), params=PARAMS, steps=3)


def test_a_used_optimizer_is_refused():
    reference = keras.optimizers.Adam(1e-2)
    assert_equivalent(jn.keras.Adam(1e-2), reference, params=PARAMS, steps=2)
    with pytest.raises(ValueError, match="already built on other variables; pass a fresh one"):
        assert_equivalent(jn.keras.Adam(1e-2), reference, params=PARAMS, steps=2)


def test_complex_parameters_are_refused_with_the_leaf():
    params = {"w": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match=r"real floating-point parameters only; leaf 1 .* complex64"):
        assert_equivalent(jn.keras.Adam(1e-2), keras.optimizers.Adam(1e-2), params=params, steps=1)


def test_keras_is_imported_only_for_a_keras_reference():
    code = (
        "import sys, optax, jax.numpy as jnp, jaxopt_notes as jn, jaxopt_notes.keras\n"
        "from jaxopt_notes.testing import assert_equivalent\n"
        "assert_equivalent(jn.keras.SGD(0.1), optax.sgd(0.1), params={'w': jnp.ones(3)})\n"
        "print('keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "False"
