"""The cases of the transcription tests, run against real torch (2.13.0 when these were written)
whenever it is importable: every optimizer and schedule over 100 steps in float32 and float64,
ReduceLROnPlateau's decisions, the refusals, the signatures, and the replay check of
``assert_equivalent`` used as a user would. This module is what proves the NumPy transcription
in tests/torch_reference.py; CI, which has no torch (several GiB), skips it."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import jaxopt_notes as jn
from jaxopt_notes.testing import NotEquivalentError, assert_equivalent
from tests import torch_cases
from tests.test_torch_errors import EVERY_ARGUMENT
from tests.test_torch_schedulers import METRICS, PLATEAU_SETTINGS
from tests.torch_cases import COMPLEX_CASES, OPTIMIZER_CASES, REFUSALS, SCHEDULE_CASES, STEPS

try:
    import torch
except ImportError:
    torch = None

pytestmark = pytest.mark.skipif(
    torch is None, reason="torch is not installed (pip install torch==2.13.0 to run these against real torch)"
)


def test_the_torch_here_is_the_version_transcribed():
    assert torch.__version__.split("+")[0] == "2.13.0", "re-read torch's documented algorithms for this version"


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda case: case.id)
def test_float32_equals_torch(case):
    rtol, atol = torch_cases.float32_tolerance()
    params = torch_cases.params(jnp.float32)
    assert_equivalent(case.ours(), case.torch_factory(), params=params, steps=STEPS, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda case: case.id)
def test_float64_equals_torch_to_1e12(case):
    with jax.enable_x64(True):
        params = torch_cases.params(jnp.float64)
        assert_equivalent(
            case.ours(), case.torch_factory(), params=params, steps=STEPS,
            rtol=torch_cases.FLOAT64_RTOL, atol=torch_cases.FLOAT64_ATOL,
        )  # fmt: skip


@pytest.mark.parametrize("case", COMPLEX_CASES, ids=lambda case: case.id)
def test_complex64_equals_torch(case):
    rtol, atol = torch_cases.float32_tolerance()
    params = torch_cases.params(jnp.complex64)
    assert_equivalent(case.ours(), case.torch_factory(), params=params, steps=STEPS, rtol=rtol, atol=atol)


def test_sgd_dampening_reproduces_torchs_first_step_copy():
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    worst = assert_equivalent(
        jn.torch.SGD(0.1, momentum=0.9, dampening=0.9),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.9),
        params=params, steps=STEPS, rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    assert worst < 1e-5


def torch_scheduler(case, optimizer):
    kwargs = dict(case.kwargs)
    if case.name == "LambdaLR":
        factor = kwargs["lr_lambda"]
        kwargs["lr_lambda"] = lambda epoch: float(factor(epoch))
    return getattr(torch.optim.lr_scheduler, case.name)(optimizer, **kwargs)


def run_torch_loop(case, params, grads):
    """A torch training loop: ``optimizer.step()`` per batch, ``scheduler.step()`` at each epoch's end."""
    leaves, treedef = jax.tree.flatten(params)
    tensors = [torch.tensor(np.array(leaf)) for leaf in leaves]
    optimizer = case.optimizer.torch_factory()(tensors)
    scheduler = torch_scheduler(case, optimizer)
    trajectory = []
    for step, g in enumerate(grads, start=1):
        for tensor, leaf in zip(tensors, jax.tree.leaves(g)):
            tensor.grad = torch.tensor(np.array(leaf))
        optimizer.step()
        if step % (case.steps_per_epoch or 1) == 0:
            scheduler.step()
        trajectory.append(jax.tree.unflatten(treedef, [t.detach().numpy().copy() for t in tensors]))
    return trajectory


def run_ours(optimizer, params, grads):
    state, update, trajectory = optimizer.init(params), jax.jit(optimizer.update), []
    for g in grads:
        updates, state = update(g, state, params)
        params = jn.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory


