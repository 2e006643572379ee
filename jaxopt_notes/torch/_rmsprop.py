"""``torch.optim.RMSprop`` as a gradient transformation."""

from __future__ import annotations

from jaxopt_notes import _checks
from jaxopt_notes._base import GradientTransformation, Schedule, chain, identity
from jaxopt_notes._momentum import trace
from jaxopt_notes._recipe import equal_by_arguments
from jaxopt_notes.torch._arguments import check_flag, check_implementation, is_static_zero, torch_chain
from jaxopt_notes.torch._transforms import real_view, scale_by_torch_rms


@equal_by_arguments
def RMSprop(
    lr: float | Schedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    capturable: bool = False,
    foreach: bool | None = None,
    maximize: bool = False,
    differentiable: bool = False,
) -> GradientTransformation:
    r"""``torch.optim.RMSprop(params, lr, alpha, ...)``: the same arguments, order, defaults and numbers.

    At step $t$, with $g_t$ the gradient (negated with ``maximize``) and $\lambda$ the
    ``weight_decay``:

    $$
    \begin{aligned}
    g_t &\leftarrow g_t + \lambda\,\theta_{t-1} \\
    v_t &= \alpha v_{t-1} + (1 - \alpha)\, g_t^2, \qquad
        \tilde v_t = v_t - \bar g_t^2 \text{ with centered } (\bar g_t = \alpha \bar g_{t-1} + (1 - \alpha) g_t),
        \text{ else } v_t \\
    b_t &= \mu\, b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon), \qquad \theta_t = \theta_{t-1} - \gamma\, b_t
    \end{aligned}
    $$

    (with $\mu = 0$, simply $\theta_t = \theta_{t-1} - \gamma\, g_t / (\sqrt{\tilde v_t} + \epsilon)$).
    Three conventions differ from the notes and from optax: ``alpha = 0.99`` (the notes and
    optax use 0.9), epsilon outside the root (optax's ``rmsprop`` puts it inside by default),
    and the momentum buffer before the rate (optax's after it, so a changing rate acts on the
    whole buffer here and only on new steps there). No bias correction, $v_0 = 0$. Complex
    parameters get a second moment per real and imaginary part, as in torch. Transcribed from
    torch 2.13's documented algorithm, whose defaults these are.

    Args:
      lr: $\gamma$, a number >= 0 or a schedule ``step -> rate``.
      alpha: $\alpha$ in [0, 1] (torch accepts any value >= 0; above 1 the average diverges).
      eps: $\epsilon$ >= 0.
      weight_decay: $\lambda$ >= 0, an L2 term added to the gradient.
      momentum: $\mu$ in [0, 1] (torch: >= 0).
      centered: divide by the running standard deviation instead of the root mean square.
      maximize: ascend the objective instead.
      capturable, foreach, differentiable: torch's choices of implementation; accepted, they
        change no number here.

    Returns:
      ``chain(negation, decay, direction, identity, rate)``, where the direction is
      ``chain(scale_by_torch_rms, trace)`` (an ``identity`` in place of the trace when
      ``momentum`` is the number 0): its state is ``(TorchRMSpropState, TraceState)``.

    Raises:
      ValueError: a value out of its range.
      TypeError: a flag that is not a bool, a number that is not a number.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.RMSprop(0.01)
      >>> updates, _ = opt.update(jnp.full(2, 3.0), opt.init(jnp.zeros(2)))
      >>> updates.round(6)  # -lr * g / sqrt(0.01 * g**2) = -lr * 10, up to eps
      Array([-0.1, -0.1], dtype=float32)
    """
    _checks.check_learning_rate("RMSprop: lr", lr)
    _checks.check_decay("RMSprop: alpha", alpha, allow_one=True)
    _checks.check_nonnegative("RMSprop: eps", eps)
    _checks.check_nonnegative("RMSprop: weight_decay", weight_decay)
    _checks.check_decay("RMSprop: momentum", momentum, allow_one=True)
    check_flag("RMSprop: centered", centered)
    check_flag("RMSprop: maximize", maximize)
    check_implementation("RMSprop", foreach=foreach, differentiable=differentiable, capturable=capturable)
    buffer = identity() if is_static_zero(momentum) else trace(momentum)
    direction = chain(real_view(scale_by_torch_rms(alpha, eps, bool(centered))), buffer)
    return torch_chain(direction, lr=lr, weight_decay=weight_decay, maximize=bool(maximize))
