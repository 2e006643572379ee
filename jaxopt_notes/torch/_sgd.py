"""``torch.optim.SGD`` as a gradient transformation."""

from __future__ import annotations

from jaxopt_notes import _checks
from jaxopt_notes._base import GradientTransformation, Schedule, identity
from jaxopt_notes._recipe import equal_by_arguments
from jaxopt_notes.torch._arguments import check_flag, check_implementation, concrete, is_static_zero, torch_chain
from jaxopt_notes.torch._transforms import torch_momentum


@equal_by_arguments
def SGD(
    lr: float | Schedule = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    weight_decay: float = 0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    foreach: bool | None = None,
    differentiable: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""``torch.optim.SGD(params, lr, momentum, ...)``: the same arguments, order, defaults and numbers.

    At step $t$, with $g_t$ the gradient (negated with ``maximize``), $\lambda$ the
    ``weight_decay``, $\mu$ the ``momentum`` and $\tau$ the ``dampening``:

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
    b_1 &= g_1, \qquad b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t \quad (t > 1) \\
    \theta_t &= \theta_{t-1} - \gamma\,(g_t + \mu\, b_t) \text{ with nesterov, else }
        \theta_{t-1} - \gamma\, b_t
    \end{aligned}
    $$

    The buffer is undampened (the notes' form is :func:`~jaxopt_notes.momentum`), the rate
    stays outside it, and the first step copies the gradient into it, so ``dampening`` acts
    from the second step on. Transcribed from torch 2.13's documented algorithm; the defaults
    are torch 2.13's (``lr=1e-3``).

    Args:
      lr: $\gamma$, a number >= 0 or a schedule ``step -> rate`` (:class:`StepLR`, ...).
      momentum: $\mu$ in [0, 1] (torch accepts any value >= 0; above 1 the buffer diverges).
      dampening: $\tau$ in [0, 1].
      weight_decay: $\lambda$ >= 0, an L2 term added to the gradient (coupled).
      nesterov: the look-ahead step; needs ``momentum > 0`` and ``dampening = 0``, as in torch.
      maximize: ascend the objective instead.
      foreach, differentiable, fused: torch's choices of implementation; accepted and checked
        as torch checks them, they change no number here.

    Returns:
      ``chain(negation, decay, momentum, identity, rate)``, five members whose states are, in
      order, ``EmptyState``, ``EmptyState``, a :class:`TorchMomentumState` (an ``EmptyState``
      when ``momentum`` is the number 0), ``EmptyState`` and the rate's state. Works with
      :func:`~jaxopt_notes.inject_hyperparams` (``lr``, ``momentum``, ``dampening`` and
      ``weight_decay`` become settable).

    Raises:
      ValueError: a value out of its range, or ``nesterov`` without momentum or with dampening.
      TypeError: a flag that is not a bool, a number that is not a number.

    Example (the first step copies the gradient, dampening acts from the second):
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.SGD(0.1, momentum=0.9, dampening=0.5)
      >>> state = opt.init(jnp.zeros(1))
      >>> step1, state = opt.update(jnp.ones(1), state)
      >>> step2, state = opt.update(jnp.ones(1), state)
      >>> [round(float(step[0]), 6) for step in (step1, step2)]  # -0.1 * 1, then -0.1 * (0.9 * 1 + 0.5 * 1)
      [-0.1, -0.14]
    """
    _checks.check_learning_rate("SGD: lr", lr)
    _checks.check_decay("SGD: momentum", momentum, allow_one=True)
    _checks.check_decay("SGD: dampening", dampening, allow_one=True)
    _checks.check_nonnegative("SGD: weight_decay", weight_decay)
    check_flag("SGD: nesterov", nesterov)
    check_flag("SGD: maximize", maximize)
    check_implementation("SGD", foreach=foreach, differentiable=differentiable, fused=fused)
    if nesterov and concrete(momentum) and concrete(dampening) and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"SGD: nesterov=True needs momentum > 0 and dampening = 0 (as in torch), got momentum={momentum!r}, "
            f"dampening={dampening!r}"
        )
    buffer = identity() if is_static_zero(momentum) else torch_momentum(momentum, dampening, nesterov)
    return torch_chain(buffer, lr=lr, weight_decay=weight_decay, maximize=bool(maximize))
