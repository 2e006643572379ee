"""One function over the leaves of several pytrees, giving several pytrees back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax


def per_leaf(function: Callable[..., tuple], outputs: int, updates: Any, *trees: Any) -> tuple[Any, ...]:
    """``function(update, *leaves)`` for every leaf of ``updates`` and the matching leaves of
    ``trees`` (a ``None`` tree gives ``None`` leaves), its ``outputs`` results regrouped into
    that many pytrees shaped like ``updates``."""
    leaves, treedef = jax.tree.flatten(updates)
    treedef = cast(Any, treedef)  # jaxlib's stubs lack flatten_up_to
    columns = [treedef.flatten_up_to(tree) if tree is not None else [None] * len(leaves) for tree in trees]
    rows = [function(*row) for row in zip(leaves, *columns)]
    return tuple(jax.tree.unflatten(treedef, [row[index] for row in rows]) for index in range(outputs))
