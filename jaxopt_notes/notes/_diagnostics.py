"""Saddle points and curvature (notes section 8): is this zero-gradient point a minimum?

The notes argue that in high dimensions a point of zero gradient is almost never a local
minimum: every one of the many directions would have to curve upward. This module lets a
user check that on their own model, without ever forming the Hessian:

- :func:`hessian_extremes` finds the smallest and largest Hessian eigenvalues by Lanczos
  iteration on Hessian-vector products (forward-over-reverse, each costing a few gradients);
- :func:`classify_point` combines them with the gradient norm into a verdict;
- :func:`positive_definite_fraction` makes the counting argument concrete on random
  symmetric matrices.

Plateaus (long, nearly flat regions that slow training) are in :mod:`jaxopt_notes.training._plateaus`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_notes import _checks

LossFn = Callable[..., jax.Array]

# A residual this many machine epsilons (times the largest coefficient seen) below the
# scale of H means the Krylov space is invariant: continuing would divide noise by ~0.
_BREAKDOWN_EPS = 10.0


def _check_loss_fn(where: str, loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(f"{where}: loss_fn must be a callable loss_fn(params, *args) -> scalar, got {loss_fn!r}")


def _check_real_params(where: str, params: Any) -> None:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"{where}: params must be a pytree with at least one array leaf, got {params!r}")
    _checks.check_params(where, params)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if jnp.issubdtype(jnp.result_type(leaf), jnp.complexfloating):
            raise TypeError(
                f"{where}: params{_checks.path_str(path)} is complex; the Hessian of a real loss needs real leaves"
            )


def _check_scalar_loss(where: str, loss_fn: LossFn, params: Any, args: tuple) -> None:
    out = jax.eval_shape(loss_fn, params, *args)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
        raise ValueError(
            f"{where}: loss_fn(params, *args) must return a real scalar, got {getattr(out, 'shape', out)} "
            f"{getattr(out, 'dtype', type(out).__name__)}"
        )


def _orthogonalize(vector: jax.Array, basis: jax.Array) -> jax.Array:
    """Removes ``vector``'s components along the rows of ``basis`` (zero rows drop out).

    Classical Gram-Schmidt applied twice ("twice is enough", Giraud et al. 2005) keeps the
    basis orthogonal to machine precision, which plain Lanczos loses after a few steps.
    """
    vector = vector - basis.T @ (basis @ vector)
    return vector - basis.T @ (basis @ vector)


def _lanczos_tridiagonal(
    matvec: Callable[[jax.Array], jax.Array], start: jax.Array, num_iters: int
) -> tuple[jax.Array, jax.Array]:
    """``num_iters`` Lanczos steps with full reorthogonalisation from ``start``.

    Returns the diagonal ``alphas`` and off-diagonal ``betas`` of ``T = Q^T H Q``, with ``Q``
    the orthonormal Krylov basis. When the Krylov space becomes invariant (``H`` has few
    distinct eigenvalues, or is a multiple of the identity), the iteration restarts from the
    coordinate vector least represented in ``Q``, orthogonalised, and records a zero
    coupling, so ``T`` stays exactly ``Q^T H Q`` and after ``n`` steps holds the whole
    spectrum. That vector keeps at least ``1 - j/n`` of its squared length after
    orthogonalisation against ``j`` basis vectors, so it never vanishes while ``j < n``.
    """
    size = start.shape[0]
    eps = jnp.finfo(start.dtype).eps
    basis = jnp.zeros((num_iters + 1, size), start.dtype).at[0].set(start / jnp.linalg.norm(start))

    def step(j, carry):
        basis, alphas, betas, scale = carry
        q = basis[j]
        w = matvec(q)
        alpha = jnp.vdot(q, w)
        # basis @ w holds alpha and the previous beta too: this is the three-term recurrence.
        w = _orthogonalize(w, basis)
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(alpha), beta))
        breakdown = beta <= _BREAKDOWN_EPS * eps * scale
        least_covered = jnp.argmin(jnp.sum(jnp.square(basis), axis=0))
        fresh = _orthogonalize(jax.nn.one_hot(least_covered, size, dtype=start.dtype), basis)
        fresh_norm = jnp.linalg.norm(fresh)
        fresh = fresh / jnp.where(fresh_norm > 0, fresh_norm, 1)
        following = jnp.where(breakdown, fresh, w / jnp.where(breakdown, 1, beta))
        basis = basis.at[j + 1].set(following)
        alphas = alphas.at[j].set(alpha)
        betas = betas.at[j].set(jnp.where(breakdown, 0, beta))
        return basis, alphas, betas, scale

    zeros = jnp.zeros(num_iters, start.dtype)
    init = (basis, zeros, zeros, jnp.zeros((), start.dtype))
    _, alphas, betas, _ = jax.lax.fori_loop(0, num_iters, step, init)
    return alphas, betas[:-1]


def _tridiagonal_extremes(alphas: jax.Array, betas: jax.Array) -> tuple[jax.Array, jax.Array]:
    tridiagonal = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
    ritz_values = jnp.linalg.eigvalsh(tridiagonal)
    return ritz_values[0], ritz_values[-1]


def _analyse(
    loss_fn: LossFn, num_iters: int, params: Any, args: tuple, seed: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(grad_norm, lambda_min, lambda_max)``; one compiled function serves both public
    entry points (XLA drops the gradient norm where it is unused)."""
    flat, unravel = ravel_pytree(params)
    # Half-precision Lanczos loses orthogonality at once: iterate in at least float32.
    flat = flat.astype(jnp.promote_types(flat.dtype, jnp.float32))
    grad_flat = jax.grad(lambda x: loss_fn(unravel(x), *args))

    def hvp(vector):
        return jax.jvp(grad_flat, (flat,), (vector,))[1]

    start = jax.random.normal(jax.random.key(seed), flat.shape, flat.dtype)
    alphas, betas = _lanczos_tridiagonal(hvp, start, min(num_iters, flat.shape[0]))
    return (jnp.linalg.norm(grad_flat(flat)), *_tridiagonal_extremes(alphas, betas))


