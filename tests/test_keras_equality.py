"""Every ``jaxopt_notes.keras`` constructor against the real Keras 3 optimizer on the same
gradients, 100 steps, with schedules, weight decay, clipping, EMA, amsgrad, nesterov, centered
and momentum (the cases of ``tests/keras_reference.py``): float64 within 1e-12 relative (in a
subprocess, so x64 stays out of this one), float32 within 2 ulps per step, against Keras both
uncompiled (each operation rounded as written) and compiled (as ``model.fit`` runs it); and,
run uncompiled too, ours equal to uncompiled Keras to the last bit.

Also the two conventions no optax chain reproduces: Keras' SGD under a decaying rate (the rate
inside the velocity) and Adam's epsilon hat."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests import keras_reference as reference

keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("these comparisons need KERAS_BACKEND=jax", allow_module_level=True)

import jaxopt_notes as jn  # noqa: E402
import jaxopt_notes.keras  # noqa: E402, F401  (jn.keras)


@pytest.fixture(scope="module")
def float64_worst() -> dict[str, list[float]]:
    return reference.float64_worst()


@pytest.mark.parametrize("case", reference.CASES, ids=reference.CASE_NAMES)
def test_float64_within_1e_12_relative(case, float64_worst):
    uncompiled, compiled = float64_worst[case.name]
    assert uncompiled <= 1e-12 and compiled <= 1e-12, (uncompiled, compiled)


@pytest.mark.parametrize("compiled", [False, True], ids=["keras uncompiled", "keras compiled"])
@pytest.mark.parametrize("case", reference.CASES, ids=reference.CASE_NAMES)
def test_float32_within_two_ulps_per_step(case, compiled):
    comparison = reference.compare(case, np.float32, compiled=compiled)
    assert comparison.worst_per_step <= 2, comparison.by_step


@pytest.mark.parametrize("case", reference.CASES, ids=reference.CASE_NAMES)
def test_uncompiled_it_is_keras_arithmetic_to_the_last_bit(case):
    """Run op by op as Keras runs, ours rounds as Keras does: equal to the bit, but where the
    weight decay or the EMA overwrite return a weight through ``apply_updates``' addition,
    which may round a weight near 0 by one ulp of its own."""
    comparison = reference.compare(case, np.float32, ours_compiled=False)
    if "weight_decay" in case.kwargs or "ema_overwrite_frequency" in case.kwargs:
        assert comparison.worst <= 0.1, comparison.by_step
    else:
        assert comparison.worst == 0, comparison.by_step


def test_the_comparison_sees_a_one_ulp_change():
    """The float32 measure is not blind: a parameter moved by one ulp counts as one."""
    value = np.float32(1.5)
    assert reference.ulps(np.nextafter(value, np.float32(2)), value) == 1.0
    assert reference.relative_difference(np.float64(2.0) * (1 + 1e-12), np.float64(2.0)) > 0.9e-12


def test_every_constructor_and_schedule_has_a_case():
    used = {case.optimizer for case in reference.CASES}
    used |= {case.schedule[0] for case in reference.CASES if case.schedule}
    assert used == {"SGD", "RMSprop", "Adam", "AdamW", "ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay"}
    options = {key for case in reference.CASES for key in case.kwargs}
    assert {"weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_overwrite_frequency"} <= options
    assert {"amsgrad", "nesterov", "centered", "momentum"} <= options


def keras_steps(optimizer, params, grads):
    """Keras' parameters after each of ``grads``' steps (apply_gradients on Keras variables)."""
    variables = [keras.Variable(leaf) for leaf in params]
    after = []
    for step_grads in grads:
        optimizer.apply_gradients(zip([jnp.asarray(g) for g in step_grads], variables))
        after.append([np.asarray(v.value) for v in variables])
    return after, variables


def transformation_steps(optimizer, params, grads):
    state = optimizer.init(params)
    after = []
    for step_grads in grads:
        updates, state = optimizer.update(step_grads, state, params)
        params = jn.apply_updates(params, updates)
        after.append([np.asarray(leaf) for leaf in params])
    return after, state


PARAMS = [np.linspace(-1.0, 1.0, 6, dtype=np.float32)]
GRADS = [[np.full(6, 1.0 + 0.1 * step, np.float32)] for step in range(10)]


def largest_relative(a, b):
    return max(reference.relative_difference(x, y) for xs, ys in zip(a, b) for x, y in zip(xs, ys))


def test_sgd_under_a_decaying_rate_equals_keras_where_optax_sgd_does_not():
    """Keras multiplies each gradient by its own step's rate as it enters the velocity; optax
    multiplies the whole buffer by the current rate."""
    schedule = dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.5)
    theirs, _ = keras_steps(
        keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(**schedule), momentum=0.9), PARAMS, GRADS
    )
    ours, _ = transformation_steps(jn.keras.SGD(jn.keras.ExponentialDecay(**schedule), momentum=0.9), PARAMS, GRADS)
    optax_sgd, _ = transformation_steps(optax.sgd(jn.keras.ExponentialDecay(**schedule), momentum=0.9), PARAMS, GRADS)
    assert largest_relative(ours, theirs) < 1e-6
    assert largest_relative(optax_sgd, theirs) > 1e-2
    # Under a constant rate the two conventions agree, which is why the trap hides.
    constant, _ = keras_steps(keras.optimizers.SGD(0.1, momentum=0.9), PARAMS, GRADS)
    optax_constant, _ = transformation_steps(optax.sgd(0.1, momentum=0.9), PARAMS, GRADS)
    assert largest_relative(optax_constant, constant) < 1e-6


def test_adam_epsilon_hat_equals_keras_where_optax_adam_with_that_eps_does_not():
    theirs, _ = keras_steps(keras.optimizers.Adam(0.1, epsilon=0.5), PARAMS, GRADS)
    ours, _ = transformation_steps(jn.keras.Adam(0.1, epsilon=0.5), PARAMS, GRADS)
    optax_adam, _ = transformation_steps(optax.adam(0.1, eps=0.5), PARAMS, GRADS)
    assert largest_relative(ours, theirs) < 1e-6
    assert largest_relative(optax_adam, theirs) > 1e-2


def test_ema_params_reads_the_weights_keras_writes_at_the_end_of_training():
    """``ema_params`` equals what ``finalize_variable_values`` (called by ``model.fit`` at the
    end) writes into Keras' variables."""
    arguments = dict(learning_rate=0.05, momentum=0.9, use_ema=True, ema_momentum=0.7)
    _, variables = keras_steps(optimizer := keras.optimizers.SGD(**arguments), PARAMS, GRADS)
    optimizer.finalize_variable_values(variables)
    _, state = transformation_steps(jn.keras.SGD(**arguments), PARAMS, GRADS)
    np.testing.assert_allclose(np.asarray(jn.keras.ema_params(state)[0]), np.asarray(variables[0].value), rtol=1e-6)


