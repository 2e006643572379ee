"""jn.torch's optimizers against the NumPy transcription of torch.optim's documented algorithms
(tests/torch_reference.py): 100 steps, float32, float64 and complex64; torch's first-step copy
of the gradient into the momentum buffer; injected hyperparameters changed mid-run; states
that keep their shapes and dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent
from tests import torch_cases, torch_reference
from tests.torch_cases import COMPLEX_CASES, OPTIMIZER_CASES, STEPS


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda case: case.id)
def test_float32_equals_the_transcription(case):
    rtol, atol = torch_cases.float32_tolerance()
    params = torch_cases.params(jnp.float32)
    assert_equivalent(case.ours(), case.transcription(), params=params, steps=STEPS, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda case: case.id)
def test_float64_equals_the_transcription_to_1e12(case):
    with jax.enable_x64(True):
        params = torch_cases.params(jnp.float64)
        assert_equivalent(
            case.ours(), case.transcription(), params=params, steps=STEPS,
            rtol=torch_cases.FLOAT64_RTOL, atol=torch_cases.FLOAT64_ATOL,
        )  # fmt: skip


@pytest.mark.parametrize("case", COMPLEX_CASES, ids=lambda case: case.id)
def test_complex_parameters_are_stepped_as_pairs_of_reals_as_torch_does(case):
    rtol, atol = torch_cases.float32_tolerance()
    params = torch_cases.params(jnp.complex64)
    assert_equivalent(case.ours(), case.transcription(), params=params, steps=STEPS, rtol=rtol, atol=atol)


def test_sgd_copies_the_first_gradient_into_the_buffer_then_dampens():
    """torch's b_1 = g_1 (no (1 - dampening) factor), then b_2 = 0.9 b_1 + 0.1 g_2: closed forms."""
    opt = jn.torch.SGD(0.1, momentum=0.9, dampening=0.9)
    g1, g2 = jnp.array([1.0, -2.0]), jnp.array([4.0, 0.5])
    state = opt.init(jnp.zeros(2))
    step1, state = opt.update(g1, state)
    step2, state = opt.update(g2, state)
    np.testing.assert_allclose(step1, -0.1 * g1, rtol=1e-7)
    np.testing.assert_allclose(step2, -0.1 * (0.9 * g1 + 0.1 * g2), rtol=1e-6)
    # A zero-initialised buffer (optax.trace, the notes' EWA) would step -0.1 * 0.1 * g1 first.
    assert not np.allclose(step1, -0.1 * 0.1 * g1)


def run(optimizer, params, grads, change=None):
    """Params after each of ``grads``; ``change(step, state) -> state`` between steps."""
    state, trajectory = optimizer.init(params), []
    update = jax.jit(optimizer.update)
    for step, g in enumerate(grads):
        if change is not None:
            state = change(step, state)
        updates, state = update(g, state, params)
        params = jn.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory


def run_transcription(reference, params, grads, change=None):
    state, trajectory = reference.init(params), []
    for step, g in enumerate(grads):
        if change is not None:
            change(step, reference)
        updates, state = reference.update(g, state, params)
        params = jax.tree.map(lambda p, u: np.asarray(p) + u, params, updates)
        trajectory.append(params)
    return trajectory


def gradients(params, steps, seed=0):
    keys = jax.random.split(jax.random.key(seed), steps)
    return [jn.testing.random_gradients(key, params) for key in keys]


def assert_trajectories_equal(ours, reference, rtol, atol):
    for step, (a, b) in enumerate(zip(ours, reference), start=1):
        for path, x in jax.tree_util.tree_flatten_with_path(a)[0]:
            y = dict(jax.tree_util.tree_flatten_with_path(b)[0])[path]
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {step} {path}")


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
        ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
        ("AdamW", {"lr": 0.01}),
        ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ],
)
def test_an_injected_lr_set_mid_run_changes_the_rate_as_torch_param_groups_do(name, kwargs):
    """torch: ``for group in opt.param_groups: group["lr"] = 0.001`` after 30 steps."""
    params = torch_cases.params(jnp.float32)
    grads = gradients(params, 60)
    ours = jn.inject_hyperparams(getattr(jn.torch, name))(**kwargs)

    def lower(step, state):
        return jn.set_hyperparams(state, lr=0.001) if step == 30 else state

    def lower_reference(step, reference):
        if step == 30:
            reference.lr = 0.001

    reference = getattr(torch_reference, "Torch" + name)(**kwargs)
    rtol, atol = torch_cases.float32_tolerance(60)
    assert_trajectories_equal(
        run(ours, params, grads, lower), run_transcription(reference, params, grads, lower_reference), rtol, atol
    )


def test_momentum_injected_at_zero_then_raised_starts_its_buffer_with_a_copy():
    """torch keeps no buffer while momentum is 0; the first step after it is raised copies the
    gradient into a new buffer."""
    params = torch_cases.params(jnp.float32)
    grads = gradients(params, 40, seed=3)
    ours = jn.inject_hyperparams(jn.torch.SGD)(lr=0.05, momentum=0, dampening=0.5)

    def raise_momentum(step, state):
        return jn.set_hyperparams(state, momentum=0.9) if step == 20 else state

    def raise_reference(step, reference):
        if step == 20:
            reference.momentum = 0.9

    reference = torch_reference.TorchSGD(lr=0.05, momentum=0, dampening=0.5)
    rtol, atol = torch_cases.float32_tolerance(40)
    assert_trajectories_equal(
        run(ours, params, grads, raise_momentum),
        run_transcription(reference, params, grads, raise_reference),
        rtol,
        atol,
    )


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda case: case.id)
def test_the_state_keeps_its_shapes_and_dtypes_across_steps(case):
    """Old and new state through lax.cond: a change of shape or dtype would not trace."""
    opt = case.ours()
    params = torch_cases.params(jnp.float32)
    state = opt.init(params)
    _, new_state = jax.jit(opt.update)(jax.tree.map(jnp.ones_like, params), state, params)
    jax.jit(lambda flag: jax.lax.cond(flag, lambda: state, lambda: new_state))(True)


def test_the_optimizers_are_element_wise_so_fit_can_pack_them():
    for case in OPTIMIZER_CASES:
        assert isinstance(case.ours(), jn.ElementwiseTransformation), case.id


def test_fit_trains_with_a_torch_optimizer_as_the_transcription_does():
    """Full-batch fit (one step per epoch, no shuffling effect) equals the transcription's steps."""
    x = np.linspace(-1.0, 1.0, 32, dtype=np.float32)[:, None]
    y = 3.0 * x[:, 0] - 1.0

    def loss(p, xb, yb):
        return jnp.mean((p["w"] * xb[:, 0] + p["b"] - yb) ** 2)

    params = {"w": jnp.array(0.5), "b": jnp.array(0.0)}
    trained, _ = jn.fit(loss, params, jn.torch.Adam(0.05, amsgrad=True), x, y, batch_size=32, epochs=20, progress=False)
    reference, state = torch_reference.TorchAdam(0.05, amsgrad=True), None
    ref_params = jax.tree.map(np.asarray, params)
    state = reference.init(ref_params)
    for _ in range(20):
        g = jax.grad(loss)(jax.tree.map(jnp.asarray, ref_params), x, y)
        updates, state = reference.update(g, state, ref_params)
        ref_params = jax.tree.map(lambda p, u: (p + u).astype(np.float32), ref_params, updates)
    for name in params:
        np.testing.assert_allclose(trained[name], ref_params[name], rtol=1e-5, atol=1e-6)
