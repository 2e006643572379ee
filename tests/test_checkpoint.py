"""Checkpoints: exact round trips, exact resumption, and every corruption refused clearly."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint

PARAMS = {"layer1": {"w": jnp.arange(12.0).reshape(3, 4) / 7, "b": jnp.zeros(4)}, "scalar": jnp.array(0.5, jnp.float32)}

OPTIMIZERS = {
    "sgd": lambda: jn.sgd(0.1),
    "sgd_schedule": lambda: jn.sgd(lambda step: 0.1 / (1.0 + step)),
    "momentum": lambda: jn.momentum(0.1, 0.9),
    "nesterov": lambda: jn.momentum(0.1, 0.9, dampened=False, nesterov=True),
    "rmsprop": lambda: jn.rmsprop(0.01),
    "adam": lambda: jn.adam(0.01),
    "adam_f32_moments": lambda: jn.adam(0.01, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "ewa_debias": lambda: jn.ewa(0.9, debias=True),
    "bias_correction": lambda: jn.chain(jn.trace(0.5), jn.bias_correction(0.5), jn.scale(-0.1)),
    "skip_nonfinite_adam": lambda: jn.skip_nonfinite(jn.adam(0.01), max_consecutive=2),
    "optax_adamw": lambda: optax.adamw(0.01),
}


def bits(tree):
    """Leaves as (type, dtype, shape, raw bytes): equal bits, not merely equal values."""
    return [
        (type(leaf), np.asarray(leaf).dtype, np.shape(leaf), np.asarray(leaf).tobytes())
        for leaf in jax.tree.leaves(tree)
    ]


def assert_bit_identical(got, expected):
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    assert bits(got) == bits(expected)


def trainer(optimizer):
    """``train(params, state, steps, start)``: ``steps`` compiled steps whose gradients depend
    on the step number, so a run split in two sees exactly the gradients of one done in one go."""

    @jax.jit
    def step_fn(params, state, scale):
        grads = jax.tree.map(lambda leaf: jnp.sin(leaf * scale + 1.0), params)
        updates, state = optimizer.update(grads, state, params)
        return jn.apply_updates(params, updates), state

    def train(params, state, steps, start=0):
        for step in range(start, start + steps):
            params, state = step_fn(params, state, jnp.float32(step + 1))
        return params, state

    train.step_fn = step_fn
    return train


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_state_round_trips_bit_identically(tmp_path, name):
    optimizer = OPTIMIZERS[name]()
    params, state = trainer(optimizer)(PARAMS, optimizer.init(PARAMS), 3)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"params": params, "opt_state": state}, metadata={"name": name, "step": 3})

    like = {"params": PARAMS, "opt_state": optimizer.init(PARAMS)}
    restored, metadata = load_checkpoint(path, like)

    assert metadata == {"name": name, "step": 3}
    assert_bit_identical(restored, {"params": params, "opt_state": state})
    # NamedTuple state types come back as themselves, not as tuples.
    assert jax.tree.structure(restored["opt_state"]) == jax.tree.structure(state)
    # And the in-memory route, flatten/unflatten, is exact as well.
    leaves, treedef = jax.tree.flatten(state)
    assert_bit_identical(jax.tree.unflatten(treedef, leaves), state)


@pytest.mark.parametrize("name", ["adam", "momentum", "skip_nonfinite_adam"])
def test_training_resumed_from_a_checkpoint_continues_bit_identically(tmp_path, name):
    optimizer = OPTIMIZERS[name]()
    train = trainer(optimizer)
    straight = train(PARAMS, optimizer.init(PARAMS), 8)

    halfway = train(PARAMS, optimizer.init(PARAMS), 4)
    save_checkpoint(tmp_path / "half.npz", halfway)
    del halfway
    restored, _ = load_checkpoint(tmp_path / "half.npz", like=(PARAMS, optimizer.init(PARAMS)))
    resumed = train(*restored, 4, start=4)

    assert_bit_identical(resumed, straight)
    # The restored leaves have the types and placement of fresh ones: no second compile.
    assert train.step_fn._cache_size() == 1


def test_unusual_leaves_round_trip(tmp_path):
    tree = {
        "bf16": jnp.linspace(-3, 3, 7, dtype=jnp.bfloat16),
        "f16": jnp.array([65504.0, -0.0, np.inf, np.nan], jnp.float16),
        "empty": jnp.zeros((0, 3)),
        "typed_key": jax.random.key(42),
        "raw_key": jax.random.PRNGKey(7),
        "numpy": np.arange(5, dtype=np.int64),
        "flag": np.bool_(True),
        "none": None,
        "python": (3, 2.5),
    }
    save_checkpoint(tmp_path / "odd.npz", tree)
    restored, metadata = load_checkpoint(tmp_path / "odd.npz", tree)
    assert metadata is None
    assert jax.random.key_data(restored["typed_key"]).tolist() == jax.random.key_data(tree["typed_key"]).tolist()
    assert jax.random.key_impl(restored["typed_key"]) == jax.random.key_impl(tree["typed_key"])
    assert restored["python"] == (3, 2.5) and type(restored["python"][0]) is int
    assert isinstance(restored["numpy"], np.ndarray)
    del tree["typed_key"], restored["typed_key"]
    assert_bit_identical(restored, tree)


def test_like_may_be_abstract_shapes(tmp_path):
    optimizer = jn.adam(0.1)
    params, state = trainer(optimizer)(PARAMS, optimizer.init(PARAMS), 2)
    save_checkpoint(tmp_path / "c.npz", (params, state))
    like = jax.eval_shape(lambda: (PARAMS, optimizer.init(PARAMS)))
    restored, _ = load_checkpoint(tmp_path / "c.npz", like)
    assert_bit_identical(restored, (params, state))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    tree = {"layer3": {"w": jnp.ones((64, 32)), "b": jnp.zeros(32)}}
    save_checkpoint(path, tree, metadata={"epoch": 3})
    return path, tree


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_file_is_refused_naming_the_file(saved, keep):
    path, tree = saved
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"good\.npz.*(unreadable or truncated|no manifest)"):
        load_checkpoint(path, tree)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.npz", {})


def test_every_flipped_byte_is_refused_or_harmless(saved):
    """Flip one byte at a time across the whole file: each load either raises CheckpointError
    or returns exactly the saved values (a flip in a zip timestamp is harmless); never a wrong
    value and never another exception."""
    path, tree = saved
    original = path.read_bytes()
    refused = 0
    positions = (
        list(range(0, 700)) + list(range(700, len(original), 97)) + list(range(len(original) - 400, len(original)))
    )
    for position in positions:
        corrupted = bytearray(original)
        corrupted[position] ^= 0x5A
        path.write_bytes(bytes(corrupted))
        try:
            restored, metadata = load_checkpoint(path, tree)
        except CheckpointError as error:
            assert "good.npz" in str(error)
            refused += 1
            continue
        assert_bit_identical(restored, tree)
        assert metadata == {"epoch": 3}
    assert refused > len(positions) // 2


def rewrite_member(path: Path, name: str, array: np.ndarray, *, allow_pickle: bool = False) -> None:
    """Replaces one member of an .npz with a valid .npy of ``array`` (correct zip CRC): the
    kind of change only a deliberate tamperer makes."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    members[name + ".npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def test_tampered_leaf_is_caught_by_its_checksum(saved):
    path, tree = saved
    rewrite_member(path, "leaf_00001", np.full((64, 32), 2.0, np.float32))
    with pytest.raises(CheckpointError, match=r"good\.npz: leaf \['layer3'\]\['w'\]: checksum mismatch"):
        load_checkpoint(path, tree)


