"""Every transform and optimizer against optax and against the notes' formulas in NumPy."""

import subprocess
import sys
import textwrap

import jax.numpy as jnp
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent
from jaxopt_notes.testing import strategies as st_jn
from tests.numpy_reference import NotesAdam, NotesEwa, NotesMomentum, NotesRmsprop

PARAMS = {
    "dense": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)},
    "scalar": jnp.asarray(0.5),
    "empty": jnp.zeros((0, 3)),
    "layers": [jnp.ones((2, 2, 2)), None],
}


def half_per_step(step):
    return 0.1 * 0.5**step


def scaled(transform, reference):
    """A direction-only transform (no learning rate) followed by a small step, as in real use,
    so the parameters stay of order one instead of accumulating raw directions."""
    return lambda: jn.chain(transform(), jn.scale(-0.01)), lambda: optax.chain(reference(), optax.scale(-0.01))


# (name, ours, optax reference) with matching arguments.
OPTAX_PAIRS = [
    ("ewa", *scaled(lambda: jn.ewa(0.9), lambda: optax.ema(0.9, debias=False))),
    ("ewa debias", *scaled(lambda: jn.ewa(0.8, debias=True), lambda: optax.ema(0.8, debias=True))),
    ("ewa + bias_correction", *scaled(lambda: jn.chain(jn.ewa(0.7), jn.bias_correction(0.7)), lambda: optax.ema(0.7))),
    ("trace", *scaled(lambda: jn.trace(0.9), lambda: optax.trace(0.9))),
    ("trace nesterov", *scaled(lambda: jn.trace(0.5, nesterov=True), lambda: optax.trace(0.5, nesterov=True))),
    ("scale", lambda: jn.scale(-0.3), lambda: optax.scale(-0.3)),
    ("scale_by_learning_rate", lambda: jn.scale_by_learning_rate(0.1), lambda: optax.scale_by_learning_rate(0.1)),
    (
        "scale_by_learning_rate schedule",
        lambda: jn.scale_by_learning_rate(half_per_step),
        lambda: optax.scale_by_learning_rate(half_per_step),
    ),
    ("scale_by_rms", *scaled(lambda: jn.scale_by_rms(0.9), lambda: optax.scale_by_rms(0.9, eps_in_sqrt=False))),
    (
        "scale_by_rms eps_in_sqrt",
        *scaled(
            lambda: jn.scale_by_rms(0.99, 1e-6, eps_in_sqrt=True),
            lambda: optax.scale_by_rms(0.99, 1e-6, eps_in_sqrt=True),
        ),
    ),
    ("scale_by_adam", *scaled(lambda: jn.scale_by_adam(), lambda: optax.scale_by_adam())),
    (
        "scale_by_adam eps_root",
        *scaled(
            lambda: jn.scale_by_adam(0.8, 0.99, 1e-6, eps_root=1e-8),
            lambda: optax.scale_by_adam(0.8, 0.99, 1e-6, eps_root=1e-8),
        ),
    ),
    ("sgd", lambda: jn.sgd(0.05), lambda: optax.sgd(0.05)),
    ("sgd schedule", lambda: jn.sgd(half_per_step), lambda: optax.sgd(half_per_step)),
    (
        "momentum undampened",
        lambda: jn.momentum(0.05, 0.9, dampened=False),
        lambda: optax.sgd(0.05, momentum=0.9),
    ),
    (
        "momentum nesterov",
        lambda: jn.momentum(0.05, 0.9, dampened=False, nesterov=True),
        lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    (
        "momentum (notes)",
        lambda: jn.momentum(0.05, 0.9),
        lambda: optax.chain(optax.ema(0.9, debias=False), optax.scale(-0.05)),
    ),
    ("rmsprop", lambda: jn.rmsprop(0.01), lambda: optax.rmsprop(0.01, eps_in_sqrt=False)),
    (
        "rmsprop eps_in_sqrt",
        lambda: jn.rmsprop(0.01, 0.95, 1e-6, eps_in_sqrt=True),
        lambda: optax.rmsprop(0.01, 0.95, 1e-6, eps_in_sqrt=True),
    ),
    ("adam", lambda: jn.adam(1e-3), lambda: optax.adam(1e-3)),
    ("adam schedule", lambda: jn.adam(half_per_step, 0.5, 0.9), lambda: optax.adam(half_per_step, 0.5, 0.9)),
]

NUMPY_PAIRS = [
    ("ewa", lambda: jn.ewa(0.9), lambda: NotesEwa(0.9)),
    ("ewa debias", lambda: jn.ewa(0.98, debias=True), lambda: NotesEwa(0.98, debias=True)),
    ("bias_correction", lambda: jn.chain(jn.ewa(0.5), jn.bias_correction(0.5)), lambda: NotesEwa(0.5, True)),
    ("momentum", lambda: jn.momentum(0.1, 0.9), lambda: NotesMomentum(0.1, 0.9)),
    (
        "momentum undampened",
        lambda: jn.momentum(0.1, 0.8, dampened=False),
        lambda: NotesMomentum(0.1, 0.8, dampened=False),
    ),
    ("rmsprop", lambda: jn.rmsprop(0.01, 0.9, 1e-8), lambda: NotesRmsprop(0.01, 0.9, 1e-8)),
    ("adam", lambda: jn.adam(0.01), lambda: NotesAdam(0.01)),
    ("adam betas", lambda: jn.adam(0.02, 0.5, 0.75, 1e-4), lambda: NotesAdam(0.02, 0.5, 0.75, 1e-4)),
]


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
@pytest.mark.parametrize("name, ours, reference", OPTAX_PAIRS, ids=[p[0] for p in OPTAX_PAIRS])
def test_equals_optax(name, ours, reference, jit):
    # optax computes 1 - beta**t in float32 directly, which keeps about 5 significant digits at
    # beta = 0.999 (ours uses expm1 and is good to 1e-7, see test_bias_correction_is_accurate).
    assert_equivalent(ours(), reference(), params=PARAMS, steps=20, jit=jit, rtol=5e-5, atol=1e-6)


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
@pytest.mark.parametrize("name, ours, reference", NUMPY_PAIRS, ids=[p[0] for p in NUMPY_PAIRS])
def test_equals_notes_formula_in_numpy(name, ours, reference, jit):
    assert_equivalent(ours(), reference(), params=PARAMS, steps=25, jit=jit, rtol=2e-6, atol=1e-6)


@given(
    params=st_jn.pytrees(),
    decay=st_jn.decays(),
    b2=st_jn.decays(min_value=0.5, max_value=0.999),
    eps=st_jn.epsilons(),
    lr=st_jn.learning_rates(),
    seed=st.integers(0, 1000),
)
def test_random_pytrees_and_hyperparameters_equal_optax(params, decay, b2, eps, lr, seed):
    pairs = [
        (jn.ewa(decay, debias=True), optax.ema(decay, debias=True)),
        (jn.trace(decay), optax.trace(decay)),
        (jn.momentum(lr, decay, dampened=False), optax.sgd(lr, momentum=decay)),
        (jn.rmsprop(lr, decay, eps), optax.rmsprop(lr, decay, eps, eps_in_sqrt=False)),
        (jn.scale_by_rms(decay, eps, eps_in_sqrt=True), optax.scale_by_rms(decay, eps, eps_in_sqrt=True)),
        (jn.adam(lr, decay, b2, eps), optax.adam(lr, decay, b2, eps)),
    ]
    for ours, reference in pairs:
        # Betas stop at 0.999: beyond it optax's float32 1 - beta**t keeps only 3-4 digits
        # (test_bias_correction_is_accurate checks ours there against exact arithmetic). Steps
        # of size lr <= 1 that cancel carry that 3e-5 relative error as an absolute one.
        assert_equivalent(ours, reference, params=params, steps=5, jit=False, seed=seed, rtol=2e-4, atol=1e-4)


def test_bfloat16_equals_optax():
    params = {"w": jnp.linspace(-1, 1, 64, dtype=jnp.bfloat16).reshape(8, 8)}
    for ours, reference in [
        (jn.adam(1e-2), optax.adam(1e-2)),
        (jn.rmsprop(1e-2), optax.rmsprop(1e-2, eps_in_sqrt=False)),
        (jn.momentum(1e-2, dampened=False), optax.sgd(1e-2, momentum=0.9)),
    ]:
        # bfloat16 keeps 8 significant bits: one rounding apart is 2**-7 relative.
        assert_equivalent(ours, reference, params=params, steps=20, rtol=2e-2, atol=2e-2)


def test_float64_equals_optax_and_numpy_tightly():
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, optax
        jax.config.update("jax_enable_x64", True)
        import jaxopt_notes as jn
        from jaxopt_notes.testing import assert_equivalent
        from tests.numpy_reference import NotesAdam, NotesMomentum, NotesRmsprop
        params = {"w": jnp.linspace(-1, 1, 12, dtype=jnp.float64).reshape(3, 4), "b": jnp.zeros(4, jnp.float64)}
        pairs = [
            (jn.adam(1e-2), optax.adam(1e-2)), (jn.adam(1e-2), NotesAdam(1e-2)),
            (jn.rmsprop(1e-2), optax.rmsprop(1e-2, eps_in_sqrt=False)),
            (jn.rmsprop(1e-2), NotesRmsprop(1e-2, 0.9, 1e-8)),
            (jn.momentum(1e-2), NotesMomentum(1e-2, 0.9)), (jn.ewa(0.9, debias=True), optax.ema(0.9)),
        ]
        worst = max(assert_equivalent(a, b, params=params, steps=30, rtol=1e-12, atol=1e-14) for a, b in pairs)
        print("worst", worst)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "worst" in result.stdout


def test_a_reference_that_is_no_optimizer_is_refused_naming_the_accepted_forms():
    from jaxopt_notes.testing import assert_equivalent

    with pytest.raises(TypeError, match=r"reference must be a gradient transformation.*Keras optimizer.*PyTorch"):
        assert_equivalent(jn.sgd(0.1), 3, params={"w": jnp.ones(2)})
