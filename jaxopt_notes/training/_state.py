"""The state a fit run carries from step to step, and how it is set up from what the caller
passed: packed or not (:mod:`jaxopt_notes._packing`), copied, and placed."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _pack_policy, _packing
from jaxopt_notes._base import ElementwiseTransformation
from jaxopt_notes.training._models import Trainable
from jaxopt_notes.training._placement import Placement


@dataclasses.dataclass(frozen=True)
class TrainState:
    """What the compiled run carries from step to step, and what fit holds between calls of it
    (a pytree; ``packed`` is static, part of its structure).

    Attributes:
      params: the trained parameters, packed (:func:`~jaxopt_notes.pack`) when ``packed``.
      opt_state: the optimizer state.
      packed: whether ``params`` is packed.
      failed: set after the first non-finite step when fit stops on errors; the run then
        leaves everything unchanged, so the state ends as the last finite one.
      model_state: what the loss updates but the optimizer does not (None without one).
      key: the run's base key (None without one); step t's key is ``fold_in(key, t)``.
      step: the int32 count of steps taken in the run, resumed ones included.
    """

    params: Any
    opt_state: Any
    packed: bool = False
    failed: jax.Array = dataclasses.field(default_factory=lambda: jnp.zeros([], bool))
    model_state: Any = None
    key: jax.Array | None = None
    step: jax.Array = dataclasses.field(default_factory=lambda: jnp.zeros([], jnp.int32))

    def user_params(self) -> Any:
        """The parameters as the trained tree (unpacked), sharing buffers with the state."""
        return _packing.unpack(self.params) if self.packed else self.params


jax.tree_util.register_dataclass(
    TrainState, data_fields=["params", "opt_state", "failed", "model_state", "key", "step"], meta_fields=["packed"]
)


def _why_not_faithful(params: Any, optimizer: Any) -> str | None:
    """Why stepping on packed parameters would change the run, or None when it would not: the
    parameters must be :func:`~jaxopt_notes.packable` (no leaf sharded across devices), and the
    optimizer must declare itself element-wise (:class:`~jaxopt_notes.ElementwiseTransformation`)
    or pass :func:`~jaxopt_notes.check_elementwise` on ``params``."""
    if not _packing.packable(params):
        return "a parameter is sharded across devices, and a packed buffer would not keep its sharding"
    if isinstance(optimizer, ElementwiseTransformation):
        return None
    try:
        _pack_policy.check_elementwise(optimizer, params)
    except ValueError as error:
        return str(error)
    return None


def decide_packing(params: Any, optimizer: Any, pack: bool | None) -> bool:
    """Whether the run steps on packed parameters. ``pack=None`` packs when
    :func:`~jaxopt_notes.should_pack` says it pays and packing is faithful (the optimizer acts
    element by element, no leaf is sharded); ``pack=True`` raises when it is not faithful. A
    :class:`~jaxopt_notes.Packed` the caller made stays theirs: it is never packed again."""
    if isinstance(params, _packing.Packed) or pack is False:
        return False
    if pack is None and not _pack_policy.should_pack(params):
        return False
    reason = _why_not_faithful(params, optimizer)
    if reason is not None and pack:
        raise ValueError(f"fit: pack=True, but packing would change the training: {reason}")
    return reason is None


def initial_state(
    trained: Trainable, optimizer: Any, pack: bool | None, place: Placement, key: jax.Array | None
) -> TrainState:
    """A fresh state: the parameters (packed when :func:`decide_packing` says so), the
    optimizer's initial state, the model state and the key, all copies placed for the run."""
    packed = decide_packing(trained.params, optimizer, pack)
    params = place.put_state(_packing.pack(trained.params) if packed else trained.params)
    opt_state = place.put_state(optimizer.init(params))
    model_state = None if trained.model_state is None else place.put_state(trained.model_state)
    key = None if key is None else place.put_state(key)
    return TrainState(params, opt_state, packed, model_state=model_state, key=key)