def test_a_rate_changed_mid_run_by_inject_hyperparams_follows_keras_assigning_it():
    """``set_hyperparams`` on ``inject_hyperparams(jn.keras.Adam)`` equals setting
    ``optimizer.learning_rate`` between two of Keras' steps; the same compiled step runs on."""
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    variables = [keras.Variable(leaf) for leaf in PARAMS]
    ours = jn.inject_hyperparams(jn.keras.Adam)(learning_rate=0.01)
    params = [jnp.asarray(leaf) for leaf in PARAMS]
    state = ours.init(params)
    update = jax.jit(ours.update)
    for step, grads in enumerate(GRADS):
        if step == 5:
            optimizer.learning_rate = 0.001
            state = jn.set_hyperparams(state, learning_rate=0.001)
        optimizer.apply_gradients(zip([jnp.asarray(g) for g in grads], variables))
        updates, state = update(grads, state, params)
        params = jn.apply_updates(params, updates)
        # The injected betas are float32 arrays, so 1 - beta_1 rounds in float32 where Keras
        # rounds the double: a few ulps, growing with the steps.
        assert reference.ulps(np.asarray(params[0]), np.asarray(variables[0].value)) <= 2 * (step + 1)
    assert update._cache_size() == 1
    assert float(jn.learning_rate_in_use(state)) == pytest.approx(0.001)


def test_the_multisteps_that_the_accumulation_error_names_equals_keras_accumulating():
    """``gradient_accumulation_steps=k`` is refused with ``optax.MultiSteps(..., every_k_schedule=k)``
    as the way to get it; that way gives Keras' numbers."""
    with pytest.raises(ValueError, match=r"optax.MultiSteps\(jn.keras.Adam\(...\), every_k_schedule=3\)"):
        jn.keras.Adam(0.01, gradient_accumulation_steps=3)
    grads = GRADS[:9]  # three updates
    theirs, _ = keras_steps(keras.optimizers.Adam(0.01, gradient_accumulation_steps=3), PARAMS, grads)
    ours, _ = transformation_steps(optax.MultiSteps(jn.keras.Adam(0.01), every_k_schedule=3), PARAMS, grads)
    assert largest_relative(ours, theirs) < 1e-6
    # Keras' schedule sees every minibatch (update u at minibatch 3u + 2), MultiSteps' the updates.
    schedule = dict(initial_learning_rate=0.01, decay_steps=2, decay_rate=0.5)
    keras_schedule = keras.optimizers.schedules.ExponentialDecay(**schedule)
    theirs, _ = keras_steps(keras.optimizers.Adam(keras_schedule, gradient_accumulation_steps=3), PARAMS, grads)
    ours_schedule = jn.keras.ExponentialDecay(**schedule)
    per_update = optax.MultiSteps(jn.keras.Adam(lambda step: ours_schedule(3 * step + 2)), every_k_schedule=3)
    ours, _ = transformation_steps(per_update, PARAMS, grads)
    assert largest_relative(ours, theirs) < 1e-6
