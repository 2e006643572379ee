"""Packed parameters: a many-leaf model as a handful of contiguous buffers.

An optimizer step is memory-bound: Adam reads parameters, gradients and both moments and
writes back parameters and moments, 28 bytes per float32 parameter. One large leaf runs at
that limit; a model of a thousand small leaves does not, because every leaf becomes its own
small kernel. :func:`pack` lays every leaf of one dtype end to end in one flat buffer, so the
whole step runs on one buffer per dtype::

    packed = pack(params)                       # once, before training
    state = optimizer.init(packed)              # moments are packed too
    loss_of_packed = lambda p, batch: loss_fn(unpack(p), batch)
    grads = jax.grad(loss_of_packed)(packed, batch)    # a Packed, written into one buffer
    updates, state = optimizer.update(grads, state, packed)
    packed = apply_updates(packed, updates)
    params = unpack(packed)                     # once, after training

Keep the parameters packed across steps and donate them (``jax.jit(..., donate_argnums=...)``);
pass the previous gradient as ``unpack(p, grads_into=previous)`` so the new one overwrites it
in place. Packing pays where per-leaf overhead dominates: always for the update itself, and on
GPU for the whole train step; on CPU only for small models (see :func:`~jaxopt_notes._pack_policy.should_pack`).

:class:`Packed` is a registered pytree whose leaves are the buffers and whose static data is
the layout (tree structure, shapes, dtypes, offsets), so ``jax.tree.map`` over a ``Packed``
maps over the buffers and every transform of this library works on it unchanged.

Element-wise transforms, and only those, give the same result packed and unpacked: ``ewa``,
``bias_correction``, ``trace``, ``scale``, ``scale_by_learning_rate``, ``scale_by_rms``,
``scale_by_adam`` and the optimizers built from them (``sgd``, ``momentum``, ``rmsprop``,
``adam``) are all element-wise (each output element depends only on the same element of the
inputs and on scalars such as the step count), and the tests check them bit for bit. A
transform that looks at a whole leaf (optax's ``clip_by_block_rms``, ``scale_by_trust_ratio``
(LARS, LAMB), ``adafactor`` ...) would silently treat the whole buffer as one leaf;
:func:`~jaxopt_notes._pack_policy.check_elementwise` detects that and refuses it. Global
reductions (``clip_by_global_norm``) are layout-independent but sum in another order, so they
agree only to rounding.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes._base import Params


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each leaf lives: static, hashable, compared by value (it is a pytree's aux data).

    Attributes:
      treedef: the structure of the unpacked pytree.
      dtypes: one dtype name per buffer, in order of first appearance among the leaves.
      slots: per leaf, ``(buffer index, offset, shape)``.
      sizes: the length of each buffer.
    """

    treedef: Any
    dtypes: tuple[str, ...]
    slots: tuple[tuple[int, int, tuple[int, ...]], ...]
    sizes: tuple[int, ...]

    def __call__(self, buffers: tuple[Any, ...]) -> Params:
        """The pytree laid out in ``buffers`` (plain slices; :func:`unpack` for gradients)."""
        return jax.tree.unflatten(self.treedef, _slices(tuple(buffers), self))


