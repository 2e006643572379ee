"""jn.torch's argument checks: every argument torch accepts is accepted, what torch refuses is
refused with a message naming the constructor, the argument, the value and the range (the same
refusals are checked against torch itself in test_torch_real.py), and a few values torch lets
through but that diverge or mean nothing are refused too."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import pytest

import jaxopt_notes as jn
from jaxopt_notes._checks import ArgumentTypeError
from tests.torch_cases import REFUSALS

EVERY_ARGUMENT = {
    "SGD": dict(
        lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.1, nesterov=True,
        maximize=True, foreach=False, differentiable=True, fused=None,
    ),
    "Adam": dict(
        lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True, foreach=True, maximize=True,
        capturable=True, differentiable=False, fused=False, decoupled_weight_decay=True,
    ),
    "AdamW": dict(
        lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True, maximize=True, foreach=None,
        capturable=True, differentiable=True, fused=False,
    ),
    "RMSprop": dict(
        lr=0.1, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9, centered=True, capturable=True,
        foreach=True, maximize=True, differentiable=True,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", EVERY_ARGUMENT)
def test_every_torch_argument_is_accepted_by_keyword_and_in_torchs_order(name):
    constructor = getattr(jn.torch, name)
    kwargs = EVERY_ARGUMENT[name]
    opt = constructor(**kwargs)
    params = {"w": jnp.ones(3)}
    opt.update({"w": jnp.ones(3)}, opt.init(params), params)
    assert list(inspect.signature(constructor).parameters) == list(kwargs)


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda refusal: refusal.id)
def test_what_torch_refuses_is_refused_with_a_clear_message(refusal):
    with pytest.raises(ValueError, match=refusal.match):
        getattr(jn.torch, refusal.name)(**refusal.kwargs)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: jn.torch.SGD(0.1, momentum=1.5), ValueError, r"SGD: momentum must be in \[0, 1\], got 1.5"),
        (lambda: jn.torch.SGD(0.1, momentum=0.9, dampening=-0.1), ValueError, r"SGD: dampening must be in \[0, 1\]"),
        (lambda: jn.torch.SGD(0.1, nesterov=1), ArgumentTypeError, r"SGD: nesterov must be True or False, got 1"),
        (lambda: jn.torch.SGD(0.1, foreach="yes"), ArgumentTypeError, r"SGD: foreach must be True, False or None"),
        (lambda: jn.torch.SGD("0.1"), ArgumentTypeError, r"SGD: lr must be a real number, got '0.1'"),
        (lambda: jn.torch.Adam(betas=0.9), ArgumentTypeError, r"Adam: betas must be a pair \(beta1, beta2\)"),
        (lambda: jn.torch.Adam(betas=(0.9, 0.99, 0.999)), ArgumentTypeError, r"Adam: betas must be a pair"),
        (lambda: jn.torch.Adam(amsgrad=None), ArgumentTypeError, r"Adam: amsgrad must be True or False"),
        (lambda: jn.torch.AdamW(eps=float("inf")), ValueError, r"AdamW: eps must be a finite number >= 0, got inf"),
        (lambda: jn.torch.RMSprop(alpha=1.5), ValueError, r"RMSprop: alpha must be in \[0, 1\], got 1.5"),
        (lambda: jn.torch.RMSprop(momentum=2.0), ValueError, r"RMSprop: momentum must be in \[0, 1\], got 2.0"),
        (lambda: jn.torch.StepLR(0.1, step_size=0), ValueError, r"StepLR: step_size must be an integer >= 1"),
        (lambda: jn.torch.StepLR(0.1, step_size=2.5), ArgumentTypeError, r"StepLR: step_size must be an integer"),
        (lambda: jn.torch.StepLR(0.1, 3, gamma=-0.5), ValueError, r"StepLR: gamma must be a finite number >= 0"),
        (lambda: jn.torch.StepLR(0.1, 3, last_epoch=4), ValueError, r"StepLR: last_epoch must be -1.*restore"),
        (lambda: jn.torch.ExponentialLR(-1.0, 0.9), ValueError, r"ExponentialLR: lr must be a finite number >= 0"),
        (lambda: jn.torch.ExponentialLR(0.1, 0.9, steps_per_epoch=0), ValueError, r"steps_per_epoch must be an in"),
        (lambda: jn.torch.MultiStepLR(0.1, [3, -1]), ValueError, r"MultiStepLR: milestones entry must be an integer"),
        (lambda: jn.torch.MultiStepLR(0.1, 30), ArgumentTypeError, r"MultiStepLR: milestones must be a list"),
        (lambda: jn.torch.LambdaLR(0.1, 0.95), ArgumentTypeError, r"LambdaLR: lr_lambda must be a function"),
        (lambda: jn.torch.ReduceLROnPlateau(factor=1.0), ValueError, r"factor must be in \[0, 1\) \(torch refuses"),
        (lambda: jn.torch.ReduceLROnPlateau(mode="up"), ValueError, r"mode must be one of \('min', 'max'\), got 'up'"),
        (lambda: jn.torch.ReduceLROnPlateau(threshold_mode="x"), ValueError, r"threshold_mode must be one of"),
        (lambda: jn.torch.ReduceLROnPlateau(patience=-1), ValueError, r"patience must be an integer >= 0, got -1"),
        (lambda: jn.torch.ReduceLROnPlateau(min_lr=[0.1]), ArgumentTypeError, r"min_lr must be one number"),
        (lambda: jn.torch.ReduceLROnPlateau(cooldown=1.5), ArgumentTypeError, r"cooldown must be an integer"),
    ],
)
def test_nonsense_is_refused_with_a_clear_message(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_torch_refusals_raise_before_any_step():
    """The checks run when the optimizer is built, not at its first update under jit."""
    for refusal in REFUSALS:
        with pytest.raises(ValueError):
            getattr(jn.torch, refusal.name)(**refusal.kwargs)