def test_tampered_manifest_is_refused(saved):
    path, tree = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(np.load(io.BytesIO(archive.read("__manifest__.npy"))).tobytes())
    manifest["leaves"][0]["shape"] = "not a shape"
    rewrite_member(path, "__manifest__", np.frombuffer(json.dumps(manifest).encode(), np.uint8))
    with pytest.raises(CheckpointError, match=r"good\.npz: invalid manifest, the file was altered: .*bad shape"):
        load_checkpoint(path, tree)


class Payload:
    """Unpickling this would create ``marker``: proof that the loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("where", ["leaf_00000", "extra_member"])
def test_a_pickled_object_array_is_refused_without_running_it(saved, tmp_path, where):
    path, tree = saved
    marker = tmp_path / "pwned"
    rewrite_member(path, where, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"good\.npz"):
        load_checkpoint(path, tree)
    assert not marker.exists()


def test_saving_object_or_string_arrays_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"\['x'\] has dtype object"):
        save_checkpoint(tmp_path / "o.npz", {"x": np.array([1, "a"], dtype=object)})
    with pytest.raises(TypeError, match="only numeric arrays"):
        save_checkpoint(tmp_path / "s.npz", {"x": np.array(["a", "b"])})
    with pytest.raises(TypeError, match="metadata must be JSON"):
        save_checkpoint(tmp_path / "m.npz", {}, metadata={"x": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("like", "message"),
    [
        (
            {"layer3": {"w": jnp.ones((32, 64)), "b": jnp.zeros(32)}},
            r"\['layer3'\]\['w'\]: `like` expects \(32, 64\) float32, the file has \(64, 32\) float32",
        ),
        (
            {"layer3": {"w": jnp.ones((64, 32), jnp.bfloat16), "b": jnp.zeros(32)}},
            r"expects \(64, 32\) bfloat16, the file has \(64, 32\) float32",
        ),
        (
            {"layer3": {"w": jnp.ones((64, 32))}},
            r"file has a leaf at \['layer3'\]\['b'\] that `like` lacks; it holds 2 leaves, `like` has 1",
        ),
        (
            {"layer3": {"w": jnp.ones((64, 32)), "b": jnp.zeros(32), "c": jnp.zeros(1)}},
            r"`like` has a leaf at \['layer3'\]\['c'\] that the file lacks",
        ),
        ({"layer4": {"w": jnp.ones((64, 32)), "b": jnp.zeros(32)}}, r"`like` has a leaf at \['layer4'\]\['b'\]"),
        ((jnp.zeros(32), jnp.ones((64, 32))), r"`like` has a leaf at \[0\]"),
    ],
)
def test_mismatched_structure_names_the_first_differing_path(saved, like, message):
    path, _ = saved
    with pytest.raises(CheckpointError, match=r"good\.npz: .*" + message):
        load_checkpoint(path, like)


def test_latest_checkpoint_skips_corrupt_files(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path / f"ckpt_{epoch}.npz", {"w": jnp.full(3, float(epoch))}, metadata={"epoch": epoch})
        os.utime(tmp_path / f"ckpt_{epoch}.npz", ns=(epoch * 10**9, epoch * 10**9))
    (tmp_path / ".ckpt_4.npz.abc.tmp").write_bytes(b"partial write of a killed run")
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_3.npz"

    newest = tmp_path / "ckpt_3.npz"
    newest.write_bytes(newest.read_bytes()[:-50])
    os.utime(newest, ns=(3 * 10**9, 3 * 10**9))
    with pytest.warns(RuntimeWarning, match=r"skipping corrupt checkpoint: checkpoint .*ckpt_3\.npz"):
        assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_2.npz"
    assert jn.verify_checkpoint(tmp_path / "ckpt_2.npz") == {"epoch": 2}


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, tempfile
    import numpy as np
    from jaxopt_notes import _checkpoint as checkpoint

    path, mode = sys.argv[1], sys.argv[2]
    big = {"w": np.full((4_000_000,), 2.0, np.float32)}  # 16 MB: the new checkpoint

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "mid_write":
        real = tempfile.NamedTemporaryFile

        class DiesHalfway:
            def __init__(self, handle):
                self._handle, self._written = handle, 0

            def write(self, data):
                result = self._handle.write(data)
                self._written += len(data)
                if self._written > 8_000_000:
                    self._handle.flush()
                    die()
                return result

            def __getattr__(self, name):
                return getattr(self._handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._handle.__exit__(*exc)

        tempfile.NamedTemporaryFile = lambda **kwargs: DiesHalfway(real(**kwargs))
    else:
        os.replace = lambda *args: die()
    checkpoint.save_checkpoint(path, big, metadata={"epoch": 2})
    """
)


@pytest.mark.parametrize("mode", ["mid_write", "before_rename"])
def test_a_kill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path, mode):
    path = tmp_path / "ckpt.npz"
    previous = {"w": np.full((4_000_000,), 1.0, np.float32)}
    save_checkpoint(path, previous, metadata={"epoch": 1})

    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(path), mode], capture_output=True, timeout=120)

    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    leftovers = [entry for entry in tmp_path.iterdir() if entry != path]
    assert [entry.suffix for entry in leftovers] == [".tmp"]  # the killed write, under its temporary name
    assert leftovers[0].stat().st_size > 8_000_000
    restored, metadata = load_checkpoint(path, previous)
    assert metadata == {"epoch": 1}
    assert_bit_identical(restored, previous)
    assert latest_checkpoint(tmp_path) == path
