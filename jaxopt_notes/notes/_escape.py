"""The escape race (notes section 8): who leaves a saddle or a plateau first?

"Momentum, RMSprop and Adam speed up the way off a plateau." :func:`escape_race` starts
gradient descent, momentum, RMSprop and Adam at the same point near a saddle or on a long
flat shelf, follows exact gradients, and counts the updates each needs to get away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._adam import adam
from jaxopt_notes._base import GradientTransformation, apply_updates
from jaxopt_notes._momentum import momentum
from jaxopt_notes._rmsprop import rmsprop
from jaxopt_notes._sgd import sgd


class EscapeProblem(NamedTuple):
    """A 2-D cost surface with a trap, for :func:`escape_race`.

    Attributes:
      name: a short label.
      loss_fn: ``loss_fn(w) -> scalar`` for ``w`` of shape ``(2,)``.
      start: the nominal starting point.
      jitter: the standard deviation of the seeded perturbation added to ``start``.
      escape_level: an optimizer has escaped at the first step whose cost is below this.
      learning_rate: the rate every optimizer uses by default.
      max_steps: the default step budget.
    """

    name: str
    loss_fn: Callable[[jax.Array], jax.Array]
    start: tuple[float, float]
    jitter: float
    escape_level: float
    learning_rate: float
    max_steps: int


def saddle_loss(w: jax.Array) -> jax.Array:
    """``J(w) = w0^2 / 2 + w1^4 / 4 - w1^2 / 2``: a saddle at the origin (Hessian
    ``diag(1, -1)``, cost 0) between two minima at ``(0, +-1)`` with cost -1/4."""
    return 0.5 * w[0] ** 2 + 0.25 * w[1] ** 4 - 0.5 * w[1] ** 2


def plateau_loss(w: jax.Array) -> jax.Array:
    """``J(w) = sigmoid(-2 w0) + w1^2 / 2``: a shelf at cost 1 for ``w0 << 0`` whose slope
    ``~2 exp(2 w0)`` is tiny, falling to 0 for ``w0 >> 0``, across a valley in ``w1``. The
    saturated sigmoid is how plateaus arise in networks."""
    return jax.nn.sigmoid(-2.0 * w[0]) + 0.5 * w[1] ** 2


SADDLE = EscapeProblem("saddle", saddle_loss, (1.0, 0.0), 1e-3, -0.125, 0.1, 2_000)
"""Start near the saddle's stable line ``w1 = 0``; escaped halfway down to a minimum."""
PLATEAU = EscapeProblem("plateau", plateau_loss, (-3.0, 1.0), 1e-3, 0.5, 0.1, 3_000)
"""Start on the shelf (slope ~5e-3); escaped halfway down it."""


class EscapeRow(NamedTuple):
    """One optimizer's result in :func:`escape_race`.

    Attributes:
      name: the optimizer's label.
      steps: updates taken until the cost first fell below the problem's ``escape_level``,
        or ``None`` if it did not within ``max_steps``.
      path: the points visited, shape ``(k + 1, 2)``, from the start through the escape
        (``k = steps``) or through ``max_steps``.
      losses: the cost at each point of ``path``.
    """

    name: str
    steps: int | None
    path: np.ndarray
    losses: np.ndarray


def default_racers(learning_rate: float) -> dict[str, GradientTransformation]:
    """Gradient descent, momentum (beta 0.9), RMSprop (beta 0.9) and Adam (0.9, 0.999), all
    at ``learning_rate``, in the notes' forms and with their default hyperparameters.

    Momentum runs twice: in the notes' dampened form ``v = beta v + (1 - beta) g``, whose
    steady step equals gradient descent's (it gains by allowing a larger rate, not at the
    same one), and undampened, ``v = beta v + g`` (optax's and PyTorch's form), whose step
    grows to ``1 / (1 - beta)`` = 10 times gradient descent's along a steady slope."""
    return {
        "gradient descent": sgd(learning_rate),
        "momentum": momentum(learning_rate, 0.9),
        "momentum, undampened": momentum(learning_rate, 0.9, dampened=False),
        "RMSprop": rmsprop(learning_rate, 0.9),
        "Adam": adam(learning_rate),
    }


