"""The state a fit run carries from step to step, and how it is set up from the caller's
parameters: packed or not (:mod:`jaxopt_notes._packing`), copied, and placed."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_notes import _pack_policy, _packing
from jaxopt_notes._base import ElementwiseTransformation
from jaxopt_notes.training._compiled import Carry
from jaxopt_notes.training._config import FitConfig
from jaxopt_notes.training._placement import Placement


@dataclasses.dataclass
class TrainState:
    """What the compiled epoch carries: ``params`` (packed when ``packed``), the optimizer
    state, ``failed``, set after the first non-finite step when fit stops on errors, the
    model state (None without one), the run's base ``key`` (None without one) and ``step``,
    the steps taken so far (each step's key is ``fold_in(key, step)``)."""

    params: Any
    opt_state: Any
    packed: bool
    failed: jax.Array = dataclasses.field(default_factory=lambda: jnp.zeros([], bool))
    model_state: Any = None
    key: jax.Array | None = None
    step: jax.Array = dataclasses.field(default_factory=lambda: jnp.zeros([], jnp.int32))

    @property
    def carry(self) -> Carry:
        return Carry(self.params, self.opt_state, self.failed, self.model_state, self.key, self.step)

    @carry.setter
    def carry(self, value: Carry) -> None:
        self.params, self.opt_state, self.failed, self.model_state, self.key, self.step = value

    def user_params(self) -> Any:
        """The parameters as the caller's tree (unpacked), sharing buffers with the state."""
        return _packing.unpack(self.params) if self.packed else self.params


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


def decide_packing(params: Any, config: FitConfig) -> bool:
    """Whether the run steps on packed parameters. ``pack=None`` packs when
    :func:`~jaxopt_notes.should_pack` says it pays and packing is faithful (the optimizer acts
    element by element, no leaf is sharded); ``pack=True`` raises when it is not faithful. A
    :class:`~jaxopt_notes.Packed` the caller made stays theirs: it is never packed again."""
    if isinstance(params, _packing.Packed) or config.pack is False:
        return False
    if config.pack is None and not _pack_policy.should_pack(params):
        return False
    reason = _why_not_faithful(params, config.optimizer)
    if reason is not None and config.pack:
        raise ValueError(f"fit: pack=True, but packing would change the training: {reason}")
    return reason is None


def initial_state(
    params: Any, config: FitConfig, place: Placement, model_state: Any = None, key: jax.Array | None = None
) -> TrainState:
    """A fresh state: the caller's parameters (packed when :func:`decide_packing` says so),
    the optimizer's initial state and the model state, all copies placed for the run."""
    packed = decide_packing(params, config)
    state_params = place.put_state(_packing.pack(params) if packed else params)
    opt_state = place.put_state(config.optimizer.init(state_params))
    model_state = None if model_state is None else place.put_state(model_state)
    key = None if key is None else place.put_state(key)
    return TrainState(state_params, opt_state, packed, model_state=model_state, key=key)