_analyse_jit = jax.jit(_analyse, static_argnums=(0, 1))


def _validated_analysis(
    where: str, loss_fn: LossFn, params: Any, args: tuple, num_iters: Any, seed: Any
) -> tuple[jax.Array, jax.Array, jax.Array]:
    _check_loss_fn(where, loss_fn)
    _checks.check_int("num_iters", num_iters, minimum=1)
    if not _checks.is_traced(seed):
        _checks.check_int("seed", seed)
    _check_real_params(where, params)
    _check_scalar_loss(where, loss_fn, params, args)
    return _analyse_jit(loss_fn, int(num_iters), params, args, seed)


def hessian_extremes(
    loss_fn: LossFn, params: Any, *args: Any, num_iters: int = 50, seed: int = 0
) -> tuple[jax.Array, jax.Array]:
    """The smallest and largest eigenvalues of the Hessian of ``loss_fn(params, *args)``.

    Lanczos iteration builds an orthonormal basis ``Q`` of the Krylov space
    ``span{v, Hv, H^2 v, ...}`` from a random ``v`` and the tridiagonal ``T = Q^T H Q``;
    the extreme eigenvalues of ``T`` (Ritz values) converge to those of ``H`` from inside,
    fastest when they are well separated from the rest of the spectrum. Each step needs
    one Hessian-vector product ``Hv = d/de grad(loss)(params + e v)``, computed
    forward-over-reverse (``jax.jvp`` of ``jax.grad``) at the cost of a few gradients; the
    ``n x n`` Hessian is never formed. The basis is fully reorthogonalised, which costs
    ``O(num_iters * n)`` memory and keeps the estimates free of spurious copies; with
    ``num_iters >= n`` parameters the result is the exact spectrum's ends (up to rounding).

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``, twice differentiable.
      params: the point, any pytree of real floating-point arrays (flattened internally).
      *args: passed on to ``loss_fn`` (a batch of data, say); arrays are traced, not baked in.
      num_iters: Lanczos steps, capped at the number of parameters. 50 resolves the ends of
        typical spectra to about 1e-4 relative; raise it when the extremes are clustered.
      seed: seeds the random start vector; the same seed gives the same result. The start
        matters only through rounding once ``num_iters`` reaches the number of parameters.

    Returns:
      ``(lambda_min, lambda_max)``, scalars in the parameters' promoted dtype, at least
      float32 (half-precision parameters are iterated in float32). Both are
      Ritz values, so ``lambda_min`` can only overestimate and ``lambda_max`` only
      underestimate the truth.

    The work is jit-compiled, keyed on ``loss_fn`` and ``num_iters``; define ``loss_fn``
    once rather than as a fresh lambda per call to reuse the compiled code.

    Example:
      >>> import jax.numpy as jnp
      >>> saddle = lambda p: p["x"] ** 2 - p["y"] ** 2
      >>> [float(value) for value in hessian_extremes(saddle, {"x": jnp.array(0.0), "y": jnp.array(0.0)})]
      [-2.0, 2.0]

    References:
      Lanczos (1950); Golub and Van Loan, Matrix Computations, section 10.1; Ghorbani,
      Krishnan and Xiao (2019), "An investigation into neural net optimization via Hessian
      eigenvalue density".
    """
    _, lambda_min, lambda_max = _validated_analysis("hessian_extremes", loss_fn, params, args, num_iters, seed)
    return lambda_min, lambda_max


