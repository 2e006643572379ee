"""Hypothesis strategies for random pytrees and hyperparameters (needs ``hypothesis``).

Example:
  >>> from hypothesis import given
  >>> from jaxopt_notes.testing import strategies as st_jn
  >>> @given(st_jn.pytrees(), st_jn.decays())
  ... def test_something(params, decay): ...
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = ["arrays", "decays", "epsilons", "learning_rates", "pytrees", "shapes"]

FLOAT_DTYPES = ("float32",)


def shapes(*, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes from scalars ``()`` to ``max_dims`` axes, 0-size axes included."""
    return st.lists(st.integers(0, max_side), max_size=max_dims).map(tuple)


@st.composite
def arrays(draw: Any, dtypes: tuple[str, ...] = FLOAT_DTYPES, *, max_dims: int = 3, max_side: int = 4) -> np.ndarray:
    """A NumPy array of a drawn shape and dtype, with finite values in [-10, 10]."""
    shape = draw(shapes(max_dims=max_dims, max_side=max_side))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).uniform(-10, 10, size=shape)
    return values.astype(dtype)


def pytrees(
    dtypes: tuple[str, ...] = FLOAT_DTYPES,
    *,
    allow_none: bool = True,
    max_leaves: int = 6,
    max_dims: int = 3,
    max_side: int = 4,
) -> st.SearchStrategy[Any]:
    """Nested dicts, lists and tuples of arrays (scalars, 0-size and n-d), with ``None``
    leaves when ``allow_none``. Always at least one array leaf."""
    leaf = arrays(dtypes, max_dims=max_dims, max_side=max_side)
    leaves = st.one_of(leaf, st.none()) if allow_none else leaf
    nested = st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3),
            st.lists(children, min_size=1, max_size=3).map(tuple),
            st.dictionaries(st.sampled_from(["w", "b", "layer", "x", "y"]), children, min_size=1, max_size=3),
        ),
        max_leaves=max_leaves,
    )
    return st.tuples(leaf, nested).map(lambda pair: {"first": pair[0], "rest": pair[1]})


def decays(*, min_value: float = 0.0, max_value: float = 0.999) -> st.SearchStrategy[float]:
    """A decay rate (beta) in ``[min_value, max_value]``, edges included."""
    return st.one_of(st.just(min_value), st.just(max_value), st.floats(min_value, max_value))


def epsilons() -> st.SearchStrategy[float]:
    """An epsilon from 1e-12 to 1e-3 (log-uniform)."""
    return st.floats(-12, -3).map(lambda exponent: 10.0**exponent)


def learning_rates() -> st.SearchStrategy[float]:
    """A learning rate from 1e-5 to 1 (log-uniform)."""
    return st.floats(-5, 0).map(lambda exponent: 10.0**exponent)