@jax.tree_util.register_pytree_node_class
class Packed(tuple):
    """One flat buffer per dtype, plus the static :class:`Layout` that unpacks them.

    The buffers are the pytree's leaves, so transforms, ``jax.grad``, ``jit`` donation and
    checkpoints see a handful of arrays instead of the model's many.

    Serialization: ``flax.serialization`` and orbax store the buffers and take the layout
    from the target they restore into, as for any other optimizer state, without this
    package importing flax. For that, a ``Packed`` presents itself to flax as a NamedTuple
    of ``buffers`` and ``unpacker`` (the layout wrapped in a ``jax.tree_util.Partial``, whose
    function flax keeps from the target); it is still compared by identity, like any object.
    """

    __slots__ = ()
    _fields = ("buffers", "unpacker")

    def __new__(cls, buffers: tuple[Any, ...], unpacker: Any = None, *, layout: Layout | None = None) -> Packed:
        restored = layout is None
        if restored:
            layout = getattr(unpacker, "func", unpacker)
        if not isinstance(layout, Layout):
            raise TypeError(f"Packed: layout must be a Layout made by pack, got {type(layout).__name__}")
        packed = super().__new__(cls, (tuple(buffers), jax.tree_util.Partial(layout)))
        if restored:
            _check_packed("Packed (restored)", packed)
        return packed

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self.buffers, self.unpacker)

    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    @property
    def buffers(self) -> tuple[Any, ...]:
        """The flat buffers, one per dtype."""
        return tuple.__getitem__(self, 0)

    @property
    def unpacker(self) -> jax.tree_util.Partial:
        """The layout as a ``Partial``: ``packed.unpacker(packed.buffers)`` is the pytree."""
        return tuple.__getitem__(self, 1)

    @property
    def layout(self) -> Layout:
        """Where each leaf lives in the buffers."""
        return cast(Layout, self.unpacker.func)

    def tree_flatten(self) -> tuple[tuple[Any, ...], Layout]:
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout: Layout, buffers: tuple[Any, ...]) -> Packed:
        return cls(buffers, layout=layout)

    def unpack(self) -> Params:
        """The original pytree; see :func:`unpack`."""
        return unpack(self)

    def __repr__(self) -> str:
        parts = ", ".join(f"{dtype}[{size}]" for dtype, size in zip(self.layout.dtypes, self.layout.sizes))
        return f"Packed({len(self.layout.slots)} leaves in {parts})"


def _is_split_across_devices(leaf: Any) -> bool:
    """A concrete JAX array whose sharding splits it over several devices (not one device, not
    fully replicated). A traced value's placement is not known here."""
    sharding = getattr(leaf, "sharding", None)
    if sharding is None or _checks.is_traced(leaf):
        return False
    return len(sharding.device_set) > 1 and not sharding.is_fully_replicated


def _check_unsharded(path: tuple, leaf: Any) -> None:
    if _is_split_across_devices(leaf):
        raise ValueError(
            f"pack: params{_checks.path_str(path)} is sharded over {len(leaf.sharding.device_set)} devices "
            f"({leaf.sharding}); one flat buffer cannot keep each leaf's sharding, so packing would silently "
            "replicate it. Train sharded parameters unpacked (see packable)"
        )


def packable(params: Params) -> bool:
    """Whether :func:`pack` lays ``params`` out faithfully: at least one leaf, every leaf an
    array or a number, and none split over several devices (a sharded leaf cannot keep its
    sharding inside one flat buffer, and :func:`pack` refuses it). ``False`` for a
    :class:`Packed`, which is packed already.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> jn.packable({"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}), jn.packable({"w": "not an array"})
      (True, False)
    """
    if isinstance(params, Packed):
        return False
    leaves = jax.tree.leaves(params)
    if not leaves:
        return False
    for leaf in leaves:
        if _is_split_across_devices(leaf):
            return False
        try:
            jnp.asarray(leaf)
        except TypeError:
            return False
    return True


def pack(params: Params) -> Packed:
    """Lays the leaves of ``params`` end to end, one flat buffer per dtype.

    Args:
      params: a pytree of arrays (any dtypes; each dtype gets its own buffer, so nothing is
        cast). Must hold at least one leaf, and none sharded over several devices: such a
        leaf is refused with its path, since one buffer cannot keep its sharding.

    Returns:
      a :class:`Packed` whose ``unpack()`` gives ``params`` back exactly.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> packed = jn.pack({"b": jnp.zeros(3), "w": jnp.ones((2, 3))})
      >>> packed.buffers[0].shape
      (9,)
    """
    if isinstance(params, Packed):
        raise TypeError("pack: params is already a Packed; call pack once, on the unpacked pytree")
    leaves, treedef = jax.tree.flatten(params)
    if not leaves:
        raise ValueError("pack: params must hold at least one array leaf, got an empty pytree")
    dtypes: list[str] = []
    sizes: list[int] = []
    pieces: list[list[Any]] = []
    slots = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        _check_unsharded(path, leaf)
        try:
            leaf = jnp.asarray(leaf)
        except TypeError:
            raise TypeError(
                f"pack: params{_checks.path_str(path)} must be an array or a number, got {type(leaf).__name__}"
            ) from None
        dtype = str(leaf.dtype)
        if dtype not in dtypes:
            dtypes.append(dtype)
            sizes.append(0)
            pieces.append([])
        index = dtypes.index(dtype)
        slots.append((index, sizes[index], tuple(leaf.shape)))
        sizes[index] += leaf.size
        pieces[index].append(leaf.reshape(-1))
    buffers = tuple(jnp.concatenate(group) if len(group) > 1 else group[0] for group in pieces)
    return Packed(buffers, layout=Layout(treedef, tuple(dtypes), tuple(slots), tuple(sizes)))


