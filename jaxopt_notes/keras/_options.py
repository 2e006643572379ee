"""The options every Keras optimizer takes, checked once, and the chain they build.

Keras' ``BaseOptimizer.apply`` runs, for every step::

    g = clip(g)                          clipnorm | global_clipnorm | clipvalue (one at most)
    W = W - W * weight_decay * lr        weight_decay, at the step's rate
    W = step(W, g, lr)                   the optimizer's own update_step
    average = ema(average, W)            use_ema, ema_momentum; every ema_overwrite_frequency
                                         steps W = average
    iterations += 1

Each line is one stage of a :func:`~jaxopt_notes.chain`, in that order (the decay adds to the
step's update, which gives the same weights), followed by a stage that records the rate, so the
state is always the 5-tuple ``(EmptyState, step state, WeightDecayState or EmptyState,
EmaWeightsState or EmptyState, rate state)``.

Two options do not fit a gradient transformation and are refused with the way to get them:
``loss_scale_factor`` scales the loss, which exists before the gradients do, and
``gradient_accumulation_steps`` skips updates, which ``optax.MultiSteps`` does around any
transformation.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._base import GradientTransformation, chain, identity
from jaxopt_notes._learning_rate import record_learning_rate
from jaxopt_notes.keras._clipping import clip_gradients
from jaxopt_notes.keras._ema import average_weights
from jaxopt_notes.keras._rate import LearningRate
from jaxopt_notes.keras._weight_decay import decay_weights


def keeps_buffer(coefficient: Any) -> bool:
    """Whether Keras keeps a buffer for this momentum: not when it is the number 0. An array
    (what :func:`~jaxopt_notes.inject_hyperparams` passes) always keeps one, so the state's
    layout never hangs on a value that may be traced; a zero coefficient then leaves Keras'
    numbers unchanged."""
    return not (isinstance(coefficient, int | float | np.number) and coefficient == 0)


def _check_positive_or_none(name: str, value: Any) -> None:
    if value is None or _checks.is_traced(value):
        return
    _checks.check_finite(name, value)
    if float(value) <= 0:
        raise ValueError(f"{name} must be a number > 0 or None (no clipping), got {value!r}")


def _refuse_what_does_not_fit(where: str, loss_scale_factor: Any, gradient_accumulation_steps: Any) -> None:
    if loss_scale_factor is not None:
        raise ValueError(
            f"{where}: loss_scale_factor={loss_scale_factor!r} does not fit a gradient transformation, which "
            "receives the gradients after the loss was scaled. Multiply the loss by the factor yourself and "
            "divide the gradients back first: jn.chain(jn.scale(1 / factor), jn.keras.Adam(...)); in float32 "
            "JAX seldom needs loss scaling at all"
        )
    if gradient_accumulation_steps is not None:
        raise ValueError(
            f"{where}: gradient_accumulation_steps={gradient_accumulation_steps!r} does not fit a gradient "
            "transformation, which updates at every call. Wrap the optimizer in optax.MultiSteps, which "
            "averages the gradients of k calls and steps once: optax.MultiSteps(jn.keras.Adam(...), "
            f"every_k_schedule={gradient_accumulation_steps!r}) (its schedules see the updates, Keras' see the "
            "minibatches)"
        )


@dataclasses.dataclass(frozen=True)
class KerasOptions:
    """The options of ``keras.optimizers.Optimizer`` that the chain uses, checked."""

    learning_rate: LearningRate
    weight_decay: Any
    clipnorm: Any
    clipvalue: Any
    global_clipnorm: Any
    use_ema: bool
    ema_momentum: Any
    ema_overwrite_frequency: int | None

    @classmethod
    def checked(
        cls,
        where: str,
        *,
        learning_rate: LearningRate,
        weight_decay: Any,
        clipnorm: Any,
        clipvalue: Any,
        global_clipnorm: Any,
        use_ema: Any,
        ema_momentum: Any,
        ema_overwrite_frequency: Any,
        loss_scale_factor: Any,
        gradient_accumulation_steps: Any,
        name: Any,
    ) -> KerasOptions:
        """The options after every check Keras makes and a few it leaves out, each error naming
        ``where`` (the constructor) and the argument."""
        _refuse_what_does_not_fit(where, loss_scale_factor, gradient_accumulation_steps)
        _checks.check_learning_rate(f"{where}: learning_rate", learning_rate)
        if weight_decay is not None:
            _checks.check_finite(f"{where}: weight_decay", weight_decay)
        clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        for option, value in clipping.items():
            _check_positive_or_none(f"{where}: {option}", value)
        given = {option: value for option, value in clipping.items() if value is not None}
        if len(given) > 1:
            raise ValueError(f"{where}: only one of clipnorm, clipvalue and global_clipnorm can be set, got {given}")
        if not isinstance(use_ema, bool | np.bool_):
            raise _checks.ArgumentTypeError(f"{where}: use_ema must be True or False, got {use_ema!r}")
        if use_ema:
            _checks.check_decay(f"{where}: ema_momentum", ema_momentum, allow_one=True)
            if ema_overwrite_frequency is not None:
                _checks.check_int(f"{where}: ema_overwrite_frequency", ema_overwrite_frequency, minimum=1)
        elif ema_overwrite_frequency is not None:
            raise ValueError(
                f"{where}: ema_overwrite_frequency={ema_overwrite_frequency!r} needs use_ema=True (Keras ignores it "
                "without)"
            )
        if name is not None and not isinstance(name, str):
            raise _checks.ArgumentTypeError(f"{where}: name must be a string or None, got {name!r}")
        return cls(
            learning_rate,
            weight_decay,
            clipnorm,
            clipvalue,
            global_clipnorm,
            bool(use_ema),
            ema_momentum,
            None if ema_overwrite_frequency is None else int(ema_overwrite_frequency),
        )

    @classmethod
    def from_arguments(cls, where: str, arguments: Mapping[str, Any]) -> KerasOptions:
        """:meth:`checked` on the options every Keras optimizer takes, read by name from a
        constructor's own arguments (its ``locals()``, taken before it binds anything else):
        each constructor lists them in its signature, as Keras does, and hands them on here
        without spelling them out again."""
        return cls.checked(where, **{name: arguments[name] for name in SHARED_ARGUMENTS})


SHARED_ARGUMENTS = tuple(name for name in inspect.signature(KerasOptions.checked).parameters if name != "where")
"""The arguments every Keras optimizer takes, by the names its constructors give them."""


def keras_optimizer(step: GradientTransformation, options: KerasOptions) -> GradientTransformation:
    """``step`` (one Keras ``update_step``) inside the stages every Keras optimizer runs."""
    clipping = (options.clipnorm, options.clipvalue, options.global_clipnorm)
    return chain(
        clip_gradients(*clipping) if any(value is not None for value in clipping) else identity(),
        step,
        identity() if options.weight_decay is None else decay_weights(options.weight_decay, options.learning_rate),
        average_weights(options.ema_momentum, options.ema_overwrite_frequency) if options.use_ema else identity(),
        record_learning_rate(options.learning_rate),
    )