class PointClassification(NamedTuple):
    """What :func:`classify_point` found at a point.

    Attributes:
      grad_norm: the global L2 norm of the gradient over all leaves.
      lambda_min, lambda_max: the extreme Hessian eigenvalues (:func:`hessian_extremes`).
      verdict: one of ``"minimum"``, ``"maximum"``, ``"saddle"``, ``"flat"``,
        ``"not stationary"``.
    """

    grad_norm: float
    lambda_min: float
    lambda_max: float
    verdict: str


def classify_point(
    loss_fn: LossFn,
    params: Any,
    *args: Any,
    grad_tol: float = 1e-4,
    eig_tol: float = 1e-4,
    num_iters: int = 50,
    seed: int = 0,
) -> PointClassification:
    """Classifies ``params`` by the first- and second-order tests.

    With ``g`` the gradient norm and ``lambda_min <= lambda_max`` the Hessian's extremes:

    - ``g > grad_tol``: ``"not stationary"`` (curvature is still reported);
    - ``lambda_min > eig_tol``: ``"minimum"`` (every direction curves up);
    - ``lambda_max < -eig_tol``: ``"maximum"`` (every direction curves down);
    - ``lambda_min < -eig_tol`` and ``lambda_max > eig_tol``: ``"saddle"``;
    - otherwise ``"flat"``: some curvature is within ``eig_tol`` of zero and the
      second-order test cannot decide, as on a plateau (gradient and curvature both near
      zero) or at a degenerate point such as the monkey saddle ``x^3 - 3xy^2``.

    Both tolerances are absolute, in the units of the loss (gradient: loss per unit of
    parameter; curvature: per unit squared). The defaults suit float32 losses of order 1:
    Lanczos in float32 resolves eigenvalues to about ``1e-6 * max|lambda|``, so ``eig_tol``
    must stay well above that. Exact symmetries of a network (rescaling, permuting hidden
    units) give true zero-curvature directions, so at a true minimum of such a model the
    verdict is ``"flat"``, not ``"minimum"``.

    Args:
      loss_fn, params, *args: as in :func:`hessian_extremes`.
      grad_tol: largest gradient norm counted as zero; >= 0.
      eig_tol: largest eigenvalue magnitude counted as zero; >= 0.
      num_iters, seed: passed to :func:`hessian_extremes`.

    Example:
      >>> classify_point(lambda p: p[0] ** 2 - p[1] ** 2, jnp.zeros(2)).verdict
      'saddle'
    """
    _checks.check_nonnegative("grad_tol", grad_tol)
    _checks.check_nonnegative("eig_tol", eig_tol)
    grad_norm, lambda_min, lambda_max = (
        float(value) for value in _validated_analysis("classify_point", loss_fn, params, args, num_iters, seed)
    )
    if grad_norm > grad_tol:
        verdict = "not stationary"
    elif lambda_min > eig_tol:
        verdict = "minimum"
    elif lambda_max < -eig_tol:
        verdict = "maximum"
    elif lambda_min < -eig_tol and lambda_max > eig_tol:
        verdict = "saddle"
    else:
        verdict = "flat"
    return PointClassification(grad_norm, lambda_min, lambda_max, verdict)


