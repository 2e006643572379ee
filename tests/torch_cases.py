"""The cases every torch equality test runs: against the NumPy transcription (always) and against
real torch (``test_torch_real.py``, when torch is installed).

A case is the name of a torch.optim optimizer and its keyword arguments, written once and
passed unchanged to ``jn.torch.<name>``, to the transcription and to ``torch.optim.<name>``,
so the three must agree on argument names too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

import jaxopt_notes as jn
from tests import torch_reference

STEPS = 100
"""Steps per equality test."""

FLOAT64_RTOL, FLOAT64_ATOL = 1e-12, 1e-14
ULPS_PER_STEP = 4
"""float32: a few units in the last place per step, accumulated over the run."""

IMPLEMENTATION_FLAGS = ("foreach", "fused", "differentiable", "capturable")


def float32_tolerance(steps: int = STEPS) -> tuple[float, float]:
    """``(rtol, atol)`` for float32 parameters of order 1 after ``steps`` steps."""
    rtol = ULPS_PER_STEP * steps * float(np.finfo(np.float32).eps)
    return rtol, rtol


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kwargs: dict[str, Any]

    @property
    def id(self) -> str:
        return self.name + "(" + ", ".join(f"{k}={v}" for k, v in self.kwargs.items()) + ")"

    def ours(self, **override: Any) -> Any:
        return getattr(jn.torch, self.name)(**{**self.kwargs, **override})

    def transcription(self, **override: Any) -> Any:
        kwargs = {k: v for k, v in {**self.kwargs, **override}.items() if k not in IMPLEMENTATION_FLAGS}
        return getattr(torch_reference, "Torch" + self.name)(**kwargs)

    def torch_factory(self, **override: Any) -> Callable[[Any], Any]:
        def factory(params: Any) -> Any:
            import torch

            return getattr(torch.optim, self.name)(params, **{**self.kwargs, **override})

        return factory


OPTIMIZER_CASES = [
    Case("SGD", {"lr": 0.05}),
    Case("SGD", {"lr": 0.05, "momentum": 0.9}),
    Case("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.9}),
    Case("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    Case("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05, "maximize": True}),
    Case("SGD", {"lr": 0.05, "momentum": 0.9, "foreach": False, "differentiable": True}),
    Case("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "fused": True}),
    Case("Adam", {"lr": 0.01}),
    Case("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    Case("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    Case("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    Case("Adam", {"lr": 0.01, "foreach": True}),
    Case("Adam", {"lr": 0.01, "amsgrad": True, "fused": True}),
    Case("AdamW", {"lr": 0.01}),
    Case("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    Case("AdamW", {"lr": 0.01, "betas": (0.5, 0.9), "maximize": True, "fused": False}),
    Case("RMSprop", {"lr": 0.01}),
    Case("RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True}),
    Case("RMSprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    Case("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "maximize": True, "eps": 1e-4}),
]

COMPLEX_CASES = [
    Case("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.1}),
    Case("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    Case("AdamW", {"lr": 0.01}),
    Case("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
]


@dataclasses.dataclass(frozen=True)
class ScheduleCase:
    """A torch scheduler (name and arguments) driving an optimizer case, stepped every
    ``steps_per_epoch`` optimizer steps (every step when None)."""

    name: str
    kwargs: dict[str, Any]
    optimizer: Case
    steps_per_epoch: int | None

    @property
    def id(self) -> str:
        return f"{self.name}{self.kwargs}-per-{self.steps_per_epoch or 1}-{self.optimizer.name}"

    def ours(self) -> Any:
        lr = self.optimizer.kwargs["lr"]
        schedule = getattr(jn.torch, self.name)(lr, **self.kwargs, steps_per_epoch=self.steps_per_epoch)
        return self.optimizer.ours(lr=schedule)

    def transcription(self) -> Any:
        make = getattr(torch_reference, self.name)
        return torch_reference.EpochLoop(
            self.optimizer.transcription(), lambda opt: make(opt, **self.kwargs), self.steps_per_epoch or 1
        )


def warm_then_inverse_time(epoch: Any) -> Any:
    """A linear warm-up over 3 epochs times the notes' ``1 / (1 + 0.5 * epoch)``; written with
    jnp so that it runs on a traced epoch (torch's side takes ``float`` of it)."""
    return jnp.minimum(1.0, (epoch + 1) / 3) / (1 + 0.5 * epoch)


SCHEDULE_CASES = [
    ScheduleCase("StepLR", {"step_size": 3, "gamma": 0.5}, Case("SGD", {"lr": 0.1, "momentum": 0.9}), 7),
    ScheduleCase("StepLR", {"step_size": 10}, Case("Adam", {"lr": 0.01}), None),
    ScheduleCase("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.5}, Case("AdamW", {"lr": 0.01}), 8),
    ScheduleCase("MultiStepLR", {"milestones": [30, 60]}, Case("RMSprop", {"lr": 0.01, "momentum": 0.5}), None),
    ScheduleCase("ExponentialLR", {"gamma": 0.9}, Case("SGD", {"lr": 0.1, "dampening": 0.5, "momentum": 0.9}), 10),
    ScheduleCase("ExponentialLR", {"gamma": 0.98}, Case("Adam", {"lr": 0.01, "amsgrad": True}), None),
    ScheduleCase("LambdaLR", {"lr_lambda": warm_then_inverse_time}, Case("SGD", {"lr": 0.1, "momentum": 0.9}), 9),
    ScheduleCase("LambdaLR", {"lr_lambda": lambda epoch: 0.97**epoch}, Case("RMSprop", {"lr": 0.01}), None),
]


def params(dtype: Any) -> dict[str, Any]:
    """Parameters of order 1 (and a complex leaf when ``dtype`` is complex)."""
    w = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return {"w": (w + 1j * w[::-1]).astype(dtype), "b": jnp.full(4, 0.5 - 0.25j, dtype)}
    return {"w": w.astype(dtype), "b": jnp.full(4, 0.5, dtype)}


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Arguments torch refuses, and the words our error must contain."""

    name: str
    kwargs: dict[str, Any]
    match: str

    @property
    def id(self) -> str:
        return f"{self.name}{self.kwargs}"


REFUSALS = [
    Refusal("SGD", {"lr": -0.1}, r"SGD: lr must be .*>= 0.*-0.1"),
    Refusal("SGD", {"lr": 0.1, "momentum": -0.5}, r"SGD: momentum must be in \[0, 1\], got -0.5"),
    Refusal("SGD", {"lr": 0.1, "weight_decay": -1e-4}, r"SGD: weight_decay must be a finite number >= 0"),
    Refusal("SGD", {"lr": 0.1, "nesterov": True}, r"SGD: nesterov=True needs momentum > 0 and dampening = 0"),
    Refusal(
        "SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, r"nesterov=True needs .*dampening"
    ),
    Refusal("SGD", {"lr": 0.1, "fused": True, "differentiable": True}, r"SGD: fused=True cannot be combined"),
    Refusal("SGD", {"lr": 0.1, "fused": True, "foreach": True}, r"SGD: fused=True and foreach=True"),
    Refusal("Adam", {"lr": -1e-3}, r"Adam: lr must be .*>= 0"),
    Refusal("Adam", {"betas": (1.0, 0.999)}, r"Adam: betas\[0\] must be in \[0, 1\), got 1.0"),
    Refusal("Adam", {"betas": (0.9, -0.1)}, r"Adam: betas\[1\] must be in \[0, 1\), got -0.1"),
    Refusal("Adam", {"eps": -1e-8}, r"Adam: eps must be a finite number >= 0"),
    Refusal("Adam", {"weight_decay": -0.1}, r"Adam: weight_decay must be a finite number >= 0"),
    Refusal("Adam", {"fused": True, "differentiable": True}, r"Adam: fused=True cannot be combined"),
    Refusal("AdamW", {"betas": (0.9, 1.5)}, r"AdamW: betas\[1\] must be in \[0, 1\)"),
    Refusal("AdamW", {"weight_decay": -0.01}, r"AdamW: weight_decay must be a finite number >= 0"),
    Refusal("AdamW", {"fused": True, "foreach": True}, r"AdamW: fused=True and foreach=True"),
    Refusal("RMSprop", {"lr": -0.01}, r"RMSprop: lr must be .*>= 0"),
    Refusal("RMSprop", {"alpha": -0.5}, r"RMSprop: alpha must be in \[0, 1\]"),
    Refusal("RMSprop", {"eps": -1.0}, r"RMSprop: eps must be a finite number >= 0"),
    Refusal("RMSprop", {"momentum": -0.9}, r"RMSprop: momentum must be in \[0, 1\]"),
    Refusal("RMSprop", {"weight_decay": -0.1}, r"RMSprop: weight_decay must be a finite number >= 0"),
]
"""Each is refused by torch 2.13.0 too (checked in test_torch_real.py)."""
