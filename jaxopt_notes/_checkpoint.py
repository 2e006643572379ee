"""Checkpoints: one ``.npz`` file per save, written atomically, loaded without pickle.

A checkpoint holds the leaves of any pytree (parameters, optimizer states, PRNG keys,
counters) plus a JSON manifest: format version, each leaf's tree path, shape, dtype and the
SHA-256 of its bytes, and the caller's metadata. The tree's *structure* is not stored: it is
taken from the ``like`` tree given to :func:`load_checkpoint`, so NamedTuple states come back
as the same types, and a file written for one structure is refused by another instead of
being loaded into the wrong places.

Safety, from the file's side:

- Writing goes to a temporary file in the same directory, which is flushed, ``fsync``-ed and
  then renamed over the target with ``os.replace`` (atomic on POSIX and Windows). A process
  killed mid-save leaves the previous checkpoint intact; at worst a stray ``.tmp`` file.
- Loading uses ``numpy.load(..., allow_pickle=False)`` and refuses object arrays on save, so a
  file can never make the loader execute code. Every leaf is checked against the manifest
  (shape, dtype, checksum) and against ``like``; a truncated, tampered or mismatched file
  raises :class:`CheckpointError` naming the file and what is wrong.

Example:
  >>> import jax.numpy as jnp, jaxopt_notes as jn
  >>> params = {"w": jnp.ones(3)}
  >>> opt = jn.adam(1e-3)
  >>> state = opt.init(params)
  >>> jn.save_checkpoint("/tmp/ckpt_000001.npz", (params, state), metadata={"epoch": 1})
  >>> (params, state), meta = jn.load_checkpoint("/tmp/ckpt_000001.npz", like=(params, state))
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import _checks

FORMAT = "jaxopt_notes.checkpoint"
VERSION = 1
_MANIFEST_KEY = "__manifest__"
# NumPy's own numeric kinds round-trip through .npy as they are; anything else (bfloat16 and
# the other ml_dtypes) is stored as its raw bits in an unsigned integer of the same width.
_NATIVE_KINDS = frozenset("biufc")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, truncated, tampered with, or does not match ``like``."""


def _leaf_name(index: int) -> str:
    return f"leaf_{index:05d}"


