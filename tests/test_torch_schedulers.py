"""jn.torch's schedulers against the NumPy transcription of torch.optim.lr_scheduler: the rate
at every step with ``scheduler.step()`` at each epoch's end (the one-epoch lag) or after every
step, whole optimizer runs under a schedule, and ReduceLROnPlateau's decisions on the same
metric sequences, alone and inside fit."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent
from tests import torch_cases, torch_reference
from tests.torch_cases import SCHEDULE_CASES, STEPS


class RateOnly:
    """A stand-in torch optimizer for the transcribed schedulers: only its ``lr``."""

    def __init__(self, lr: float):
        self.lr = lr


def torch_rates(make_scheduler, lr, steps, steps_per_epoch):
    """The rate each of ``steps`` optimizer steps uses in a torch loop calling
    ``scheduler.step()`` after every ``steps_per_epoch`` of them."""
    optimizer = RateOnly(lr)
    scheduler = make_scheduler(optimizer)
    rates = []
    for step in range(1, steps + 1):
        rates.append(optimizer.lr)
        if step % steps_per_epoch == 0:
            scheduler.step()
    return np.array(rates)


SCHEDULES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("StepLR", {"step_size": 1}),
    ("MultiStepLR", {"milestones": [4, 1, 4, 7], "gamma": 0.3}),
    ("MultiStepLR", {"milestones": [0, 2]}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("LambdaLR", {"lr_lambda": torch_cases.warm_then_inverse_time}),
    ("LambdaLR", {"lr_lambda": lambda epoch: 0.5 ** (epoch // 2)}),
]


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=[f"{n}{k}" for n, k in SCHEDULES])
@pytest.mark.parametrize("steps_per_epoch", [None, 1, 5])
def test_every_step_uses_torchs_rate(name, kwargs, steps_per_epoch):
    with jax.enable_x64(True):
        schedule = getattr(jn.torch, name)(0.1, **kwargs, steps_per_epoch=steps_per_epoch)
        ours = np.array([schedule(step) for step in range(60)])
        expected = torch_rates(lambda opt: getattr(torch_reference, name)(opt, **kwargs), 0.1, 60, steps_per_epoch or 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-14, atol=0)


def test_per_epoch_stepping_keeps_the_initial_rate_for_the_whole_first_epoch():
    """The one-epoch lag: torch's first scheduler.step() comes after epoch 0, so all of its
    steps run at the initial rate, and epoch e runs at lr * gamma**e."""
    schedule = jn.torch.ExponentialLR(1.0, gamma=0.5, steps_per_epoch=4)
    rates = [float(schedule(step)) for step in range(12)]
    assert rates == [1.0] * 4 + [0.5] * 4 + [0.25] * 4


def test_schedules_run_under_jit_and_vmap():
    schedule = jn.torch.MultiStepLR(0.1, [2, 5], gamma=0.5, steps_per_epoch=3)
    steps = jnp.arange(20)
    np.testing.assert_array_equal(jax.jit(jax.vmap(schedule))(steps), np.array([schedule(s) for s in range(20)]))


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda case: case.id)
def test_an_optimizer_under_a_schedule_equals_the_transcribed_loop_in_float32(case):
    rtol, atol = torch_cases.float32_tolerance()
    assert_equivalent(
        case.ours(), case.transcription(), params=torch_cases.params(jnp.float32), steps=STEPS, rtol=rtol, atol=atol
    )


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=lambda case: case.id)
def test_an_optimizer_under_a_schedule_equals_the_transcribed_loop_in_float64(case):
    with jax.enable_x64(True):
        assert_equivalent(
            case.ours(), case.transcription(), params=torch_cases.params(jnp.float64), steps=STEPS,
            rtol=torch_cases.FLOAT64_RTOL, atol=torch_cases.FLOAT64_ATOL,
        )  # fmt: skip


def test_a_lambda_that_cannot_be_traced_is_refused_when_built():
    with pytest.raises(TypeError, match=r"LambdaLR: lr_lambda must work on a traced integer epoch.*jnp.where"):
        jn.torch.LambdaLR(0.1, lambda epoch: 1.0 if epoch < 5 else 0.1)
    with pytest.raises(ValueError, match=r"LambdaLR: lr_lambda must return a scalar factor, got shape \(2,\)"):
        jn.torch.LambdaLR(0.1, lambda epoch: jnp.ones(2) * epoch)


@dataclasses.dataclass
class Event:
    """The fields of fit's EpochEnd that the callback reads and writes."""

    epoch: int
    cost: np.ndarray
    opt_state: Any
    validation: dict = dataclasses.field(default_factory=dict)


