r"""``torch.optim.lr_scheduler``'s decays of notes section 7 as schedules ``step -> rate``.

A torch scheduler wraps an optimizer and changes its rate each time ``scheduler.step()`` is
called, usually once at the end of each epoch; here a schedule is passed as the optimizer's
``lr`` (``jn.torch.SGD(jn.torch.StepLR(0.1, step_size=30), momentum=0.9)``) and evaluated at
the optimizer's own step count. ``steps_per_epoch=N`` turns that count into torch's epoch,
$e = \lfloor \text{step} / N \rfloor$, so the first $N$ updates run at the initial rate, as
they do in torch before the first ``scheduler.step()``: the one-epoch lag is reproduced, not
corrected. Without ``steps_per_epoch`` the epoch is the step itself, which is torch with
``scheduler.step()`` after every ``optimizer.step()``.

The first argument is the rate the torch optimizer was built with (torch reads it from the
optimizer, as ``initial_lr``). ``last_epoch`` is accepted at its default only: to resume,
restore the optimizer state, whose count carries the schedule. Every rate is computed from
the closed form ($\gamma^k$, a table), which torch's step-by-step products equal up to rounding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import Schedule
from jaxopt_notes._recipe import equal_by_arguments
from jaxopt_notes.schedules import piecewise_constant, staircase_decay


def _steps_per_epoch(where: str, steps_per_epoch: Any) -> int:
    if steps_per_epoch is None:
        return 1
    return _checks.check_int(f"{where}: steps_per_epoch", steps_per_epoch, minimum=1)


def _check_common(where: str, lr: Any, last_epoch: Any) -> None:
    _checks.check_nonnegative(f"{where}: lr", lr)
    if _checks.check_int(f"{where}: last_epoch", last_epoch) != -1:
        raise ValueError(
            f"{where}: last_epoch must be -1 (a fresh schedule), got {last_epoch!r}; to resume a run, restore the "
            "optimizer state (its step count drives the schedule)"
        )


def _check_gamma(where: str, gamma: Any) -> None:
    _checks.check_nonnegative(f"{where}: gamma", gamma)


@equal_by_arguments
def StepLR(
    lr: float, step_size: int, gamma: float = 0.1, last_epoch: int = -1, *, steps_per_epoch: int | None = None
) -> Schedule:
    r"""``torch.optim.lr_scheduler.StepLR``: the rate decays by ``gamma`` every ``step_size`` epochs,
    $\gamma_e = \text{lr} \cdot \text{gamma}^{\lfloor e / \text{step\_size} \rfloor}$.

    Args:
      lr: the optimizer's initial rate, >= 0.
      step_size: epochs between two decays, an integer >= 1.
      gamma: the factor, >= 0 (torch's default 0.1).
      last_epoch: -1 only (see the module docstring).
      steps_per_epoch: optimizer steps per epoch; ``None`` counts every step as an epoch.

    Returns:
      A schedule ``step -> rate`` (jit- and vmap-safe).

    Raises:
      ValueError: a value out of its range, or ``last_epoch`` other than -1.
      TypeError: an integer argument that is not an integer.

    Example (``scheduler.step()`` at each epoch's end, 3 steps per epoch):
      >>> import jaxopt_notes as jn
      >>> schedule = jn.torch.StepLR(0.1, step_size=2, gamma=0.5, steps_per_epoch=3)
      >>> [round(float(schedule(step)), 6) for step in range(0, 13, 3)]
      [0.1, 0.1, 0.05, 0.05, 0.025]
    """
    _check_common("StepLR", lr, last_epoch)
    step_size = _checks.check_int("StepLR: step_size", step_size, minimum=1)
    _check_gamma("StepLR", gamma)
    return staircase_decay(lr, gamma, step_size, steps_per_epoch=_steps_per_epoch("StepLR", steps_per_epoch))


@equal_by_arguments
def ExponentialLR(lr: float, gamma: float, last_epoch: int = -1, *, steps_per_epoch: int | None = None) -> Schedule:
    r"""``torch.optim.lr_scheduler.ExponentialLR``: $\gamma_e = \text{lr} \cdot \text{gamma}^e$.

    Args:
      lr: the optimizer's initial rate, >= 0.
      gamma: the factor per epoch, >= 0 (torch has no default).
      last_epoch: -1 only.
      steps_per_epoch: optimizer steps per epoch; ``None`` counts every step as an epoch.

    Returns:
      A schedule ``step -> rate``.

    Raises:
      ValueError: a value out of its range, or ``last_epoch`` other than -1.
      TypeError: an integer argument that is not an integer.

    Example:
      >>> import jaxopt_notes as jn
      >>> schedule = jn.torch.ExponentialLR(1.0, gamma=0.5, steps_per_epoch=10)
      >>> [float(schedule(step)) for step in (0, 9, 10, 25)]
      [1.0, 1.0, 0.5, 0.25]
    """
    _check_common("ExponentialLR", lr, last_epoch)
    _check_gamma("ExponentialLR", gamma)
    return staircase_decay(lr, gamma, 1, steps_per_epoch=_steps_per_epoch("ExponentialLR", steps_per_epoch))


@equal_by_arguments
def MultiStepLR(
    lr: float,
    milestones: Iterable[int],
    gamma: float = 0.1,
    last_epoch: int = -1,
    *,
    steps_per_epoch: int | None = None,
) -> Schedule:
    r"""``torch.optim.lr_scheduler.MultiStepLR``: the rate is multiplied by ``gamma`` at each
    milestone epoch, $\gamma_e = \text{lr} \cdot \text{gamma}^{\#\{m \in \text{milestones} : m \le e\}}$.

    A milestone listed twice multiplies by ``gamma**2`` there, as in torch.

    Args:
      lr: the optimizer's initial rate, >= 0.
      milestones: epoch indices, integers >= 0, in any order.
      gamma: the factor, >= 0 (torch's default 0.1).
      last_epoch: -1 only.
      steps_per_epoch: optimizer steps per epoch; ``None`` counts every step as an epoch.

    Returns:
      A schedule ``step -> rate``.

    Raises:
      ValueError: a value out of its range, or ``last_epoch`` other than -1.
      TypeError: an integer argument that is not an integer.

    Example:
      >>> import jaxopt_notes as jn
      >>> schedule = jn.torch.MultiStepLR(1.0, milestones=[2, 5], gamma=0.1)
      >>> [round(float(schedule(step)), 6) for step in range(7)]
      [1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01]
    """
    _check_common("MultiStepLR", lr, last_epoch)
    _check_gamma("MultiStepLR", gamma)
    if isinstance(milestones, str | bytes) or not isinstance(milestones, Iterable):
        raise _checks.ArgumentTypeError(f"MultiStepLR: milestones must be a list of epoch indices, got {milestones!r}")
    counts = Counter(_checks.check_int("MultiStepLR: milestones entry", m, minimum=0) for m in milestones)
    scales = {milestone: gamma**times for milestone, times in counts.items()}
    return piecewise_constant(lr, scales, steps_per_epoch=_steps_per_epoch("MultiStepLR", steps_per_epoch))


def _probe(lr_lambda: Callable[[jax.Array], Any]) -> None:
    """Runs ``lr_lambda`` once on a traced epoch, so a factor that cannot be traced fails now,
    with a message saying how to write it, instead of inside the first jitted step."""
    try:
        shape = jax.eval_shape(lr_lambda, jax.ShapeDtypeStruct((), jnp.result_type(int))).shape
    except jax.errors.JAXTypeError as error:
        raise TypeError(
            "LambdaLR: lr_lambda must work on a traced integer epoch (it runs inside jax.jit): write branches "
            f"with jnp.where instead of if, and use jnp functions ({type(error).__name__})"
        ) from None
    if shape != ():
        raise ValueError(f"LambdaLR: lr_lambda must return a scalar factor, got shape {shape}")


@equal_by_arguments
def LambdaLR(
    lr: float, lr_lambda: Callable[[jax.Array], Any], last_epoch: int = -1, *, steps_per_epoch: int | None = None
) -> Schedule:
    r"""``torch.optim.lr_scheduler.LambdaLR``: $\gamma_e = \text{lr} \cdot \text{lr\_lambda}(e)$.

    Args:
      lr: the optimizer's initial rate, >= 0.
      lr_lambda: the factor as a function of the epoch $e$ (an integer scalar of JAX's default
        integer type, traced under ``jax.jit``): arithmetic such as ``lambda e: 0.95 ** e`` works as written in torch;
        a branch needs ``jnp.where``. torch's list of one function per parameter group has no
        counterpart: give one function.
      last_epoch: -1 only.
      steps_per_epoch: optimizer steps per epoch; ``None`` counts every step as an epoch.

    Returns:
      A schedule ``step -> rate``.

    Raises:
      TypeError: ``lr_lambda`` is not callable or cannot run on a traced epoch.
      ValueError: ``lr < 0``, ``last_epoch`` other than -1, or a factor that is not a scalar.

    Example (a linear warm-up over 4 epochs):
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> schedule = jn.torch.LambdaLR(0.1, lambda e: jnp.minimum(1.0, (e + 1) / 4))
      >>> [round(float(schedule(step)), 6) for step in range(6)]
      [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]
    """
    _check_common("LambdaLR", lr, last_epoch)
    if not callable(lr_lambda):
        raise _checks.ArgumentTypeError(
            f"LambdaLR: lr_lambda must be a function epoch -> factor (one for all parameters), got {lr_lambda!r}"
        )
    _probe(lr_lambda)
    steps = _steps_per_epoch("LambdaLR", steps_per_epoch)
    # The epoch in JAX's default integer type: under jax_enable_x64, int64, so that arithmetic
    # such as (epoch + 1) / 3 runs in float64 as it does in torch, not in float32 as int32 would.
    int_dtype, float_dtype = jnp.result_type(int), jnp.result_type(float)

    def schedule(step: Any) -> jax.Array:
        epoch = jnp.floor_divide(jnp.asarray(step), steps).astype(int_dtype)
        return (lr * jnp.asarray(lr_lambda(epoch))).astype(float_dtype)

    return schedule
