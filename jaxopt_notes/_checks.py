"""Argument checks shared by every transform: clear errors instead of silent corruption.

Hyperparameters are checked when a transform is built. A value traced under ``jax.jit``
cannot be inspected, so it is accepted as it is: checking it is the caller's business.
Gradients are checked against the state when ``update`` runs; under ``jit`` that happens
once, at trace time, and costs nothing per step.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (``batch_size=1.5``): every check raises this one type for
    that mistake. A TypeError; also a ValueError, which some checks raised for it before they
    were merged into one, so code catching either keeps working (as NumPy's ``AxisError`` is
    both a ValueError and an IndexError)."""


def is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _as_real(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or not np.isscalar(value) and np.ndim(value) != 0:
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r}") from None


def check_decay(name: str, value: Any, *, allow_one: bool = False) -> None:
    """A decay rate (beta) must lie in [0, 1); in [0, 1] with ``allow_one``, for a transform
    that takes no bias correction (``decay = 1`` is then a plain sum, as in optax)."""
    if is_traced(value):
        return
    number = _as_real(name, value)
    if allow_one:
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        return
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    if np.float32(number) >= 1.0:
        raise ValueError(
            f"{name}={value!r} rounds to 1.0 in float32, which would divide by zero in the bias "
            "correction; use a value below 1 - 6e-8"
        )


def check_nonnegative(name: str, value: Any) -> None:
    """A finite number >= 0 (epsilon and the like)."""
    if is_traced(value):
        return
    number = _as_real(name, value)
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_finite(name: str, value: Any) -> None:
    """Any finite real number (a scale factor may be negative)."""
    if is_traced(value):
        return
    number = _as_real(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_learning_rate(name: str, value: Any) -> None:
    """A finite number >= 0, or a schedule ``step -> value``."""
    if callable(value):
        return
    if is_traced(value):
        return
    if isinstance(value, bool) or not (np.isscalar(value) or np.ndim(value) == 0):
        raise ArgumentTypeError(f"{name} must be a number >= 0 or a callable schedule step -> value, got {value!r}")
    check_nonnegative(name, value)


def check_dtype(name: str, value: Any) -> None:
    """``None`` or a floating-point dtype, real or complex."""
    if value is None:
        return
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be None or a floating-point dtype, got {value!r}") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise ArgumentTypeError(
            f"{name} must be None or a floating-point dtype, got {dtype} (real and complex floats are accepted)"
        )


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """An integer (Python or NumPy, never a bool), returned as an ``int``: an
    :class:`ArgumentTypeError` for any other type, a ValueError below ``minimum``. ``name`` may
    carry its caller (``"fit: epochs"``)."""
    wanted = "an integer" if minimum is None else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ArgumentTypeError(f"{name} must be {wanted}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_transformation(name: str, value: Any) -> None:
    """A gradient transformation: anything with callable ``init`` and ``update`` (ours, optax's)."""
    if not (callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))):
        raise ArgumentTypeError(
            f"{name} must be a gradient transformation with init and update, got {type(value).__name__} {value!r}"
        )


def check_state(where: str, state: Any, *expected: type) -> None:
    """``state`` must be one of the ``expected`` state types (made by the transform's own init)."""
    if not isinstance(state, expected):
        names = " or ".join(kind.__name__ for kind in expected)
        got = type(state).__name__
        if any(kind.__name__ == got for kind in expected):  # e.g. optax's class of the same name
            got = f"{type(state).__module__}.{got}"
        raise ValueError(f"{where}: state must be the {names} made by its init, got {got}")


def path_str(path: tuple) -> str:
    """A pytree path as text, ``['layer'][0]``; ``(root)`` for the root itself."""
    return jax.tree_util.keystr(path) or "(root)"


def _describe(leaf: Any) -> str:
    return f"{tuple(np.shape(leaf))} {jnp.result_type(leaf)}"


def check_params(where: str, params: Any) -> None:
    """Every leaf must be a floating-point array, real or complex (second moments use
    ``|g|**2``, as optax's do): integer and boolean leaves cannot be optimized, and are
    rejected rather than silently cast."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise ArgumentTypeError(
                f"{where}: params{path_str(path)} has dtype {dtype}; only real floating-point or complex "
                "leaves can be optimized. Keep integer and boolean values out of params, or leave them "
                "out with optax.masked."
            )


def same_structure(treedef: Any, other: Any) -> bool:
    """Whether two ``PyTreeDef``s are equal (taken as ``Any``: jaxlib's stubs give them no ``==``)."""
    return bool(treedef == other)


def check_updates_match(where: str, updates: Any, reference: Any) -> None:
    """``updates`` must have ``reference``'s pytree structure and leaf shapes, with
    floating-point leaves. The error names the first path that differs."""
    got = jax.tree_util.tree_flatten_with_path(updates)
    expected = jax.tree_util.tree_flatten_with_path(reference)
    if not same_structure(got[1], expected[1]):
        got_paths = [path_str(path) for path, _ in got[0]]
        expected_paths = [path_str(path) for path, _ in expected[0]]
        for got_path, expected_path in zip(got_paths, expected_paths):
            if got_path != expected_path:
                raise ValueError(
                    f"{where}: updates do not match the state's pytree: expected a leaf at {expected_path}, "
                    f"got one at {got_path}"
                )
        if len(got_paths) != len(expected_paths):
            longer, label = (
                (got_paths, "extra") if len(got_paths) > len(expected_paths) else (expected_paths, "missing")
            )
            raise ValueError(
                f"{where}: updates do not match the state's pytree: {label} leaf at "
                f"{longer[min(len(got_paths), len(expected_paths))]}"
            )
        raise ValueError(
            f"{where}: updates do not match the state's pytree structure: expected {expected[1]}, got {got[1]}"
        )
    for (path, update), (_, expected_leaf) in zip(got[0], expected[0]):
        if np.shape(update) != np.shape(expected_leaf) or not jnp.issubdtype(jnp.result_type(update), jnp.inexact):
            raise ValueError(
                f"{where}: updates{path_str(path)}: expected {_describe(expected_leaf)}, got {_describe(update)}"
            )
