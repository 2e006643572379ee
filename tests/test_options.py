"""The options optax and PyTorch users expect, each against optax: trace(1.0),
Nesterov Adam, AdamW and add_decayed_weights, RMSprop's centered/momentum/initial_scale/bias
correction, accumulator dtypes, and optax's positional order."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent

PARAMS = {
    "dense": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.1, 0.4, 4)},
    "scalar": jnp.asarray(0.5),
    "layers": [jnp.ones((2, 2, 2)), None],
}
MASK = {"dense": {"w": True, "b": False}, "scalar": False, "layers": [True, None]}


def no_bias(params):
    return jax.tree.map(lambda leaf: leaf.ndim > 1, params)


def half_per_step(step):
    return 0.1 * 0.5**step


PAIRS = [
    ("trace 1.0", lambda: jn.trace(1.0), lambda: optax.trace(1.0)),
    ("trace 1.0 nesterov", lambda: jn.trace(1.0, True), lambda: optax.trace(1.0, True)),
    ("momentum beta 1.0", lambda: jn.momentum(0.01, 1.0, dampened=False), lambda: optax.sgd(0.01, 1.0)),
    ("sgd momentum positional", lambda: jn.sgd(0.05, 0.9, True), lambda: optax.sgd(0.05, 0.9, True)),
    ("adam positional", lambda: jn.adam(1e-2, 0.8, 0.99, 1e-6, 1e-8), lambda: optax.adam(1e-2, 0.8, 0.99, 1e-6, 1e-8)),
    ("adam nesterov", lambda: jn.adam(1e-2, nesterov=True), lambda: optax.adam(1e-2, nesterov=True)),
    (
        "adam nesterov schedule",
        lambda: jn.adam(half_per_step, 0.5, 0.9, nesterov=True),
        lambda: optax.adam(half_per_step, 0.5, 0.9, nesterov=True),
    ),
    (
        "adam mu_dtype positional",
        lambda: jn.adam(1e-2, 0.9, 0.999, 1e-8, 0.0, jnp.float32),
        lambda: optax.adam(1e-2, 0.9, 0.999, 1e-8, 0.0, jnp.float32),
    ),
    ("adamw", lambda: jn.adamw(1e-2), lambda: optax.adamw(1e-2)),
    (
        "adamw positional, decay, nesterov",
        lambda: jn.adamw(1e-2, 0.8, 0.99, 1e-6, 0.0, None, 0.1, nesterov=True),
        lambda: optax.adamw(1e-2, 0.8, 0.99, 1e-6, 0.0, None, 0.1, nesterov=True),
    ),
    (
        "adamw mask",
        lambda: jn.adamw(1e-2, weight_decay=0.1, mask=MASK),
        lambda: optax.adamw(1e-2, weight_decay=0.1, mask=MASK),
    ),
    (
        "adamw callable mask",
        lambda: jn.adamw(1e-2, weight_decay=0.1, mask=no_bias),
        lambda: optax.adamw(1e-2, weight_decay=0.1, mask=no_bias),
    ),
    (
        "add_decayed_weights",
        lambda: jn.chain(jn.add_decayed_weights(0.3), jn.scale(-0.1)),
        lambda: optax.chain(optax.add_decayed_weights(0.3), optax.scale(-0.1)),
    ),
    (
        "add_decayed_weights mask",
        lambda: jn.chain(jn.add_decayed_weights(0.3, MASK), jn.scale(-0.1)),
        lambda: optax.chain(optax.add_decayed_weights(0.3, MASK), optax.scale(-0.1)),
    ),
    (
        "rmsprop positional",
        lambda: jn.rmsprop(0.01, 0.95, 1e-6, 0.1),
        lambda: optax.rmsprop(0.01, 0.95, 1e-6, 0.1, False),
    ),
    (
        "rmsprop centered",
        lambda: jn.rmsprop(0.01, centered=True),
        lambda: optax.rmsprop(0.01, centered=True, eps_in_sqrt=False),
    ),
    (
        "rmsprop centered eps_in_sqrt",
        lambda: jn.rmsprop(0.01, 0.9, 1e-6, centered=True, eps_in_sqrt=True),
        lambda: optax.rmsprop(0.01, 0.9, 1e-6, centered=True, eps_in_sqrt=True),
    ),
    (
        "rmsprop momentum",
        lambda: jn.rmsprop(0.01, momentum=0.9),
        lambda: optax.rmsprop(0.01, momentum=0.9, eps_in_sqrt=False),
    ),
    (
        "rmsprop momentum nesterov",
        lambda: jn.rmsprop(0.01, momentum=0.9, nesterov=True, eps_in_sqrt=True),
        lambda: optax.rmsprop(0.01, momentum=0.9, nesterov=True),
    ),
    (
        "rmsprop initial_scale",
        lambda: jn.rmsprop(0.01, initial_scale=1.0),
        lambda: optax.rmsprop(0.01, initial_scale=1.0, eps_in_sqrt=False),
    ),
    (
        "rmsprop bias_correction momentum",
        lambda: jn.rmsprop(0.01, momentum=0.5, bias_correction=True),
        lambda: optax.rmsprop(0.01, momentum=0.5, bias_correction=True, eps_in_sqrt=False),
    ),
    (
        "scale_by_rms bias_correction",
        lambda: jn.chain(jn.scale_by_rms(0.99, 1e-8, 0.0, True, True), jn.scale(-0.01)),
        lambda: optax.chain(optax.scale_by_rms(0.99, 1e-8, 0.0, True, True), optax.scale(-0.01)),
    ),
    (
        "scale_by_rms initial_scale",
        lambda: jn.chain(jn.scale_by_rms(0.9, 1e-8, 0.5), jn.scale(-0.01)),
        lambda: optax.chain(optax.scale_by_rms(0.9, 1e-8, 0.5, eps_in_sqrt=False), optax.scale(-0.01)),
    ),
    (
        "scale_by_adam positional nesterov",
        lambda: jn.chain(jn.scale_by_adam(0.8, 0.99, 1e-6, 0.0, None, nesterov=True), jn.scale(-0.01)),
        lambda: optax.chain(optax.scale_by_adam(0.8, 0.99, 1e-6, 0.0, None, nesterov=True), optax.scale(-0.01)),
    ),
]


@pytest.mark.parametrize("name, ours, reference", PAIRS, ids=[p[0] for p in PAIRS])
def test_option_equals_optax(name, ours, reference):
    # Adam's 5e-5: optax's float32 1 - beta**t (see test_equivalence); the rest agree to rounding.
    assert_equivalent(ours(), reference(), params=PARAMS, steps=20, rtol=5e-5, atol=1e-6)


BFLOAT16_ACCUMULATORS = [
    (
        "sgd accumulator_dtype",
        lambda: jn.sgd(0.05, 0.9, False, jnp.bfloat16),
        lambda: optax.sgd(0.05, 0.9, False, jnp.bfloat16),
    ),
    (
        "momentum accumulator_dtype",
        lambda: jn.momentum(0.05, 0.9, dampened=False, accumulator_dtype=jnp.bfloat16),
        lambda: optax.sgd(0.05, momentum=0.9, accumulator_dtype=jnp.bfloat16),
    ),
    (
        "trace accumulator_dtype",
        lambda: jn.chain(jn.trace(0.9, False, jnp.bfloat16), jn.scale(-0.01)),
        lambda: optax.chain(optax.trace(0.9, False, jnp.bfloat16), optax.scale(-0.01)),
    ),
]


@pytest.mark.parametrize("name, ours, reference", BFLOAT16_ACCUMULATORS, ids=[p[0] for p in BFLOAT16_ACCUMULATORS])
def test_bfloat16_accumulator_equals_optax(name, ours, reference):
    """The buffer is stored in bfloat16 and the step computed before the cast, as in optax:
    bit for bit eagerly, and bit for bit against optax's own jitted update under jit (XLA may
    keep a fused bfloat16 product in float32, the same on both sides)."""
    assert_equivalent(ours(), reference(), params=PARAMS, steps=20, jit=False, rtol=0, atol=0)
    reference = reference()
    jitted = optax.GradientTransformation(reference.init, jax.jit(reference.update))
    assert_equivalent(ours(), jitted, params=PARAMS, steps=20, jit=True, rtol=0, atol=0)


def test_nesterov_adam_and_adamw_equal_optax_in_float64():
    """A tight bound needs float64: optax's float32 bias correction keeps ~5 digits."""
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, optax
        jax.config.update("jax_enable_x64", True)
        import jaxopt_notes as jn
        from jaxopt_notes.testing import assert_equivalent
        params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.float64).reshape(3, 4), "b": jnp.ones(4, jnp.float64)}
        pairs = [
            (jn.adam(1e-2, nesterov=True), optax.adam(1e-2, nesterov=True)),
            (jn.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
            (jn.rmsprop(1e-2, centered=True, momentum=0.9), optax.rmsprop(1e-2, centered=True, momentum=0.9,
             eps_in_sqrt=False)),
            (jn.rmsprop(1e-2, bias_correction=True), optax.rmsprop(1e-2, bias_correction=True, eps_in_sqrt=False)),
        ]
        worst = max(assert_equivalent(a, b, params=params, steps=30, rtol=1e-12, atol=1e-14) for a, b in pairs)
        print("worst", worst)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "worst" in result.stdout


def test_trace_one_is_a_plain_sum():
    tx = jn.trace(1.0)
    state = tx.init({"w": jnp.zeros(2)})
    for step in range(1, 4):
        out, state = tx.update({"w": jnp.array([1.0, -2.0])}, state)
        np.testing.assert_array_equal(out["w"], [step, -2.0 * step])


def test_decay_one_is_refused_where_a_bias_correction_divides_by_it():
    for build in [
        lambda: jn.adam(0.1, b1=1.0),
        lambda: jn.adam(0.1, b2=1.0),
        lambda: jn.ewa(1.0, debias=True),
        lambda: jn.bias_correction(1.0),
        lambda: jn.scale_by_rms(1.0, bias_correction=True),
    ]:
        with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
            build()
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\]"):
        jn.trace(1.5)


def test_add_decayed_weights_errors_name_the_problem():
    tx = jn.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="needs params"):
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))
    with pytest.raises(TypeError, match=r"mask\['w'\] must be one boolean"):
        jn.add_decayed_weights(0.1, mask={"w": "yes"})
    with pytest.raises(ValueError, match="weight_decay must be a finite"):
        jn.add_decayed_weights(float("inf"))
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        jn.rmsprop(0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        jn.sgd(0.1, nesterov=True)
