"""Manual decay (notes section 7): hyperparameters that live in the optimizer state.

``inject_hyperparams(factory)(learning_rate=..., ...)`` builds an optimizer whose state holds
its numeric hyperparameters as arrays. A person watching a long run, or a callback in a
training loop, reads the rate in use and lowers it between two steps with
:func:`set_hyperparams`; since the rate is data rather than a constant baked into the
compiled step, the jitted step keeps running without being traced or compiled again::

    opt = inject_hyperparams(jn.adam)(learning_rate=1e-3)
    state = opt.init(params)
    ...                                     # many steps of a jitted train_step
    state = set_hyperparams(state, learning_rate=1e-4)
    ...                                     # the next step uses 1e-4, same compiled code

Schedules given in place of a number are evaluated into the state at every step (optax's
``inject_hyperparams`` pattern), which makes them visible to the loop as well.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_notes import _checks
from jaxopt_notes._base import (
    GradientTransformation,
    Params,
    Updates,
    find_states,
    transformation,
    update_with_extra_args,
)
from jaxopt_notes._numerics import increment_count, init_count
from jaxopt_notes._recipe import Unsafe, equal_by_arguments, frozen


class WrappedScheduleState(NamedTuple):
    """The step count of one scheduled hyperparameter (as optax's): the step it sees next."""

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax


class InjectStatefulHyperparamsState(NamedTuple):
    """State of an optimizer built by :func:`inject_hyperparams`, laid out as optax's
    ``inject_hyperparams`` state (same class and field names), so
    ``optax.tree.get(state, "learning_rate")`` finds the one rate.

    Attributes:
      count: updates taken so far (int32 scalar, saturating).
      hyperparams: ``{name: value}`` for every numeric hyperparameter: for one given as a
        number, the value the next update uses, which :func:`set_hyperparams` changes; for
        one given as a schedule, the value the latest update used (before the first update,
        the one it will use), recomputed by the schedule at every step.
      hyperparams_states: ``{name: WrappedScheduleState}`` for each scheduled hyperparameter.
      inner_state: the state of the wrapped optimizer (its learning-rate state too, so
        :func:`~jaxopt_notes.learning_rate_in_use` keeps working).

    Every value is a float array of fixed dtype and shape, JAX's default float dtype
    (float32, or float64 under ``jax_enable_x64``), so states before and after
    :func:`set_hyperparams` are interchangeable in ``lax.cond``, ``lax.scan`` and checkpoints.
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    hyperparams: dict[str, jax.Array]
    hyperparams_states: dict[str, WrappedScheduleState]
    inner_state: Any


def _is_static(value: Any) -> bool:
    """Flags, dtypes, strings and ``None`` configure the code itself: they stay Python values."""
    if value is None or isinstance(value, (bool, np.bool_, str, type, np.dtype)):
        return True
    if isinstance(value, (jax.Array, np.ndarray)):
        return not jnp.issubdtype(value.dtype, jnp.number)
    return not (callable(value) or isinstance(value, (int, float, np.number)))


def _as_hyperparam(name: str, value: Any, dtype: Any) -> jax.Array:
    array = jnp.asarray(value)
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real, got {value!r}")
    return array.astype(dtype)


def _checked_factory(
    optimizer_factory: Any, static_args: str | Iterable[str]
) -> tuple[str, inspect.Signature, set[str]]:
    """The factory's name and signature and the static argument names, after checking that
    every hyperparameter can be passed by keyword and every static name is a parameter."""
    if not callable(optimizer_factory):
        raise TypeError(f"optimizer_factory must be a callable returning an optimizer, got {optimizer_factory!r}")
    factory_name = getattr(optimizer_factory, "__name__", repr(optimizer_factory))
    signature = inspect.signature(optimizer_factory)
    kinds = {parameter.kind for parameter in signature.parameters.values()}
    if kinds & {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL}:
        raise TypeError(
            f"inject_hyperparams: {factory_name} has positional-only or *args parameters; wrap it in a "
            "function taking its hyperparameters by keyword"
        )
    static_names = {static_args} if isinstance(static_args, str) else set(static_args)
    takes_any_keyword = inspect.Parameter.VAR_KEYWORD in kinds
    unknown = static_names - set(signature.parameters)
    if unknown and not takes_any_keyword:
        raise ValueError(
            f"inject_hyperparams: static_args {sorted(unknown)} are not parameters of {factory_name}; "
            f"its parameters are {list(signature.parameters)}"
        )
    return factory_name, signature, static_names


def _keyword_arguments(
    factory_name: str, signature: inspect.Signature, args: tuple, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Every argument of one call of the factory by name, defaults filled in, ``**kwargs`` spread."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{factory_name}: {error}") from None
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    return arguments


def inject_hyperparams(
    optimizer_factory: Callable[..., optax.GradientTransformation], *, static_args: str | Iterable[str] = ()
) -> Callable[..., GradientTransformation]:
    """Wraps ``optimizer_factory`` so that its numeric hyperparameters live in the state.

    The returned function takes the factory's own arguments. Each one, the factory's defaults
    included, is sorted once, when the optimizer is built:

    - a number (Python or array) becomes a settable entry of ``state.hyperparams``, stored as
      a float array (JAX's default float dtype) of its own shape;
    - a callable becomes a schedule ``step -> value``, evaluated at its own count before each
      update into ``state.hyperparams`` (its count lives in ``state.hyperparams_states``);
    - booleans (``eps_in_sqrt``, ``nesterov``), dtypes, strings and ``None`` stay static Python
      values, as do the names in ``static_args``; changing them needs a new optimizer.

    At every update the factory is called again with the current values (once per trace
    under ``jax.jit``), and the inner optimizer updates its own state. The factory's argument
    checks run when the optimizer is built, with the schedules' step-0 values.

    Args:
      optimizer_factory: any function returning a gradient transformation and taking its
        hyperparameters by keyword (:func:`~jaxopt_notes.adam`, ``optax.adam`` ...).
      static_args: names to keep static although numeric or callable: integer arguments the
        factory uses as Python ints (sizes, step counts), or callables that are not schedules.

    Returns:
      ``build(*args, **kwargs) -> GradientTransformation`` with
      :class:`InjectStatefulHyperparamsState`; its ``update`` takes extra keyword arguments
      and hands them to the inner optimizer if it accepts them.

    Equals ``optax.inject_hyperparams(optimizer_factory)`` step for step, state layout
    included; optax stores the values in the parameters' widest dtype and lets a schedule's
    entry be overwritten to no effect, where this version keeps one dtype and refuses to set
    a scheduled value.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = inject_hyperparams(jn.adam)(learning_rate=0.1)
      >>> state = opt.init({"w": jnp.zeros(2)})
      >>> state = set_hyperparams(state, learning_rate=0.01)
      >>> float(state.hyperparams["learning_rate"])
      0.009999999776482582
    """
    factory_name, signature, static_names = _checked_factory(optimizer_factory, static_args)

    def build(*args: Any, **kwargs: Any) -> GradientTransformation:
        arguments = _keyword_arguments(factory_name, signature, args, kwargs)
        dtype = jnp.result_type(float)
        static, numeric, schedules = {}, {}, {}
        for name, value in arguments.items():
            if name in static_names or _is_static(value):
                static[name] = value
            elif callable(value):
                schedules[name] = value
            else:
                numeric[name] = _as_hyperparam(name, value, dtype)

        def evaluate(counts: dict[str, jax.Array]) -> dict[str, jax.Array]:
            return {name: _as_hyperparam(name, schedule(counts[name]), dtype) for name, schedule in schedules.items()}

        fresh = {name: init_count() for name in schedules}
        # Built once now, so the factory's own checks reject bad values before any step runs, and
        # so the result is declared element-wise exactly when the optimizer it injects into is.
        example = optimizer_factory(**static, **numeric, **evaluate(fresh))

        def init(params: Params) -> InjectStatefulHyperparamsState:
            values = {**numeric, **evaluate(fresh)}
            inner = optimizer_factory(**static, **values)
            states = {name: WrappedScheduleState(count) for name, count in fresh.items()}
            return InjectStatefulHyperparamsState(init_count(), values, states, inner.init(params))

        def update(
            updates: Updates, state: InjectStatefulHyperparamsState, params: Params | None = None, **extra_args: Any
        ) -> tuple[Updates, InjectStatefulHyperparamsState]:
            if (
                not isinstance(state, InjectStatefulHyperparamsState)
                or set(state.hyperparams) != set(numeric) | set(schedules)
                or set(state.hyperparams_states) != set(schedules)
            ):
                raise ValueError(
                    f"inject_hyperparams({factory_name}).update: state must be the InjectStatefulHyperparamsState "
                    f"made by this optimizer's init, with hyperparams {sorted(set(numeric) | set(schedules))}"
                )
            scheduled = evaluate({name: state.hyperparams_states[name].count for name in schedules})
            values = {**{name: state.hyperparams[name] for name in numeric}, **scheduled}
            inner = optimizer_factory(**static, **values)
            updates, inner_state = update_with_extra_args(inner, updates, state.inner_state, params, extra_args)
            states = {
                name: WrappedScheduleState(increment_count(state.hyperparams_states[name].count)) for name in schedules
            }
            return updates, InjectStatefulHyperparamsState(increment_count(state.count), values, states, inner_state)

        return transformation(init, update, example)

    return _equal_when_built_alike(functools.wraps(optimizer_factory)(build), optimizer_factory, static_names)


def _equal_when_built_alike(
    build: Callable[..., GradientTransformation], optimizer_factory: Any, static_names: set[str]
) -> Callable[..., GradientTransformation]:
    """``build`` whose optimizers compare equal to those of another ``inject_hyperparams`` of the
    same factory and static names, built from the same arguments: the closure is new for every
    call of :func:`inject_hyperparams`, so the key names what it is made of instead."""
    try:
        name = ("inject_hyperparams", frozen(optimizer_factory), tuple(sorted(static_names)))
    except Unsafe:
        return build
    return equal_by_arguments(build, name=name)


_INJECTED = (InjectStatefulHyperparamsState, optax.InjectStatefulHyperparamsState)
"""Ours, and optax's (same fields), which :func:`set_hyperparams` changes alike."""


def _is_injected(node: Any) -> bool:
    return isinstance(node, _INJECTED)


def _replace_value(name: str, current: Any, value: Any) -> Any:
    """``value`` in place of the one array inside ``current``, in ``current``'s container (a bare
    array, or a wrapper such as a ``flax.nnx`` variable), dtype and shape."""
    leaves, treedef = jax.tree.flatten(current)
    if len(leaves) != 1:
        raise ValueError(f"set_hyperparams: {name} must hold one array, got {len(leaves)}")
    array = jnp.asarray(leaves[0])
    new = _as_hyperparam(name, value, array.dtype)
    if new.shape != array.shape:
        raise ValueError(f"set_hyperparams: {name} must have shape {array.shape}, got {new.shape}")
    if not _checks.is_traced(new) and not bool(np.all(np.isfinite(np.asarray(new)))):
        raise ValueError(f"set_hyperparams: {name} must be finite, got {value!r}")
    return jax.tree.unflatten(treedef, [new])


def set_hyperparams(state: Any, **values: Any) -> Any:
    """A copy of ``state`` whose next update uses ``values`` (``learning_rate=1e-4`` ...).

    ``state`` is an :class:`InjectStatefulHyperparamsState`, or optax's, or any pytree
    holding exactly one (a training loop's wrapped state, ``flax.nnx.Optimizer.opt_state`` ...). Each value keeps
    the dtype, shape and container of the one it replaces, and the rest of ``state`` is kept
    as it is, so a jitted step, ``nnx.jit`` included, accepts the new state without tracing
    again. Works inside ``jax.jit`` too (a traced value is stored unchecked).

    Raises:
      TypeError: ``state`` holds no injected hyperparameters, or a value is not a number.
      ValueError: an unknown or scheduled name, a shape that differs, a non-finite value, or
        several injected states in ``state``.

    The factory's range checks (a rate >= 0, a beta in [0, 1)) rerun at the next update
    outside ``jax.jit``; under ``jax.jit`` only finiteness is checked, here.

    Example (a callback halving the rate):
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> state = inject_hyperparams(jn.sgd)(learning_rate=0.2).init(jnp.zeros(3))
      >>> state = set_hyperparams(state, learning_rate=state.hyperparams["learning_rate"] / 2)
      >>> float(state.hyperparams["learning_rate"])
      0.10000000149011612
    """
    if not values:
        raise TypeError("set_hyperparams: give the values to set as keywords, e.g. learning_rate=1e-4")
    found = find_states(state, _INJECTED)
    if not found:
        raise TypeError(
            "set_hyperparams: state holds no InjectStatefulHyperparamsState; build the optimizer with "
            "inject_hyperparams(factory)(...) to change its hyperparameters between steps"
        )
    if len(found) > 1:
        raise ValueError(
            f"set_hyperparams: state holds {len(found)} InjectStatefulHyperparamsState; pass the one to change"
        )
    target = found[0]
    hyperparams = dict(target.hyperparams)
    for name, value in values.items():
        if name in target.hyperparams_states:
            raise ValueError(
                f"set_hyperparams: {name} is driven by a schedule, which would overwrite it at the next step; "
                f"build the optimizer with {name} as a number to set it by hand"
            )
        if name not in hyperparams:
            settable = sorted(set(hyperparams) - set(target.hyperparams_states))
            raise ValueError(f"set_hyperparams: unknown hyperparameter {name!r}; settable: {settable}")
        if _is_static(value) or callable(value):
            raise TypeError(f"set_hyperparams: {name} must be a number or numeric array, got {value!r}")
        hyperparams[name] = _replace_value(name, hyperparams[name], value)
    replacement = target._replace(hyperparams=hyperparams)
    return jax.tree.map(lambda node: replacement if node is target else node, state, is_leaf=_is_injected)
