"""``torch.optim.Adam`` and ``torch.optim.AdamW`` as gradient transformations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxopt_notes import _checks
from jaxopt_notes._base import GradientTransformation, Schedule
from jaxopt_notes._recipe import equal_by_arguments
from jaxopt_notes.torch._arguments import check_flag, check_implementation, torch_chain
from jaxopt_notes.torch._transforms import real_view, scale_by_torch_adam


def _checked_betas(where: str, betas: Any) -> tuple[Any, Any]:
    if isinstance(betas, str) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise _checks.ArgumentTypeError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    _checks.check_decay(f"{where}: betas[0]", beta1)
    _checks.check_decay(f"{where}: betas[1]", beta2)
    return beta1, beta2


def _adam(
    where: str,
    lr: float | Schedule,
    betas: Any,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    *,
    maximize: bool,
    decoupled_weight_decay: bool,
    **implementation: Any,
) -> GradientTransformation:
    _checks.check_learning_rate(f"{where}: lr", lr)
    beta1, beta2 = _checked_betas(where, betas)
    _checks.check_nonnegative(f"{where}: eps", eps)
    _checks.check_nonnegative(f"{where}: weight_decay", weight_decay)
    check_flag(f"{where}: amsgrad", amsgrad)
    check_flag(f"{where}: maximize", maximize)
    check_flag(f"{where}: decoupled_weight_decay", decoupled_weight_decay)
    check_implementation(where, **implementation)
    direction = real_view(scale_by_torch_adam(beta1, beta2, eps, bool(amsgrad)))
    return torch_chain(
        direction, lr=lr, weight_decay=weight_decay, maximize=bool(maximize), decoupled=bool(decoupled_weight_decay)
    )


@equal_by_arguments
def Adam(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    *,
    foreach: bool | None = None,
    maximize: bool = False,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.Adam(params, lr, betas, ...)``: the same arguments, order, defaults and numbers.

    At step $t$, with $g_t$ the gradient (negated with ``maximize``) and $\lambda$ the
    ``weight_decay``:

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \qquad \text{(coupled: an L2 term inside the moments)} \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
    \hat m_t &= m_t / (1 - \beta_1^t), \qquad
        \hat v_t = \max(v_1, \dots, v_t) / (1 - \beta_2^t) \text{ with amsgrad, else } v_t / (1 - \beta_2^t) \\
    \theta_t &= \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)
    \end{aligned}
    $$

    With ``decoupled_weight_decay=True`` the decay leaves the gradient and becomes
    $\theta_t \leftarrow \theta_{t-1} - \gamma\lambda\theta_{t-1}$ beside the step: that is
    :func:`AdamW`. Complex parameters get a second moment per real and imaginary part, as
    torch's ``view_as_real`` gives them. Transcribed from torch 2.13's documented algorithm,
    whose defaults these are (Kingma and Ba's betas and epsilon).

    Args:
      lr: $\gamma$, a number >= 0 or a schedule ``step -> rate``.
      betas: $(\beta_1, \beta_2)$, each in [0, 1).
      eps: $\epsilon$ >= 0, added outside the root, after bias correction.
      weight_decay: $\lambda$ >= 0.
      amsgrad: divide by the running maximum of $v$ (Reddi et al., 2018).
      maximize: ascend the objective instead.
      decoupled_weight_decay: AdamW's decay instead of the L2 term.
      foreach, capturable, differentiable, fused: torch's choices of implementation;
        accepted and checked as torch checks them, they change no number here.

    Returns:
      ``chain(negation, coupled decay, direction, decoupled decay, rate)``; the direction's
      state is a :class:`TorchAdamState` (``count``, ``exp_avg``, ``exp_avg_sq``,
      ``max_exp_avg_sq``). Works with :func:`~jaxopt_notes.inject_hyperparams` (``lr``,
      ``eps`` and ``weight_decay`` become settable; ``betas``, a pair, stays fixed).

    Raises:
      ValueError: a value out of its range (a negative rate, a beta outside [0, 1) ...).
      TypeError: ``betas`` not a pair, a flag that is not a bool.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.Adam(1e-3, weight_decay=1e-2)
      >>> params = {"w": jnp.ones(3)}
      >>> updates, state = opt.update({"w": jnp.full(3, 0.5)}, opt.init(params), params)
      >>> updates["w"]  # the first Adam step is -lr * sign(g + wd * w), up to eps
      Array([-0.001, -0.001, -0.001], dtype=float32)
    """
    return _adam(
        "Adam", lr, betas, eps, weight_decay, amsgrad,
        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
        foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
    )  # fmt: skip


@equal_by_arguments
def AdamW(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    foreach: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""``torch.optim.AdamW(params, lr, betas, ...)``: :func:`Adam` with decoupled weight decay.

    $$\theta_t = \theta_{t-1} - \gamma\lambda\theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)$$

    with $\hat m_t, \hat v_t$ as in :func:`Adam` from the gradient alone: the decay is scaled
    by the rate (a schedule's too) but never by the moments (Loshchilov and Hutter, 2019).
    torch 2.13's defaults, ``weight_decay=1e-2`` included (optax's ``adamw`` uses 1e-4).

    Args:
      lr, betas, eps, amsgrad, maximize: as in :func:`Adam`.
      weight_decay: $\lambda$ >= 0.
      foreach, capturable, differentiable, fused: accepted and checked, no effect on numbers.

    Returns:
      ``Adam(..., decoupled_weight_decay=True)``; ``update`` needs ``params``.

    Raises:
      ValueError, TypeError: as :func:`Adam`.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.AdamW(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = opt.update({"w": jnp.zeros(2)}, opt.init(params), params)
      >>> updates["w"]  # a zero gradient: the decay alone, -0.1 * 0.5 * w
      Array([-0.05, -0.05], dtype=float32)
    """
    return _adam(
        "AdamW", lr, betas, eps, weight_decay, amsgrad,
        maximize=maximize, decoupled_weight_decay=True,
        foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
    )  # fmt: skip
