"""What fit does after every epoch: record the history (stopping at a non-finite step when
asked to), show progress, and call the callbacks. Checkpoints are :mod:`.resume`'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxopt_notes.training._compiled import StepValues
from jaxopt_notes.training._history import EpochEnd, History
from jaxopt_notes.training._models import Trainable
from jaxopt_notes.training._placement import Placement, copy_tree
from jaxopt_notes.training._run import Run
from jaxopt_notes.training._state import TrainState


class NonFiniteCostError(FloatingPointError):
    """A step produced a NaN or infinite cost or gradient and fit stopped.

    Attributes:
      epoch: the epoch of the bad step (1-based).
      step: its position in that epoch (1-based); ``global_step`` counts from the run's start.
      params, opt_state: the last finite parameters and optimizer state, from just before it.
      history: the run's history up to the step before it.
    """

    def __init__(self, epoch: int, step: int, global_step: int, params: Any, opt_state: Any, history: History):
        super().__init__(
            f"fit: non-finite cost or gradient at epoch {epoch}, step {step} (step {global_step} of the run); "
            "the last finite parameters are in this error's .params; pass on_nonfinite='skip' to skip such steps"
        )
        self.epoch, self.step, self.global_step = epoch, step, global_step
        self.params, self.opt_state, self.history = params, opt_state, history


def record_epoch(
    run: Run, epoch: int, outputs: list[StepValues], seconds: float, state: TrainState, trained: Trainable,
    history: History,
) -> StepValues:  # fmt: skip
    """Appends epoch ``epoch`` (0-based) to ``history`` from the compiled run's outputs (one per
    call) and returns its per-step values as NumPy arrays; raises :class:`NonFiniteCostError`
    (holding the caller's parameters, see :meth:`Trainable.given_back`) at its first
    non-finite step when ``on_nonfinite`` is ``"raise"``."""
    cost, grad_norm, rate, finite = (np.concatenate(parts) for parts in zip(*jax.device_get(outputs), strict=True))
    if run.options.on_nonfinite == "raise" and not finite.all():
        bad = int(np.argmin(finite))
        history.record_epoch(cost[:bad], grad_norm[:bad], rate[:bad], ~finite[:bad], seconds)
        params, _ = trained.given_back(state.user_params(), state.model_state)
        raise NonFiniteCostError(epoch + 1, bad + 1, history.steps + 1, params, state.opt_state, history)
    history.record_epoch(cost, grad_norm, rate, ~finite, seconds)
    return StepValues(cost, grad_norm, rate, finite)


def progress_bar(run: Run, start_epoch: int) -> tqdm:
    """A tqdm bar over the run's steps (open-ended for a loader, whose epoch length is unknown);
    quiet when the ``progress`` option is off or stderr is no terminal."""
    per_epoch = run.steps_per_epoch
    return tqdm(
        total=None if per_epoch is None else run.options.epochs * per_epoch,
        initial=0 if per_epoch is None else start_epoch * per_epoch,
        unit="step",
        desc="fit",
        disable=None if run.options.progress else True,
        dynamic_ncols=True,
    )


def show_progress(bar: tqdm, epochs: int, epoch: int, steps: int, history: History) -> None:
    """Advances the bar by the epoch's steps; shows the smoothed cost and the latest validation values."""
    bar.update(steps)
    held_out = {f"val_{name}": f"{values[-1]:.4g}" for name, values in history.validation.items()}
    bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", cost=f"{history.smoothed_cost[-1]:.4g}", **held_out)


def run_callbacks(
    callbacks: Sequence[Callable[[EpochEnd], None]],
    epoch: int,
    per_step: StepValues,
    history: History,
    state: TrainState,
    trained: Trainable,
    place: Placement,
) -> tuple[TrainState, bool]:
    """Calls every callback with an :class:`EpochEnd` for epoch ``epoch`` (0-based), each seeing
    copies of the caller's parameters (a framework's model, rebuilt), optimizer and model state
    and the epoch's validation values; returns the state with the (possibly replaced)
    optimizer state, and whether a callback asked to stop."""
    if not callbacks:
        return state, False
    params, model_state = trained.given_back(copy_tree(state.user_params()), copy_tree(state.model_state))
    validation = {name: float(values[-1]) for name, values in history.validation.items()}
    event = EpochEnd(
        epoch + 1, history.steps, per_step.cost, per_step.grad_norm, per_step.learning_rate, history, params,
        copy_tree(state.opt_state), validation=validation, model_state=model_state,
    )  # fmt: skip
    for callback in callbacks:
        callback(event)
    return dataclasses.replace(state, opt_state=place.put_state(event.opt_state)), bool(event.stop)
