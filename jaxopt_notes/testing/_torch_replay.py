"""A PyTorch optimizer stepped on given gradients (see :mod:`jaxopt_notes.testing._replay`).

The factory receives torch tensors holding copies of our parameter leaves and returns the
optimizer built on them, or a pair ``(optimizer, scheduler)`` whose scheduler is stepped after
every optimizer step (``scheduler.step()`` per step, which a schedule of
:mod:`jaxopt_notes.torch` built without ``steps_per_epoch`` reproduces).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_FACTORY_FORM = "lambda params: torch.optim.Adam(params, lr=1e-3)"


def _import_torch(factory: Any) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"assert_equivalent: the reference {factory!r:.80} is callable, so it was taken for a PyTorch optimizer "
            f"factory ({_FACTORY_FORM}), but torch is not installed. Install torch, or pass a gradient "
            "transformation (jn.adam(1e-3), not jn.adam)"
        ) from None
    return torch


def _to_torch(torch: Any, leaf: np.ndarray) -> Any:
    """A torch tensor holding a copy of ``leaf``, in the same dtype (bfloat16 through float32,
    which NumPy cannot hand to torch directly)."""
    array = np.array(leaf)
    if array.dtype.name == "bfloat16":
        return torch.tensor(array.astype(np.float32)).to(torch.bfloat16)
    return torch.tensor(array)


def _to_numpy(torch: Any, tensor: Any, like: np.dtype) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.float().numpy().astype(like)
    return tensor.numpy().copy()


class TorchReplay:
    """``factory(tensors)``'s optimizer over torch tensors holding copies of ``leaves``; each
    step sets every tensor's ``.grad``, calls ``optimizer.step()`` and then, when the factory
    also returned a scheduler, ``scheduler.step()``."""

    optimizer: Any
    scheduler: Any

    def __init__(self, factory: Callable[[list[Any]], Any], leaves: list[np.ndarray]) -> None:
        torch = _import_torch(factory)
        self.dtypes = [np.asarray(leaf).dtype for leaf in leaves]
        # Leaves that require no grad: torch then steps them in place in every mode, differentiable=True too.
        self.tensors = [_to_torch(torch, leaf) for leaf in leaves]
        built = factory(self.tensors)
        self.optimizer, self.scheduler = built if isinstance(built, tuple) and len(built) == 2 else (built, None)
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise TypeError(
                "assert_equivalent: a PyTorch reference must be a factory params -> torch.optim.Optimizer "
                f"({_FACTORY_FORM}), or params -> (optimizer, scheduler); it returned {type(built).__name__}"
            )
        if self.scheduler is not None and not callable(getattr(self.scheduler, "step", None)):
            raise TypeError(
                "assert_equivalent: the second item a PyTorch factory returns must be an LR scheduler, got "
                f"{type(self.scheduler).__name__}"
            )

    def step(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        for tensor, grad in zip(self.tensors, grads):
            tensor.grad = _to_torch(torch, grad).to(tensor.dtype)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return [_to_numpy(torch, tensor, dtype) for tensor, dtype in zip(self.tensors, self.dtypes)]
