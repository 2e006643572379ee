"""What :func:`~jaxopt_notes.fit` trains, taken from what the caller passed as ``params``.

fit's step works on a pytree of floating-point arrays (the trainable parameters), a model
state it carries but does not train, and a loss ``loss(params, [model_state,] x, [y,] [key=])``.
A plain pytree is that already. A framework's model is split into those parts and put back
together inside the step, so the caller's loss sees the model it was written for:

- a flax.nnx ``Module``: ``nnx.split(model, nnx.Param, ...)``; the ``nnx.Param`` variables are
  trained, every other variable (BatchNorm statistics, RNG counts and keys) is carried as
  model state and updated by the loss's calls; the loss is ``loss_fn(model, x, y)``;
- equinox modules (the model itself, or anywhere in ``params``):
  ``eqx.partition(model, eqx.is_inexact_array)``; the inexact arrays are trained, the other
  arrays (integer fields) are carried unchanged, everything else (activation functions,
  Python numbers) is static; the loss is ``loss_fn(model, x, y)``, or with ``model_state``
  (an ``eqx.nn.State``) ``loss_fn(model, state, x, y) -> (cost, state)``.

The package never imports flax or equinox: a model is recognised only when its framework is
already imported (``sys.modules``), which it must be for the caller to have built one.
Validation and metrics see the model in evaluation mode (``model.eval()`` for nnx,
``eqx.nn.inference_mode`` for equinox); training uses it in the mode it was passed in.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks


class _Shown(str):
    """Text shown without quotes inside a container's repr."""

    def __repr__(self) -> str:
        return str(self)


def describe(tree: Any) -> str:
    """A pytree of arrays as text, each leaf as ``dtype[shape]``: what a loss returned."""

    def leaf(value: Any) -> _Shown:
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        if shape is None or dtype is None:
            return _Shown(f"{type(value).__name__} {value!r:.40}")
        return _Shown(f"{dtype}[{','.join(str(n) for n in shape)}]")

    return repr(jax.tree.map(leaf, tree, is_leaf=lambda node: node is None))


def checked_cost(cost: Any, returned: Any) -> jax.Array:
    """``cost`` after checking it is a real floating-point scalar, the only output ``jax.grad``
    differentiates; ``returned`` is the loss's whole output, named in the error."""
    shape, dtype = getattr(cost, "shape", None), getattr(cost, "dtype", None)
    if shape == () and dtype is not None and jnp.issubdtype(dtype, jnp.floating):
        return cost
    hint = ""
    if isinstance(returned, tuple) and len(returned) == 2:
        hint = (
            " A loss wrapped in jax.value_and_grad returns (cost, grads): pass the plain loss, fit takes its "
            "gradient itself; a loss that updates a model state needs model_state= (or an nnx module as params)."
        )
    raise TypeError(
        f"fit: loss_fn must return the cost as a real floating-point scalar (shape ()), which fit "
        f"differentiates; it returned {describe(returned)}.{hint}"
    )


def cost_and_state(returned: Any, model_state: Any, *, with_state: bool) -> tuple[jax.Array, Any]:
    """A loss's output as ``(cost, new model state)`` (None without a state), after checking its form:
    with a state, ``(cost, new_state)`` with ``new_state`` structured as ``model_state``."""
    if not with_state:
        return checked_cost(returned, returned), None
    if not (isinstance(returned, tuple) and len(returned) == 2):
        raise TypeError(
            f"fit: with model_state, loss_fn must return (cost, new_model_state); it returned {describe(returned)}"
        )
    cost, new_state = returned
    if not _checks.same_structure(jax.tree.structure(new_state), jax.tree.structure(model_state)):
        raise TypeError(
            "fit: loss_fn's new model state must have the structure of model_state: expected "
            f"{jax.tree.structure(model_state)}, got {jax.tree.structure(new_state)}"
        )
    return checked_cost(cost, returned), new_state