def _is_key_array(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _to_stored(path: str, leaf: Any) -> tuple[np.ndarray, dict]:
    """The array written for ``leaf`` and its manifest entry (without the checksum)."""
    entry: dict[str, Any] = {"path": path}
    if _is_key_array(leaf):
        entry["key_impl"] = str(jax.random.key_impl(leaf))
        leaf = jax.random.key_data(leaf)
    array = np.asarray(leaf)
    extended = array.dtype.kind == "V" and not issubclass(array.dtype.type, np.void)
    if array.dtype.kind not in _NATIVE_KINDS and not extended:
        raise TypeError(
            f"save_checkpoint: leaf {path} has dtype {array.dtype}; only numeric arrays can be saved "
            "(object, string and structured arrays would need pickle or lose their meaning)"
        )
    entry["shape"] = list(array.shape)
    entry["dtype"] = array.dtype.name
    return np.require(array, requirements="C").view(_stored_dtype(array.dtype)), entry


def _stored_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind in _NATIVE_KINDS else np.dtype(f"u{dtype.itemsize}")


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_checkpoint(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> None:
    """Writes ``tree``'s leaves and ``metadata`` to ``path`` as one ``.npz`` file, atomically.

    The file is written under a temporary name in the same directory, flushed and fsync-ed,
    then renamed over ``path``: readers (and a restarted run) see either the old file or the
    complete new one, never a partial write.

    Args:
      path: the file to write, exactly as given (no suffix is added); its directory must exist.
      tree: any pytree of numeric arrays or scalars (JAX or NumPy, bfloat16 and typed PRNG keys
        included). ``None`` leaves are part of the structure and take no space.
      metadata: JSON-serialisable data returned by :func:`load_checkpoint` (epoch, seed, ...).

    Raises:
      TypeError: a leaf is not numeric (object or string arrays), or ``metadata`` is not JSON.
    """
    path = Path(path)
    try:
        metadata_json = json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"save_checkpoint: metadata must be JSON-serialisable, got {metadata!r}: {error}") from None
    arrays: dict[str, Any] = {}
    entries = []
    for index, (key_path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(tree)[0]):
        stored, entry = _to_stored(_checks.path_str(key_path), leaf)
        entry["name"] = _leaf_name(index)
        entry["sha256"] = _digest(stored)
        arrays[entry["name"]] = stored
        entries.append(entry)
    manifest = {"format": FORMAT, "version": VERSION, "leaves": entries, "metadata": metadata_json}
    arrays[_MANIFEST_KEY] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)

    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable; not possible (nor needed) on every platform."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _check_entry(entry: Any) -> None:
    """Raises ``ValueError`` unless ``entry`` is a well-formed manifest leaf entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"manifest entry {entry!r} is not an object")
    for key in ("name", "path", "dtype", "sha256"):
        if not isinstance(entry.get(key), str):
            raise ValueError(f"manifest entry {entry!r}: {key!r} missing or not a string")
    shape = entry.get("shape")
    if not (isinstance(shape, list) and all(isinstance(side, int) and side >= 0 for side in shape)):
        raise ValueError(f"manifest entry {entry['path']}: bad shape {shape!r}")
    jnp.dtype(entry["dtype"])


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and the verified stored arrays of the checkpoint at ``path``."""

    def fail(problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: {problem}")

    if not path.is_file():
        raise fail("no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if _MANIFEST_KEY not in names:
                raise fail("no manifest; not a file written by save_checkpoint")
            manifest = json.loads(archive[_MANIFEST_KEY].tobytes().decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise fail(f"manifest is not a {FORMAT} manifest")
            if manifest.get("version") != VERSION:
                raise fail(f"format version {manifest.get('version')!r}, this library reads version {VERSION}")
            entries = manifest["leaves"]
            for entry in entries:
                try:
                    _check_entry(entry)
                except (TypeError, ValueError) as error:
                    raise fail(f"invalid manifest, the file was altered: {error}") from None
            expected_names = {entry["name"] for entry in entries} | {_MANIFEST_KEY}
            if names != expected_names:
                raise fail(f"unexpected entries {sorted(names ^ expected_names)}; the file was altered")
            stored = {entry["name"]: archive[entry["name"]] for entry in entries}
    except CheckpointError:
        raise
    except Exception as error:  # zip, npy-header, pickle-refusal, JSON and key errors all mean the same thing
        raise fail(f"unreadable or truncated ({type(error).__name__}: {error})") from error
    for entry in entries:
        array = stored[entry["name"]]
        if list(array.shape) != entry["shape"]:
            raise fail(f"leaf {entry['path']}: stored shape {array.shape} differs from the manifest's {entry['shape']}")
        if array.dtype != _stored_dtype(jnp.dtype(entry["dtype"])):
            raise fail(f"leaf {entry['path']}: stored as {array.dtype}, cannot hold the manifest's {entry['dtype']}")
        if _digest(array) != entry["sha256"]:
            raise fail(f"leaf {entry['path']}: checksum mismatch, the file is corrupted or was tampered with")
    return manifest, stored


def _restore(stored: np.ndarray, entry: dict, like_leaf: Any) -> Any:
    array = stored.view(jnp.dtype(entry["dtype"])) if stored.dtype.name != entry["dtype"] else stored
    if "key_impl" in entry:
        return jax.random.wrap_key_data(jnp.asarray(array), impl=entry["key_impl"])
    if isinstance(like_leaf, jax.Array):
        # An uncommitted leaf must come back uncommitted, or the next jitted step recompiles.
        return jax.device_put(array, like_leaf.sharding if like_leaf.committed else None)
    if isinstance(like_leaf, jax.ShapeDtypeStruct):
        return jax.device_put(array, like_leaf.sharding) if like_leaf.sharding is not None else jnp.asarray(array)
    if isinstance(like_leaf, bool | int | float | complex):
        return type(like_leaf)(array.item())
    if isinstance(like_leaf, np.generic):
        return array[()]
    return array


def _spec(leaf: Any) -> tuple[tuple[int, ...], str, str | None]:
    """Shape, stored dtype name and PRNG implementation (for typed keys) of a ``like`` leaf."""
    if _is_key_array(leaf):
        data_shape = jax.eval_shape(jax.random.key_data, leaf)
        return tuple(data_shape.shape), data_shape.dtype.name, str(jax.random.key_impl(leaf))
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), np.dtype(leaf.dtype).name, None
    array = np.asarray(leaf)
    return array.shape, array.dtype.name, None


def _describe(shape: tuple, dtype: str, key_impl: str | None) -> str:
    return f"{shape} {dtype}" + (f" key<{key_impl}>" if key_impl else "")


def load_checkpoint(path: str | os.PathLike, like: Any) -> tuple[Any, dict | None]:
    """Reads the checkpoint at ``path`` into the structure of ``like``.

    Args:
      path: a file written by :func:`save_checkpoint`.
      like: a pytree with the structure, shapes and dtypes to restore (the current params and
        optimizer state, or ``jax.eval_shape`` of them). JAX leaves come back as JAX arrays on
        ``like``'s sharding, NumPy leaves as NumPy arrays, Python scalars as Python scalars.
        JAX's weak-type flag (``jnp.array(0.5)``) is not restored: values are bit-identical, but
        a jitted function sees a strongly typed leaf and may compile once more.

    Returns:
      ``(tree, metadata)``, the values bit-identical to those saved.

    Raises:
      CheckpointError: missing, truncated, corrupted or tampered file, or a file whose leaves
        do not match ``like``; the message names the file and the first path that differs.
    """
    path = Path(path)
    manifest, stored = _read(path)
    like_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    entries = manifest["leaves"]
    like_paths = [_checks.path_str(key_path) for key_path, _ in like_leaves]
    file_paths = [entry["path"] for entry in entries]
    missing = [where for where in like_paths if where not in file_paths]
    extra = [where for where in file_paths if where not in like_paths]
    if missing or extra or like_paths != file_paths:
        problem = (
            f"`like` has a leaf at {missing[0]} that the file lacks"
            if missing
            else f"the file has a leaf at {extra[0]} that `like` lacks"
            if extra
            else "the leaves are in a different order"
        )
        raise CheckpointError(
            f"checkpoint {path}: {problem}; it holds {len(entries)} leaves, `like` has {len(like_leaves)}, "
            "so it was saved from a different structure"
        )
    for where, (_, like_leaf), entry in zip(like_paths, like_leaves, entries, strict=True):
        expected = _spec(like_leaf)
        got = (tuple(entry["shape"]), entry["dtype"], entry.get("key_impl"))
        if expected != got:
            raise CheckpointError(
                f"checkpoint {path}: {where}: `like` expects {_describe(*expected)}, the file has {_describe(*got)}"
            )
    leaves = [
        _restore(stored[entry["name"]], entry, like_leaf)
        for (_, like_leaf), entry in zip(like_leaves, entries, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves), manifest.get("metadata")


def verify_checkpoint(path: str | os.PathLike) -> dict | None:
    """Checks that ``path`` is a complete, untampered checkpoint; returns its metadata.

    Raises:
      CheckpointError: as :func:`load_checkpoint`, for problems found without a ``like`` tree.
    """
    return _read(Path(path))[0].get("metadata")


def latest_checkpoint(directory: str | os.PathLike, *, pattern: str = "*.npz") -> Path | None:
    """The newest file in ``directory`` matching ``pattern`` that verifies cleanly, or ``None``.

    Files are ordered by modification time, then by name; a corrupt or truncated file is
    skipped with a warning, so a run resumes from the previous good checkpoint.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = [(entry.stat().st_mtime_ns, entry.name, entry) for entry in directory.glob(pattern) if entry.is_file()]
    for _, _, candidate in sorted(candidates, reverse=True):
        try:
            _read(candidate)
        except CheckpointError as error:
            warnings.warn(f"skipping corrupt checkpoint: {error}", RuntimeWarning, stacklevel=2)
            continue
        return candidate
    return None
