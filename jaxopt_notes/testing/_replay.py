"""Stepping another framework's optimizer on our gradient stream, for :func:`assert_equivalent`.

A reference that is not a gradient transformation is a stateful optimizer of PyTorch or Keras:
it owns its parameters and changes them in place. :func:`replay_for` wraps it as a
:class:`Replay`, which takes one step on given gradients and hands back the parameters after it,
all as NumPy arrays in the order of our flattened pytree. torch and keras are imported only
here, and only when such a reference is passed.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Replay(Protocol):
    """One framework optimizer over copies of the parameter leaves."""

    def step(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        """Takes one optimizer step with ``grads`` (one array per leaf, in the leaves' order)
        and returns every parameter leaf after it."""
        ...


def is_transformation(reference: Any) -> bool:
    return callable(getattr(reference, "init", None)) and callable(getattr(reference, "update", None))


def replay_for(reference: Any, leaves: list[np.ndarray]) -> Replay:
    """The :class:`Replay` of a Keras optimizer or of a PyTorch optimizer factory
    (``params -> torch.optim.Optimizer``) over copies of ``leaves``.

    Raises:
      TypeError: when ``reference`` is neither (nor a gradient transformation, which
        :func:`assert_equivalent` steps itself).
    """
    from jaxopt_notes.testing import _keras_replay

    if _keras_replay.is_keras_optimizer(reference):
        return _keras_replay.KerasReplay(reference, leaves)
    if callable(reference):
        from jaxopt_notes.testing import _torch_replay

        return _torch_replay.TorchReplay(reference, leaves)
    raise TypeError(
        "assert_equivalent: reference must be a gradient transformation (init and update), a Keras "
        "optimizer (keras.optimizers.Adam(...)) or a PyTorch optimizer factory "
        f"(lambda params: torch.optim.Adam(params, lr=1e-3)), got {type(reference).__name__} {reference!r:.80}"
    )