class Framework(Protocol):
    """How one kind of model is put back together from what the step carries. Hashable: it is
    part of the loss, which keys the compiled-step cache."""

    takes_state: bool

    def merge(self, params: Any, carried: Any, *, evaluating: bool) -> Any: ...

    def user_state(self, carried: Any) -> Any: ...

    def carried_after(self, model: Any, carried: Any, new_user_state: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class NnxFramework:
    """A flax.nnx module: trainable ``nnx.Param`` values and the other variables, both as pure
    dicts, merged with the module's ``graphdef``."""

    graphdef: Any
    takes_state = False

    def merge(self, params: Any, carried: Any, *, evaluating: bool) -> Any:
        model = sys.modules["flax.nnx"].merge(self.graphdef, params, carried)
        if evaluating:
            model.eval()
        return model

    def user_state(self, carried: Any) -> Any:
        return None

    def carried_after(self, model: Any, carried: Any, new_user_state: Any) -> Any:
        nnx = sys.modules["flax.nnx"]
        return nnx.to_pure_dict(nnx.split(model, nnx.Param, ...)[2])


@dataclasses.dataclass(frozen=True)
class EqxFramework:
    """Equinox modules: trainable inexact arrays, carried ``(other arrays, the caller's model
    state)``, and the static rest as its leaves and structure."""

    static_leaves: tuple
    static_structure: Any
    takes_state: bool

    def merge(self, params: Any, carried: Any, *, evaluating: bool) -> Any:
        eqx = sys.modules["equinox"]
        static = jax.tree.unflatten(self.static_structure, self.static_leaves)
        model = eqx.combine(params, carried[0], static)
        return eqx.nn.inference_mode(model) if evaluating else model

    def user_state(self, carried: Any) -> Any:
        return carried[1]

    def carried_after(self, model: Any, carried: Any, new_user_state: Any) -> Any:
        return carried[0], new_user_state


@dataclasses.dataclass(frozen=True)
class ModelLoss:
    """The caller's ``loss_fn(model, ...)`` in fit's own form ``loss(params, carried, x, [y,]
    [key=]) -> (cost, carried)``; compares by the framework's description and ``loss_fn``, so
    a second fit call with the same loss and an alike model reuses the compiled step."""

    framework: Any
    loss_fn: Callable[..., Any]
    evaluating: bool = False

    def __call__(self, params: Any, carried: Any, *data: Any, **keyword: Any) -> tuple[Any, Any]:
        model = self.framework.merge(params, carried, evaluating=self.evaluating)
        if not self.framework.takes_state:
            returned = self.loss_fn(model, *data, **keyword)
            return checked_cost(returned, returned), self.framework.carried_after(model, carried, None)
        state = self.framework.user_state(carried)
        cost, new_state = cost_and_state(self.loss_fn(model, state, *data, **keyword), state, with_state=True)
        return cost, self.framework.carried_after(model, carried, new_state)


@dataclasses.dataclass(frozen=True)
class ModelMetric:
    """A metric ``fn(model, [state,] x, [y])`` called as fit's evaluator calls one, on the model in
    evaluation mode."""

    framework: Any
    fn: Callable[..., Any]

    def __call__(self, params: Any, carried: Any, *data: Any) -> Any:
        model = self.framework.merge(params, carried, evaluating=True)
        if self.framework.takes_state:
            return self.fn(model, self.framework.user_state(carried), *data)
        return self.fn(model, *data)


@dataclasses.dataclass(frozen=True)
class Trainable:
    """What fit trains: ``params`` (a pytree of floating-point arrays), the ``model_state`` the
    step carries (None without one), and ``loss``, ``validation_loss`` (a framework's model in
    evaluation mode) and ``metrics`` in fit's own form (``loss(params, [model_state,] x, [y,]
    [key=])``); ``framework`` (None for a plain pytree) gives the caller's objects back."""

    params: Any
    model_state: Any
    loss: Callable[..., Any]
    validation_loss: Callable[..., Any]
    metrics: dict[str, Callable[..., Any]]
    framework: Any = None

    def given_back(self, params: Any, model_state: Any) -> tuple[Any, Any]:
        """The caller's ``(params, model_state)`` from trained ones: the same pytrees, or the
        framework's model and the model state the caller passed (None for nnx, which holds its own)."""
        if self.framework is None:
            return params, model_state
        return self.framework.merge(params, model_state, evaluating=False), self.framework.user_state(model_state)


def _nnx_module_type() -> type | None:
    nnx = sys.modules.get("flax.nnx")
    return None if nnx is None else nnx.Module


def _eqx_module_type() -> type | None:
    eqx = sys.modules.get("equinox")
    return None if eqx is None else eqx.Module


def _first_path(tree: Any, kind: type) -> str | None:
    """The path of the first node of type ``kind`` inside ``tree`` (not ``tree`` itself), or None."""
    for path, node in jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda n: isinstance(n, kind))[0]:
        if isinstance(node, kind) and path:
            return _checks.path_str(path)
    return None


