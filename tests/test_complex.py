"""Complex parameters, optimized as optax does: complex first moments and
updates, second moments of ``|g|**2`` (real values, kept in the parameter's dtype as optax
keeps them), on complex64 here and complex128 under x64 in a subprocess."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent, random_gradients

PARAMS = {
    "w": (jnp.linspace(-1.0, 1.0, 12) + 1j * jnp.linspace(0.5, -0.5, 12)).reshape(3, 4).astype(jnp.complex64),
    "b": jnp.linspace(0.1, 0.4, 4),  # a real leaf beside the complex ones
    "z": jnp.asarray(0.5 - 0.25j, jnp.complex64),
}


def half_per_step(step):
    return 0.1 * 0.5**step


# (name, ours, optax), each built with the same arguments.
PAIRS = [
    ("sgd", lambda: jn.sgd(0.05), lambda: optax.sgd(0.05)),
    ("sgd schedule", lambda: jn.sgd(half_per_step), lambda: optax.sgd(half_per_step)),
    ("momentum undampened", lambda: jn.momentum(0.05, 0.9, dampened=False), lambda: optax.sgd(0.05, 0.9)),
    (
        "momentum nesterov",
        lambda: jn.momentum(0.05, 0.9, dampened=False, nesterov=True),
        lambda: optax.sgd(0.05, 0.9, nesterov=True),
    ),
    (
        "momentum (notes)",
        lambda: jn.momentum(0.05, 0.9),
        lambda: optax.chain(optax.ema(0.9, debias=False), optax.scale_by_learning_rate(0.05)),
    ),
    (
        "ewa debias",
        lambda: jn.chain(jn.ewa(0.8, debias=True), jn.scale(-0.1)),
        lambda: optax.chain(optax.ema(0.8), optax.scale(-0.1)),
    ),
    ("rmsprop", lambda: jn.rmsprop(0.01), lambda: optax.rmsprop(0.01, eps_in_sqrt=False)),
    ("rmsprop eps_in_sqrt", lambda: jn.rmsprop(0.01, eps_in_sqrt=True), lambda: optax.rmsprop(0.01)),
    (
        "rmsprop centered momentum",
        lambda: jn.rmsprop(0.01, centered=True, momentum=0.9),
        lambda: optax.rmsprop(0.01, centered=True, momentum=0.9, eps_in_sqrt=False),
    ),
    (
        "scale_by_rms bias_correction",
        lambda: jn.chain(jn.scale_by_rms(0.9, 1e-8, 0.0, True, True), jn.scale(-0.01)),
        lambda: optax.chain(optax.scale_by_rms(0.9, 1e-8, 0.0, True, True), optax.scale(-0.01)),
    ),
    ("adam", lambda: jn.adam(1e-2), lambda: optax.adam(1e-2)),
    ("adam nesterov", lambda: jn.adam(1e-2, nesterov=True), lambda: optax.adam(1e-2, nesterov=True)),
    (
        "adam complex mu_dtype",
        lambda: jn.adam(1e-2, mu_dtype=jnp.complex64),
        lambda: optax.adam(1e-2, mu_dtype=jnp.complex64),
    ),
    ("adamw", lambda: jn.adamw(1e-2, weight_decay=0.1), lambda: optax.adamw(1e-2, weight_decay=0.1)),
    (
        "inject_hyperparams(adam)",
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=1e-2),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
    ),
]


@pytest.mark.parametrize("name, ours, reference", PAIRS, ids=[p[0] for p in PAIRS])
def test_complex64_equals_optax(name, ours, reference):
    # Adam's 5e-5 is optax's float32 bias correction (see test_equivalence). optax's
    # inject_hyperparams stores the rate in the parameters' widest dtype, complex here, which
    # makes a real leaf's update complex, as a complex mu_dtype does: those pairs run on the
    # complex leaves only.
    complex_only = name.startswith("inject") or "mu_dtype" in name
    params = {"w": PARAMS["w"], "z": PARAMS["z"]} if complex_only else PARAMS
    assert_equivalent(ours(), reference(), params=params, steps=20, rtol=5e-5, atol=1e-6)


def test_second_moments_are_real_valued_in_the_parameters_dtype_as_optax():
    grads = random_gradients(jax.random.key(0), PARAMS)
    ours, reference = jn.adam(1e-2), optax.adam(1e-2)
    _, ours_state = ours.update(grads, ours.init(PARAMS), PARAMS)
    _, ref_state = reference.update(grads, reference.init(PARAMS), PARAMS)
    for key in ("mu", "nu"):
        for a, b in zip(jax.tree.leaves(getattr(ours_state[0], key)), jax.tree.leaves(getattr(ref_state[0], key))):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-6)
    nu = ours_state[0].nu["w"]
    assert nu.dtype == jnp.complex64 and not np.any(np.imag(nu))
    np.testing.assert_allclose(np.real(nu), 0.001 * np.abs(np.asarray(grads["w"])) ** 2, rtol=1e-6)


def test_integer_and_boolean_leaves_are_still_refused_with_their_path():
    for dtype in (jnp.int32, jnp.bool_):
        params = {"z": PARAMS["z"], "steps": jnp.ones(3, dtype)}
        with pytest.raises(TypeError, match=r"params\['steps'\] has dtype"):
            jn.adam(0.1).init(params)


def test_complex128_equals_optax_tightly_under_x64():
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, optax
        jax.config.update("jax_enable_x64", True)
        import jaxopt_notes as jn
        from jaxopt_notes.testing import assert_equivalent
        w = (jnp.linspace(-1, 1, 12) + 1j * jnp.linspace(0.5, -0.5, 12)).reshape(3, 4)
        params = {"w": w.astype(jnp.complex128), "z": jnp.asarray(0.5 - 0.25j, jnp.complex128)}
        pairs = [
            (jn.adam(1e-2), optax.adam(1e-2)),
            (jn.adam(1e-2, nesterov=True), optax.adam(1e-2, nesterov=True)),
            (jn.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
            (jn.rmsprop(1e-2), optax.rmsprop(1e-2, eps_in_sqrt=False)),
            (jn.rmsprop(1e-2, centered=True, momentum=0.9), optax.rmsprop(1e-2, centered=True, momentum=0.9,
                                                                          eps_in_sqrt=False)),
            (jn.momentum(1e-2, 0.9, dampened=False), optax.sgd(1e-2, 0.9)),
            (jn.sgd(1e-2), optax.sgd(1e-2)),
        ]
        worst = max(assert_equivalent(a, b, params=params, steps=30, rtol=1e-12, atol=1e-14) for a, b in pairs)
        # A complex64 first moment for complex128 parameters: optax steps with the moment before
        # it is rounded to complex64, we with the stored one, so they agree to complex64 rounding.
        worst_mu = assert_equivalent(jn.adam(1e-2, mu_dtype=jnp.complex64), optax.adam(1e-2, mu_dtype=jnp.complex64),
                                     params=params, steps=30, rtol=1e-5, atol=1e-7)
        print("worst", worst, worst_mu)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "worst" in result.stdout
