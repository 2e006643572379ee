"""Values of the caller's dtype from the raw memory units :mod:`._rows` gathers, inside compiled code.

``fit`` reads the caller's NumPy memory as a flat array of *units*: unsigned words of the
largest size that divides every element's size and address (``uint32`` for aligned float32,
``uint8`` for bytes or misaligned data; ``uint64`` only under ``jax_enable_x64``). A gathered
minibatch is then ``(..., n)`` units per element, and :func:`decode` turns it into the values
JAX would have made of the caller's array, one minibatch at a time:

- a dtype JAX holds (``float32``, ``float16``, ``bfloat16``, ``int32``, ``uint8``, ...): the
  units' bits reinterpreted, unchanged;
- a 64-bit dtype JAX narrows without ``jax_enable_x64``: ``int64``/``uint64`` keep their low
  32 bits (NumPy's ``astype``, which ``jax.device_put`` applies); ``float64`` is rounded to
  the nearest ``float32``, ties to even, overflowing to infinity, through the subnormals, NaN
  kept quiet with the top of its payload (what the hardware's conversion does);
  ``complex128`` is two such floats;
- a dtype of the other byte order (``>f4`` on a little-endian host), which JAX refuses: each
  number's bytes put in native order, then as above.

So a float64 data set is never copied whole as float32: each minibatch is converted as it is
gathered.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

DECODED_KINDS = frozenset("biufc")
"""NumPy dtype kinds whose values :func:`decode` makes (bfloat16, kind ``V``, is let in by name)."""


def held_dtype(dtype: np.dtype) -> np.dtype | None:
    """The dtype JAX makes of ``dtype`` (``float64`` -> ``float32`` without x64, ``>f4`` ->
    ``float32``), or None when :func:`decode` cannot make it from raw units (object, string,
    sub-byte dtypes)."""
    dtype = dtype.newbyteorder("=")
    if dtype.kind not in DECODED_KINDS and dtype.name != "bfloat16":
        return None
    if dtype.itemsize not in ((8, 16) if dtype.kind == "c" else (1, 2, 4, 8)):
        return None
    try:
        return np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    except TypeError:
        return None


def unit_dtype(size: int) -> np.dtype:
    """The unsigned word raw memory is read as: ``size`` bytes (a power of two), at most 8
    under ``jax_enable_x64`` and 4 without it. Reading floats as integers keeps every bit:
    XLA may compute on 16-bit floats in float32, which changes NaN payloads."""
    wide = np.dtype(jax.dtypes.canonicalize_dtype(np.uint64)) == np.uint64
    return np.dtype(f"u{min(size, 8 if wide else 4)}")


def decode(units: jax.Array, source: np.dtype) -> jax.Array:
    """``(..., n)`` units holding ``source`` values (n units each) as ``(...)`` values of the
    dtype JAX makes of ``source`` (see the module docstring)."""
    if not source.isnative:  # read as single bytes: put each number's bytes in native order
        scalar = source.itemsize // (2 if source.kind == "c" else 1)
        parts = units.reshape(*units.shape[:-1], -1, scalar)[..., ::-1]
        return decode(parts.reshape(units.shape), source.newbyteorder("="))
    target = np.dtype(jax.dtypes.canonicalize_dtype(source))
    if source.kind == "c":
        half = np.dtype(f"f{source.itemsize // 2}")
        parts = units.reshape(*units.shape[:-1], 2, units.shape[-1] // 2)
        return lax.complex(decode(parts[..., 0, :], half), decode(parts[..., 1, :], half))
    if source.kind == "b":
        return units[..., 0] != 0
    if target.itemsize < source.itemsize:  # a 64-bit dtype JAX narrows to 32 bits
        low, high = _words(units)
        if source.kind == "f":
            return lax.bitcast_convert_type(_float64_bits_to_float32_bits(low, high), jnp.float32)
        return lax.bitcast_convert_type(low, target)
    if units.shape[-1] == 1:
        return lax.bitcast_convert_type(units[..., 0], target)
    return lax.bitcast_convert_type(units, target)


def _words(units: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The low and high uint32 words of 8-byte values held as ``(..., n)`` units (little-endian)."""
    if units.dtype != jnp.uint32:
        per_word = 4 // units.dtype.itemsize
        units = lax.bitcast_convert_type(units.reshape(*units.shape[:-1], 2, per_word), jnp.uint32)
    return units[..., 0], units[..., 1]


