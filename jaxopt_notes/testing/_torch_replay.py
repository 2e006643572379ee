"""A PyTorch optimizer stepped on given gradients (see :mod:`jaxopt_notes.testing._replay`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class TorchReplay:
    """``factory(tensors)``'s optimizer over torch tensors holding copies of ``leaves``; each
    step sets every tensor's ``.grad`` and calls ``optimizer.step()``."""

    def __init__(self, factory: Callable[[list[Any]], Any], leaves: list[np.ndarray]) -> None:
        import torch

        self.tensors = [torch.tensor(np.array(leaf), requires_grad=True) for leaf in leaves]
        self.optimizer = factory(self.tensors)
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise TypeError(
                "assert_equivalent: a PyTorch reference must be a factory params -> torch.optim.Optimizer "
                f"(lambda params: torch.optim.Adam(params, lr=1e-3)); it returned {type(self.optimizer).__name__}"
            )

    def step(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        for tensor, grad in zip(self.tensors, grads):
            tensor.grad = torch.tensor(np.array(grad), dtype=tensor.dtype)
        self.optimizer.step()
        return [tensor.detach().numpy().copy() for tensor in self.tensors]