def largest_difference(case, dtype):
    """Runs ``case`` (a ScheduleCase) here and in torch on the same gradients; the largest
    absolute difference of the parameters, after checking every step against the tolerance."""
    params = torch_cases.params(dtype)
    keys = jax.random.split(jax.random.key(0), STEPS)
    grads = [jn.testing.random_gradients(key, params) for key in keys]
    if dtype == jnp.float64:
        rtol, atol = torch_cases.FLOAT64_RTOL, torch_cases.FLOAT64_ATOL
    else:
        rtol, atol = torch_cases.float32_tolerance()
    worst = 0.0
    for step, (ours, theirs) in enumerate(
        zip(run_ours(case.ours(), params, grads), run_torch_loop(case, params, grads))
    ):
        for name in ours:
            np.testing.assert_allclose(
                ours[name], theirs[name], rtol=rtol, atol=atol, err_msg=f"step {step + 1} {name}"
            )
            worst = max(worst, float(np.max(np.abs(np.asarray(ours[name], np.float64) - theirs[name]))))
    return worst


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda case: case.id)
def test_a_schedule_stepped_per_epoch_or_per_step_equals_torchs_scheduler_float32(case):
    largest_difference(case, jnp.float32)


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda case: case.id)
def test_a_schedule_stepped_per_epoch_or_per_step_equals_torchs_scheduler_float64(case):
    with jax.enable_x64(True):
        largest_difference(case, jnp.float64)


@given(settings=PLATEAU_SETTINGS, metrics=METRICS)
def test_reduce_on_plateau_makes_the_decisions_of_torchs_scheduler(settings, metrics):
    from tests.test_torch_schedulers import plateau_decisions

    optimizer = torch.optim.SGD([torch.zeros(2, dtype=torch.float64, requires_grad=True)], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **settings)
    expected = []
    for metric in metrics:
        scheduler.step(metric)
        expected.append(optimizer.param_groups[0]["lr"])
    with jax.enable_x64(True):
        assert plateau_decisions(jn.torch.ReduceLROnPlateau(**settings), metrics) == expected


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda refusal: refusal.id)
def test_torch_refuses_what_ours_refuses(refusal):
    with pytest.raises((ValueError, RuntimeError)):
        getattr(torch.optim, refusal.name)([torch.zeros(2, requires_grad=True)], **refusal.kwargs)


def defaults(function, skip):
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values() if p.name not in skip]


@pytest.mark.parametrize("name", EVERY_ARGUMENT)
def test_an_optimizer_has_torchs_arguments_order_and_defaults(name):
    assert defaults(getattr(jn.torch, name), ()) == defaults(getattr(torch.optim, name), ("params",))


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "LambdaLR", "ReduceLROnPlateau"])
def test_a_scheduler_has_torchs_arguments_order_and_defaults(name):
    """Ours put the initial ``lr`` where torch puts the optimizer, and add ``steps_per_epoch``
    (the plateau callback: ``monitor`` and ``hyperparam``), keyword-only, at the end."""
    extra = ("lr", "steps_per_epoch", "monitor", "hyperparam")
    ours = defaults(getattr(jn.torch, name), extra)
    assert ours == defaults(getattr(torch.optim.lr_scheduler, name), ("optimizer",))


def test_the_replay_check_proves_a_port_from_the_users_side():
    params = {"dense": {"kernel": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "bias": jnp.zeros(3)}}
    worst = assert_equivalent(
        jn.torch.AdamW(1e-3), lambda p: torch.optim.AdamW(p, lr=1e-3), params=params, steps=50, rtol=1e-5
    )
    assert worst < 1e-6


def test_the_replay_check_steps_a_scheduler_returned_beside_the_optimizer():
    def torch_side(p):
        optimizer = torch.optim.SGD(p, lr=0.1, momentum=0.9)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)

    ours = jn.torch.SGD(jn.torch.StepLR(0.1, step_size=5, gamma=0.5), momentum=0.9)
    assert_equivalent(ours, torch_side, params={"w": jnp.ones(4)}, steps=30, rtol=1e-5, atol=1e-6)


def test_the_replay_check_names_the_first_step_and_path_that_differ():
    """A port that forgot torch's dampening: the first step agrees (torch copies the
    gradient), the second does not."""
    params = {"layer": {"w": jnp.ones(3), "b": jnp.zeros(2)}}
    with pytest.raises(NotEquivalentError, match=r"^step 2: params\['layer'\]\['b'\]: values differ"):
        assert_equivalent(
            jn.torch.SGD(0.1, momentum=0.9),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.5),
            params=params,
            steps=5,
        )


def test_the_replay_check_refuses_a_factory_that_builds_no_optimizer():
    with pytest.raises(TypeError, match=r"factory params -> torch.optim.Optimizer.*it returned list"):
        assert_equivalent(jn.torch.SGD(0.1), lambda p: list(p), params={"w": jnp.ones(2)})


def test_bfloat16_parameters_are_handed_to_torch_and_back():
    params = {"w": jnp.linspace(-1.0, 1.0, 8, dtype=jnp.bfloat16)}
    assert_equivalent(
        jn.torch.SGD(0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), params=params,
        steps=10, rtol=2e-2, atol=2e-2,
    )  # fmt: skip
