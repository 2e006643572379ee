"""The replay check's PyTorch side where torch is absent (CI): a callable reference is taken for
a torch optimizer factory, and the error says so and names the two ways out. The replay itself
is proven against real torch in test_torch_real.py."""

from __future__ import annotations

import sys

import jax.numpy as jnp
import pytest

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent


def test_a_callable_reference_without_torch_says_what_it_was_taken_for(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"taken for a PyTorch optimizer factory.*not installed.*not jn.adam"):
        assert_equivalent(jn.torch.SGD(0.1), jn.torch.SGD, params={"w": jnp.ones(2)})
