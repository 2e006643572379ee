"""What :func:`~jaxopt_notes.fit` gives back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from jaxopt_notes.training._history import History


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """The outcome of a :func:`~jaxopt_notes.fit` run.

    Attributes:
      params: the trained parameters in the form they were passed: a pytree of the same
        structure, or, for a flax.nnx or equinox model passed as ``params``, a new model of
        the same class holding the trained values (and, for nnx, the updated BatchNorm
        statistics and RNG state). The object passed in is never modified.
      history: the run's :class:`~jaxopt_notes.History`.
      model_state: the model state after training when ``model_state=`` was passed; None
        otherwise (an nnx module holds its own, in ``params``).

    It also unpacks as the tuple fit returned before it had this class: ``params, history =
    fit(...)``, or ``params, model_state, history = fit(..., model_state=...)``, and indexes
    the same way (``fit(...)[0]`` is ``params``).

    Example:
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> X = np.ones((8, 1), np.float32)
      >>> loss = lambda w, x: jnp.mean((x * w - 2.0) ** 2)
      >>> result = jn.fit(loss, jnp.zeros(1), jn.sgd(0.2), X, batch_size=8, epochs=20, progress=False)
      >>> round(float(result.params[0]), 3), result.history.epochs
      (2.0, 20)
      >>> params, history = result
    """

    params: Any
    history: History
    model_state: Any = None

    def _as_tuple(self) -> tuple[Any, ...]:
        if self.model_state is None:
            return self.params, self.history
        return self.params, self.model_state, self.history

    def __iter__(self) -> Iterator[Any]:
        return iter(self._as_tuple())

    def __len__(self) -> int:
        return len(self._as_tuple())

    def __getitem__(self, index: int | slice) -> Any:
        return self._as_tuple()[index]
