"""What the torch.optim ports share: checks of torch's own arguments, and the one chain every
torch optimizer is (``maximize``, weight decay, the direction, the learning rate)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._base import GradientTransformation, Schedule, chain, identity
from jaxopt_notes._learning_rate import scale, scale_by_learning_rate
from jaxopt_notes._weight_decay import add_decayed_weights


def check_flag(name: str, value: Any, *, optional: bool = False) -> None:
    """A bool (``None`` too with ``optional``, torch's "let torch choose" for ``foreach``/``fused``)."""
    if optional and value is None:
        return
    if not isinstance(value, bool | np.bool_):
        wanted = "True, False or None" if optional else "True or False"
        raise _checks.ArgumentTypeError(f"{name} must be {wanted}, got {value!r}")


def check_implementation(
    where: str, *, foreach: Any, differentiable: Any, fused: Any = None, capturable: Any = False
) -> None:
    """torch's implementation selectors: accepted, since they change no number here, and refused
    in the combinations torch refuses."""
    check_flag(f"{where}: foreach", foreach, optional=True)
    check_flag(f"{where}: differentiable", differentiable)
    check_flag(f"{where}: fused", fused, optional=True)
    check_flag(f"{where}: capturable", capturable)
    if fused and differentiable:
        raise ValueError(f"{where}: fused=True cannot be combined with differentiable=True (torch refuses it too)")
    if fused and foreach:
        raise ValueError(f"{where}: fused=True and foreach=True select two implementations; choose one")


def is_static_zero(value: Any) -> bool:
    """Whether ``value`` is a plain number equal to 0, known when the optimizer is built.

    Only then is a member left out of the chain (as torch skips a zero weight decay or
    momentum). An array, which is how ``inject_hyperparams`` passes every number, keeps the
    member, so the state has the same layout whatever value is set later.
    """
    return isinstance(value, int | float | np.number) and not isinstance(value, bool) and value == 0


def concrete(value: Any) -> bool:
    """Whether ``value`` can be inspected now (it is not traced under ``jax.jit``)."""
    return not _checks.is_traced(value)


def torch_chain(
    direction: GradientTransformation,
    *,
    lr: float | Schedule,
    weight_decay: Any,
    maximize: bool,
    decoupled: bool = False,
) -> GradientTransformation:
    """``chain(negation, coupled decay, direction, decoupled decay, learning rate)``, each
    member an ``identity()`` where it does not apply, so the state always has five entries.

    ``maximize`` negates the gradient first, and weight decay is added to the negated gradient,
    as in torch. Coupled (L2) decay joins the gradient before the direction sees it; decoupled
    decay (AdamW's) is added to the direction, so it is scaled by the rate alone.
    """
    decay = identity() if is_static_zero(weight_decay) else add_decayed_weights(weight_decay)
    return chain(
        scale(-1.0) if maximize else identity(),
        identity() if decoupled else decay,
        direction,
        decay if decoupled else identity(),
        scale_by_learning_rate(lr),
    )