def optimizer_path(
    optimizer: GradientTransformation, loss_fn: Callable[[jax.Array], jax.Array], start: Any, steps: int
) -> jax.Array:
    """The points ``w_0 = start, w_1, ..., w_steps`` the optimizer visits minimising ``loss_fn``
    with exact gradients, as one ``lax.scan``; shape ``(steps + 1, *start.shape)``, float32.

    Example:
      >>> import jaxopt_notes as jn
      >>> optimizer_path(jn.sgd(0.25), lambda w: (w**2).sum(), [2.0, -4.0], 2).tolist()
      [[2.0, -4.0], [1.0, -2.0], [0.5, -1.0]]
    """
    start = jnp.asarray(start, jnp.float32)
    grad = jax.grad(loss_fn)

    def step(carry, _):
        params, state = carry
        updates, state = optimizer.update(grad(params), state, params)
        params = apply_updates(params, updates)
        return (params, state), params

    _, points = jax.lax.scan(step, (start, optimizer.init(start)), None, length=steps)
    return jnp.concatenate([start[None], points])


def escape_race(
    problem: str | EscapeProblem = "saddle",
    *,
    optimizers: Mapping[str, Any] | None = None,
    learning_rate: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
) -> list[EscapeRow]:
    """Starts each optimizer at the same point near a saddle or on a plateau and counts the
    updates it needs to escape (notes section 8: momentum, RMSprop and Adam leave plateaus
    faster).

    Every optimizer follows exact gradients of ``problem.loss_fn`` from ``problem.start``
    plus a seeded perturbation of size ``problem.jitter`` (the same for all); it has
    escaped at the first step whose cost is below ``problem.escape_level``.

    Args:
      problem: ``"saddle"`` (:data:`SADDLE`), ``"plateau"`` (:data:`PLATEAU`) or any
        :class:`EscapeProblem`.
      optimizers: ``{label: gradient transformation}``; default gradient descent, momentum (dampened and
        undampened), RMSprop and Adam, all at ``learning_rate``.
      learning_rate: the default racers' rate; default the problem's (0.1).
      max_steps: the step budget; default the problem's.
      seed: seeds the starting perturbation.

    Returns:
      One :class:`EscapeRow` ``(name, steps, path, losses)`` per optimizer, in order.

    Example:
      >>> rows = escape_race("plateau")
      >>> [row.name for row in sorted(rows, key=lambda row: row.steps)][:2]  # the adaptive ones
      ['RMSprop', 'Adam']
    """
    if isinstance(problem, str):
        known = {"saddle": SADDLE, "plateau": PLATEAU}
        if problem not in known:
            raise ValueError(f"problem must be one of {sorted(known)} or an EscapeProblem, got {problem!r}")
        problem = known[problem]
    elif not isinstance(problem, EscapeProblem):
        raise TypeError(f"problem must be 'saddle', 'plateau' or an EscapeProblem, got {type(problem).__name__}")
    if learning_rate is not None and optimizers is not None:
        raise ValueError("give either optimizers or learning_rate (the default optimizers' rate), not both")
    rate = problem.learning_rate if learning_rate is None else learning_rate
    _checks.check_learning_rate("learning_rate", rate)
    steps = problem.max_steps if max_steps is None else max_steps
    _checks.check_int("max_steps", steps, minimum=1)
    _checks.check_int("seed", seed)
    racers = default_racers(rate) if optimizers is None else dict(optimizers)
    if not racers:
        raise ValueError("optimizers must name at least one optimizer")
    for name, optimizer in racers.items():
        _checks.check_transformation(f"optimizers[{name!r}]", optimizer)

    noise = jax.random.normal(jax.random.key(seed), (2,), jnp.float32)
    start = jnp.asarray(problem.start, jnp.float32) + problem.jitter * noise
    batched_loss = jax.jit(jax.vmap(problem.loss_fn))
    rows = []
    for name, optimizer in racers.items():
        path = optimizer_path(optimizer, problem.loss_fn, start, int(steps))
        losses = np.asarray(batched_loss(path))
        below = np.flatnonzero(losses < problem.escape_level)
        escaped = int(below[0]) if below.size else None
        end = len(losses) if escaped is None else escaped + 1
        rows.append(EscapeRow(name, escaped, np.asarray(path)[:end], losses[:end]))
    return rows
