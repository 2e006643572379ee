"""Transforms and schedules that compare equal when the same factory built them from the same
hyperparameters, so compiled code made for one serves the other.

``jn.adam(1e-2) == jn.adam(1e-2)`` is False for plain closures: each call makes new ``init``
and ``update`` functions, and a cache keyed by them (``fit``'s compiled epoch, ``jax.jit``'s
own) compiles again for every new object. A factory decorated with :func:`equal_by_arguments`
wraps the functions it returns in a :class:`Recipe`, a callable that compares and hashes by
what built it: the factory, the role of the function (``init``, ``update``, a schedule) and
the arguments, bound to the factory's signature so that ``adam(1e-2)`` and
``adam(learning_rate=1e-2, b1=0.9)`` agree. Because the functions are pure, equal recipes
behave identically, and the optimizer's ``NamedTuple`` compares its members, so two equal
optimizers are equal and hash alike.

Only arguments whose equality is safe take part. Numbers, strings, ``None``, dtypes and
tuples of them compare by type and exact value (``1`` is not ``1.0``, ``np.float32(0.1)`` is
not ``0.1``); another recipe compares by its own recipe, a frozen dataclass (a schedule of
:mod:`jaxopt_notes.keras`) by its fields; any other callable (a schedule of
the caller's, a mask function) and any other transform's functions by identity. An argument
that could change after the call or be costly to compare (an array, a list, a dict, a traced
value) leaves the result a plain transform, equal only to itself, as before.

A new factory opts in with one line: ``@equal_by_arguments`` above its ``def``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, TypeVar

import numpy as np

P = ParamSpec("P")
R = TypeVar("R")

_SCALARS = (type(None), bool, int, float, complex, str, bytes, np.bool_, np.number)


class Unsafe(Exception):
    """An argument whose equality cannot be trusted: the result stays a plain transform."""


class _ByIdentity:
    """A key equal only to a key of the very same object (a callable of the caller's)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


class Recipe:
    """A function of a transform or schedule that compares and hashes by ``key``: the factory
    that built it, its role and the factory's arguments. Calling it calls the function."""

    def __init__(self, function: Callable[..., Any], role: str, built: Hashable):
        functools.update_wrapper(self, function)
        self._function, self._role, self.key = function, role, (role, built)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipe) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"<{self._role} {getattr(self._function, '__qualname__', '')}, equal by arguments>"


def frozen(value: Any) -> Hashable:
    """A hashable key for an argument, equal for two arguments only when they are
    interchangeable; raises :class:`Unsafe` when that cannot be told cheaply and safely."""
    if isinstance(value, Recipe):
        return value.key
    if isinstance(value, _SCALARS):
        return (type(value), repr(value))  # repr keeps -0.0 apart from 0.0
    if isinstance(value, np.dtype):
        return (np.dtype, value.str)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return (tuple, tuple(frozen(item) for item in value))
    if callable(getattr(value, "init", None)) and callable(getattr(value, "update", None)):
        return (type(value), frozen(value.init), frozen(value.update))
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        try:  # a frozen dataclass (a Keras-style schedule) is what its fields are
            return (type(value), tuple(frozen(getattr(value, field.name)) for field in dataclasses.fields(value)))
        except Unsafe:
            pass
    if callable(value) and not isinstance(value, np.ndarray):
        return _ByIdentity(value)
    raise Unsafe(type(value).__name__)


def _frozen_argument(value: Any, keywords: bool) -> Hashable:
    """The key of one bound argument; ``**kwargs`` arrive as a dict, which is frozen by name."""
    if keywords:
        return (dict, tuple(sorted((name, frozen(item)) for name, item in value.items())))
    return frozen(value)


def _wrapped(result: Any, key: Hashable) -> Any:
    """``result`` with its functions wrapped as recipes: a transform's ``init`` and ``update``,
    or the schedule itself."""
    if hasattr(result, "_replace") and callable(getattr(result, "init", None)):
        return result._replace(init=Recipe(result.init, "init", key), update=Recipe(result.update, "update", key))
    if callable(result):
        return Recipe(result, "schedule", key)
    return result


def equal_by_arguments(factory: Callable[P, R], *, name: Hashable = None) -> Callable[P, R]:
    """Decorates a factory of transforms or schedules so that what it builds from equal
    arguments compares equal (see the module docstring).

    Args:
      factory: a function returning a gradient transformation (a ``NamedTuple`` with ``init``
        and ``update``) or a schedule (a callable).
      name: what identifies the factory in the key, when the factory object itself is made
        anew for each use (a closure) but its behaviour depends only on ``name``; default the
        factory itself.

    Example:
      >>> import jaxopt_notes as jn
      >>> jn.adam(1e-2) == jn.adam(learning_rate=1e-2, b1=0.9), jn.adam(1e-2) == jn.adam(1e-3)
      (True, False)
      >>> hash(jn.sgd(0.1)) == hash(jn.sgd(0.1))
      True
    """
    signature = inspect.signature(factory)
    spread = {p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD}
    identity = _ByIdentity(factory) if name is None else name

    @functools.wraps(factory)
    def build(*args: P.args, **kwargs: P.kwargs) -> R:
        result = factory(*args, **kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return result  # the factory accepted a call its signature does not show: leave it plain
        bound.apply_defaults()
        try:
            arguments = tuple(
                (argument, _frozen_argument(value, argument in spread)) for argument, value in bound.arguments.items()
            )
        except Unsafe:
            return result
        return _wrapped(result, (identity, arguments))

    return build