def _wrapped(params: Any, carried: Any, loss_fn: Callable[..., Any], metrics: dict, framework: Any) -> Trainable:
    loss, validation_loss = ModelLoss(framework, loss_fn), ModelLoss(framework, loss_fn, evaluating=True)
    wrapped: dict[str, Callable[..., Any]] = {name: ModelMetric(framework, fn) for name, fn in metrics.items()}
    return Trainable(params, carried, loss, validation_loss, wrapped, framework)


def _nnx(loss_fn: Callable[..., Any], model: Any, model_state: Any, metrics: dict[str, Any]) -> Trainable:
    if model_state is not None:
        raise ValueError(
            "fit: an nnx module passed as params carries its own state (BatchNorm statistics, RNG counts), which "
            "fit updates and gives back in the module: pass model_state=None"
        )
    nnx = sys.modules["flax.nnx"]
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = nnx.to_pure_dict(params)
    _checks.check_params("fit", params)
    return _wrapped(params, nnx.to_pure_dict(rest), loss_fn, metrics, NnxFramework(graphdef))


def _eqx(loss_fn: Callable[..., Any], model: Any, model_state: Any, metrics: dict[str, Any]) -> Trainable:
    eqx = sys.modules["equinox"]
    params, rest = eqx.partition(model, eqx.is_inexact_array)
    arrays, static = eqx.partition(rest, eqx.is_array)
    leaves, structure = jax.tree.flatten(static)
    framework = EqxFramework(tuple(leaves), structure, takes_state=model_state is not None)
    return _wrapped(params, (arrays, model_state), loss_fn, metrics, framework)


def trainable(
    loss_fn: Any, params: Any, model_state: Any, metrics: Mapping[str, Callable[..., Any]] | None
) -> Trainable:
    """``params`` split into what fit trains and what it carries, ``loss_fn`` and ``metrics``
    wrapped to match (see the module docstring); refuses, naming the recipe, what it cannot
    train faithfully."""
    metrics = dict(metrics or {})
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable as loss_fn(params, X_batch, Y_batch), got {loss_fn!r}")
    nnx_module = _nnx_module_type()
    if nnx_module is not None:
        if isinstance(params, nnx_module):
            return _nnx(loss_fn, params, model_state, metrics)
        inside = _first_path(params, nnx_module)
        if inside is not None:
            raise TypeError(
                f"fit: params{inside} is an nnx module; pass the module itself as params (fit(loss_fn, model, ...) "
                "with loss_fn(model, x, y)), and fit trains its nnx.Param variables and carries the rest"
            )
    eqx_module = _eqx_module_type()
    if eqx_module is not None and (isinstance(params, eqx_module) or _first_path(params, eqx_module) is not None):
        return _eqx(loss_fn, params, model_state, metrics)
    _checks.check_params("fit", params)
    return Trainable(params, model_state, loss_fn, loss_fn, metrics)