def _float64_bits_to_float32_bits(low: jax.Array, high: jax.Array) -> jax.Array:
    """The bits of the float32 nearest the float64 whose bits are ``high:low`` (ties to even)."""
    u32 = jnp.uint32
    sign = high & u32(0x80000000)
    exponent = (high >> 20) & u32(0x7FF)  # biased by 1023; float32's bias is 127
    top = ((high & u32(0xFFFFF)) << 3) | (low >> 29)  # the 23 leading bits of the 52-bit fraction
    dropped = low & u32(0x1FFFFFFF)  # the 29 bits below them
    half = u32(0x10000000)
    up = (dropped > half) | ((dropped == half) & ((top & 1) == 1))
    # A rounding carry runs into the exponent, and from the largest float32 into infinity.
    normal = (((exponent - u32(896)) << 23) | top) + up.astype(u32)
    special = u32(0x7F800000) | jnp.where((top | dropped) != 0, u32(0x400000) | top, u32(0))  # inf, quiet NaN
    bits = jnp.where(exponent >= 1151, u32(0x7F800000), normal)  # beyond float32's range: infinity
    bits = jnp.where(exponent == 0x7FF, special, bits)
    bits = jnp.where(exponent <= 896, _subnormal_bits(exponent, high, low), bits)
    return sign | bits


def _subnormal_bits(exponent: jax.Array, high: jax.Array, low: jax.Array) -> jax.Array:
    """Float32 bits (no sign) of a float64 below float32's smallest normal, 2**-126: the
    53-bit significand ``F = 2**52 + fraction`` shifted right by ``926 - exponent`` (>= 30)
    into the subnormal's 23 bits, rounded to nearest, ties to even. Rounding up may give
    2**23, the smallest normal's bits, as it should."""
    u32 = jnp.uint32
    significand = u32(0x100000) | (high & u32(0xFFFFF))  # F's 21 bits above ``low``
    shift = jnp.minimum(u32(926) - jnp.minimum(exponent, u32(896)), u32(55))
    # Shifts of 32 bits or more leave ``low`` entirely in the remainder.
    within = shift < 32
    quotient = jnp.where(
        within,
        (significand << (u32(32) - shift)) | (low >> jnp.minimum(shift, u32(31))),
        significand >> jnp.where(within, u32(0), shift - u32(32)),
    )
    # remainder (rem_high:rem_low) against one half (half_high:half_low) of the last place kept
    low_mask = jnp.where(within, (u32(1) << jnp.minimum(shift, u32(31))) - u32(1), u32(0xFFFFFFFF))
    high_bits = jnp.where(within, u32(0), shift - u32(32))
    rem_low = low & low_mask
    rem_high = jnp.where(high_bits >= 32, significand, significand & ((u32(1) << high_bits) - u32(1)))
    half_low = jnp.where(shift <= 32, u32(1) << (shift - u32(1)), u32(0))
    half_high = jnp.where(shift > 32, u32(1) << jnp.minimum(shift - u32(33), u32(31)), u32(0))
    above = (rem_high > half_high) | ((rem_high == half_high) & (rem_low > half_low))
    tie = (rem_high == half_high) & (rem_low == half_low)
    up = above | (tie & ((quotient & 1) == 1))
    bits = quotient + up.astype(u32)
    return jnp.where(exponent == 0, u32(0), bits)  # float64 zeros and subnormals: far below float32's
