"""The porting guide's traps are real and ``jn.keras`` avoids each: over 100 steps, the hand
port a user would write ends more than 1% of Keras' displacement away from Keras, the
``jn.keras`` constructor less than 1e-5 (float32)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("these comparisons need KERAS_BACKEND=jax", allow_module_level=True)

from tests import keras_traps  # noqa: E402

TRAPS = keras_traps.TRAPS()


@pytest.mark.parametrize("trap", TRAPS, ids=[trap.name.split(";")[0] for trap in TRAPS])
def test_the_hand_port_differs_and_jn_keras_does_not(trap):
    port, faithful = keras_traps.measure(trap)
    assert port > 1e-2, port
    assert faithful < 1e-5, faithful