def positive_definite_fraction(
    dims: Iterable[int], num_samples: int = 20_000, *, seed: int = 0, chunk_size: int = 20_000
) -> np.ndarray:
    """The fraction of random symmetric matrices of each size whose eigenvalues are all
    positive: the notes' counting argument made concrete.

    Samples the Gaussian orthogonal ensemble, ``A = (G + G^T) / 2`` with ``G`` i.i.d.
    standard normal (diagonal variance 1, off-diagonal 1/2), a model of the Hessian at a
    random critical point. The notes' rough model makes each direction curve up with
    probability 1/2 independently, giving ``2^-n``; GOE eigenvalues repel one another, so
    the true fraction falls faster still, like ``exp(-(ln 3 / 4) n^2)`` for large ``n``
    (Dean and Majumdar, 2006). Exact small cases: 1/2 for ``n = 1`` and
    ``(2 - sqrt 2) / 4 ~= 0.146`` for ``n = 2``.

    Args:
      dims: the matrix sizes ``n`` to sample, each >= 1.
      num_samples: matrices per size; the standard error is about
        ``sqrt(p (1 - p) / num_samples)``.
      seed: seeds NumPy's generator; the same seed gives the same fractions.
      chunk_size: matrices drawn at once, bounding memory to ``chunk_size * n^2`` floats.

    Returns:
      A float64 array with one fraction per entry of ``dims``.

    Example:
      >>> positive_definite_fraction([1, 2, 4], 10_000).round(2)  # about [0.5, 0.146, 0.003]
      array([0.5 , 0.15, 0.  ])
    """
    dims = list(dims)
    if not dims:
        raise ValueError("dims must hold at least one matrix size")
    for n in dims:
        _checks.check_int("each entry of dims", n, minimum=1)
    _checks.check_int("num_samples", num_samples, minimum=1)
    _checks.check_int("chunk_size", chunk_size, minimum=1)
    rng = np.random.default_rng(seed)
    fractions = []
    for n in dims:
        positive = 0
        for start in range(0, num_samples, chunk_size):
            count = min(chunk_size, num_samples - start)
            gaussian = rng.standard_normal((count, n, n))
            symmetric = (gaussian + np.swapaxes(gaussian, 1, 2)) / 2
            positive += int(np.sum(np.linalg.eigvalsh(symmetric)[:, 0] > 0))
        fractions.append(positive / num_samples)
    return np.asarray(fractions, dtype=np.float64)


def decay_rate_per_dimension(dims: Iterable[int], fractions: Iterable[float]) -> float:
    """The least-squares slope of ``-ln(fraction)`` against ``n``: the exponential rate at
    which the fraction of minima falls (``ln 2 ~= 0.69`` for the notes' ``2^-n`` model).
    Sizes whose fraction is zero carry no information and are skipped."""
    pairs = [(float(n), math.log(f)) for n, f in zip(dims, fractions, strict=True) if f > 0]
    if len(pairs) < 2:
        raise ValueError("decay_rate_per_dimension needs at least two sizes with a nonzero fraction")
    ns, logs = np.asarray(pairs).T
    slope = np.polyfit(ns, logs, 1)[0]
    return float(-slope)