def _check_packed(where: str, packed: Any) -> None:
    if not isinstance(packed, Packed):
        raise TypeError(f"{where}: expected a Packed made by jaxopt_notes.pack, got {type(packed).__name__}")
    for index, (buffer, size) in enumerate(zip(packed.buffers, packed.layout.sizes)):
        if np.shape(buffer) != (size,):
            raise ValueError(
                f"{where}: buffer {index} ({packed.layout.dtypes[index]}) must have shape ({size},), "
                f"got {np.shape(buffer)}"
            )


def _slices(buffers: tuple[Any, ...], layout: Layout) -> list[Any]:
    return [
        jax.lax.slice(buffers[index], (offset,), (offset + int(np.prod(shape, dtype=int)),)).reshape(shape)
        for index, offset, shape in layout.slots
    ]


def _scatter(layout: Layout, into: tuple[Any, ...], cotangents: list[Any]) -> tuple[Any, ...]:
    """Writes each leaf's cotangent into its slot. The slots tile every buffer, so nothing of
    ``into`` survives, and XLA updates ``into`` in place (a chain of dynamic-update-slices),
    each leaf's gradient kernel writing straight into the buffer."""
    buffers = list(into)
    for (index, offset, _), cotangent in zip(layout.slots, cotangents):
        update = cotangent.reshape(-1).astype(layout.dtypes[index])
        buffers[index] = jax.lax.dynamic_update_slice(buffers[index], update, (offset,))
    return tuple(buffers)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _unpack_leaves(buffers: tuple[Any, ...], into: tuple[Any, ...] | None, layout: Layout) -> list[Any]:
    del into
    return _slices(buffers, layout)


def _unpack_forward(buffers: tuple[Any, ...], into: tuple[Any, ...] | None, layout: Layout) -> tuple[list[Any], Any]:
    return _slices(buffers, layout), into


def _unpack_backward(layout: Layout, into: tuple[Any, ...] | None, cotangents: list[Any]) -> tuple[Any, Any]:
    if into is None:
        fresh = tuple(jnp.zeros(size, dtype) for size, dtype in zip(layout.sizes, layout.dtypes))
        return _scatter(layout, fresh, cotangents), None
    return _scatter(layout, into, cotangents), None


_unpack_leaves.defvjp(_unpack_forward, _unpack_backward)


def unpack(packed: Packed, *, grads_into: Packed | None = None) -> Params:
    """The pytree ``packed`` was made from: each leaf is a static slice of its buffer, reshaped.

    Differentiating through ``unpack`` gives a :class:`Packed` gradient, built by writing each
    leaf's cotangent into its slot of one buffer per dtype (never by summing a zero-padded
    buffer per leaf, which is what differentiating the slices naively gives).

    Args:
      packed: made by :func:`pack`.
      grads_into: a :class:`Packed` of the same layout (e.g. the previous step's gradient)
        whose buffers the gradient overwrites in place, when it is donated to ``jit``. On CPU
        this matters: a fresh gradient buffer of tens of MiB costs more in page faults than
        the whole optimizer step; see :func:`should_pack`. Its values are never read.

    Example:
      >>> import jax, jax.numpy as jnp, jaxopt_notes as jn
      >>> packed = jn.pack({"w": jnp.ones((2, 2)), "b": jnp.zeros(2)})
      >>> grads = jax.grad(lambda p: jnp.sum(jn.unpack(p)["w"] ** 2))(packed)
      >>> jn.unpack(grads)["w"]
      Array([[2., 2.],
             [2., 2.]], dtype=float32)
    """
    _check_packed("unpack", packed)
    into = None
    if grads_into is not None:
        _check_packed("unpack: grads_into", grads_into)
        if grads_into.layout != packed.layout:
            raise ValueError("unpack: grads_into must have the layout of packed (made by pack from the same pytree)")
        into = grads_into.buffers
    return jax.tree.unflatten(packed.layout.treedef, _unpack_leaves(packed.buffers, into, packed.layout))