def plateau_decisions(callback, metrics, lr=0.1):
    """The rate after each epoch when ``callback`` sees ``metrics`` as the epoch's mean cost."""
    state = jn.inject_hyperparams(jn.torch.SGD)(lr=lr, momentum=0.9).init({"w": jnp.zeros(2, jnp.float64)})
    rates = []
    for epoch, metric in enumerate(metrics, start=1):
        event = Event(epoch, np.array([metric, metric]), state)
        callback(event)
        state = event.opt_state
        rates.append(float(state.hyperparams["lr"]))
    return rates


PLATEAU_SETTINGS = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["min", "max"]),
        "factor": st.sampled_from([0.0, 0.1, 0.5, 0.9]),
        "patience": st.integers(0, 3),
        "threshold": st.sampled_from([0.0, 1e-4, 0.05, 0.5]),
        "threshold_mode": st.sampled_from(["rel", "abs"]),
        "cooldown": st.integers(0, 2),
        "min_lr": st.sampled_from([0.0, 0.004, 0.05]),
        "eps": st.sampled_from([1e-8, 0.003]),
    }
)
METRICS = st.lists(
    st.one_of(st.sampled_from([1.0, 0.5, 2.0, -1.0, math.nan]), st.floats(-3, 3, allow_nan=False)),
    min_size=1,
    max_size=25,
)


@given(settings=PLATEAU_SETTINGS, metrics=METRICS)
def test_reduce_on_plateau_makes_torchs_decisions(settings, metrics):
    with jax.enable_x64(True):
        ours = plateau_decisions(jn.torch.ReduceLROnPlateau(**settings), metrics)
    reference = torch_reference.ReduceLROnPlateau(0.1, **settings)
    assert ours == [reference.step(metric) for metric in metrics]


def test_reduce_on_plateau_reads_a_validation_value_when_asked():
    callback = jn.torch.ReduceLROnPlateau(mode="max", patience=0, monitor="accuracy")
    state = jn.inject_hyperparams(jn.torch.Adam)(lr=0.01).init({"w": jnp.zeros(2)})
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6], start=1):
        event = Event(epoch, np.array([9.0]), state, validation={"accuracy": accuracy})
        callback(event)
        state = event.opt_state
    assert callback.metrics == [0.5, 0.7, 0.6]
    assert [epoch for epoch, _ in callback.reductions] == [3]
    np.testing.assert_allclose(float(state.hyperparams["lr"]), 0.001, rtol=1e-6)


def test_reduce_on_plateau_inside_fit_makes_torchs_decisions_on_the_epoch_costs():
    """A run on the flat shelf of tanh(w**2): fit's per-epoch mean costs, fed to the
    transcription, give the same reductions at the same epochs."""
    x = np.ones((64, 1), np.float32)

    def loss(p, xb):
        return jnp.mean(jnp.tanh(p["w"] ** 2) * xb[:, 0])

    callback = jn.torch.ReduceLROnPlateau(factor=0.5, patience=1, threshold=0.0)
    opt = jn.inject_hyperparams(jn.torch.SGD)(lr=0.1, momentum=0.9)
    _, history = jn.fit(
        loss, {"w": jnp.array(10.0)}, opt, x, batch_size=8, epochs=8, callbacks=[callback], progress=False
    )
    reference = torch_reference.ReduceLROnPlateau(0.1, factor=0.5, patience=1, threshold=0.0)
    rates = [reference.step(metric) for metric in callback.metrics]
    expected = [
        (epoch, rate) for epoch, (rate, before) in enumerate(zip(rates, [0.1, *rates]), start=1) if rate != before
    ]
    assert len(callback.reductions) >= 2
    assert [epoch for epoch, _ in callback.reductions] == [epoch for epoch, _ in expected]
    np.testing.assert_allclose([rate for _, rate in callback.reductions], [rate for _, rate in expected], rtol=1e-6)
    np.testing.assert_allclose(callback.metrics, history.epoch_cost, rtol=1e-6)


def test_reduce_on_plateau_asks_for_an_injected_rate():
    event = Event(1, np.array([1.0]), jn.torch.SGD(0.1).init({"w": jnp.zeros(2)}))
    with pytest.raises(TypeError, match=r"inject_hyperparams\(jn.torch.SGD\)\(lr=<a number>"):
        jn.torch.ReduceLROnPlateau()(event)
