"""Several JAX processes on 127.0.0.1 (tests/processes.py): the harness itself, then fit
across 2 processes of 2 CPU devices each against a single-process run on the same minibatches."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.processes import ROOT, results, run_processes

COLLECTIVE = """
import json
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
mesh = Mesh(np.array(jax.devices()), ("x",))
local = np.full((2, 3), RANK + 1.0, np.float32)
rows = jax.make_array_from_process_local_data(NamedSharding(mesh, P("x")), local)
total = jax.jit(lambda a: a.sum(axis=0), out_shardings=NamedSharding(mesh, P()))(rows)
print("RESULT " + json.dumps({"devices": jax.device_count(), "local": jax.local_device_count(),
                              "shape": rows.shape, "total": np.asarray(total).tolist()}))
"""


def test_a_collective_spans_both_processes():
    for rank, result in enumerate(results(run_processes(COLLECTIVE, timeout=90))):
        # Each process holds 2 rows of (rank + 1): the global column sums are 2*1 + 2*2 = 6.
        assert result == {"devices": 4, "local": 2, "shape": [4, 3], "total": [6.0, 6.0, 6.0]}, rank


def test_a_failing_process_takes_the_others_down():
    script = """
import os
from jax.experimental import multihost_utils
if RANK == 1:
    os._exit(3)  # dies as a crashed or preempted host does, while rank 0 waits for it
multihost_utils.sync_global_devices("never reached by rank 1")
"""
    started = time.monotonic()
    with pytest.raises(AssertionError, match="rank 1 exited with code 3"):
        run_processes(script, timeout=90)
    assert time.monotonic() - started < 60


def test_a_hung_run_is_killed_at_the_timeout():
    started = time.monotonic()
    with pytest.raises(AssertionError, match="timed out after 5 s"):
        run_processes("import time\ntime.sleep(600)\n", timeout=5)
    assert time.monotonic() - started < 30


# fit across 2 processes: each holds LOCAL rows; every global minibatch of BATCH rows takes
# BATCH / 2 rows of each process's own shuffle; the last minibatch gathers the 3 leftover
# rows of each process. Rank 1's row BAD_ROW is NaN in the NaN runs.
LOCAL, D, BATCH, EPOCHS, BAD_ROW = 103, 3, 40, 3, 7

FIT_SCRIPT = """
import json, os, pathlib, tempfile
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh
import jaxopt_notes as jn
from tests.test_multiprocess import LOCAL, D, BATCH, EPOCHS, BAD_ROW, data, logistic_loss

mesh = Mesh(np.array(jax.devices()), ("data",))
X, Y = data(RANK)
params0 = {"w": jnp.zeros(D), "b": jnp.zeros(())}
opt = optax.adam(0.05)
kw = dict(mesh=mesh, batch_size=BATCH, seed=5, progress=False)
root = pathlib.Path(os.environ["CHECKPOINTS"])
out = {"errors": []}
for bad, rows in (
    ({"mesh": None}, LOCAL),
    ({"batch_size": 42}, LOCAL),
    ({"checkpoint_dir": root / "mixed" if RANK == 0 else None}, LOCAL),
    ({}, LOCAL - RANK),
):
    try:
        jn.fit(logistic_loss, params0, opt, X[:rows], Y[:rows], epochs=1, **{**kw, **bad})
        out["errors"].append(None)
    except ValueError as error:
        out["errors"].append(str(error))
params, history = jn.fit(logistic_loss, params0, opt, X, Y, epochs=EPOCHS, **kw)
out["params"] = {k: np.asarray(v).tolist() for k, v in params.items()}
out["cost"] = history.cost.tolist()
out["sharding"] = str(params["w"].sharding)

Xbad = X.copy()
if RANK == 1:
    Xbad[BAD_ROW] = np.nan
skipped, history = jn.fit(logistic_loss, params0, opt, Xbad, Y, epochs=EPOCHS, on_nonfinite="skip", **kw)
out["skip_params"] = {k: np.asarray(v).tolist() for k, v in skipped.items()}
out["skipped_steps"] = history.skipped_steps.tolist()
try:
    jn.fit(logistic_loss, params0, opt, Xbad, Y, epochs=EPOCHS, **kw)
    out["raised"] = None
except jn.NonFiniteCostError as error:
    out["raised"] = [error.epoch, error.step]

own = root / f"own{RANK}"
jn.fit(logistic_loss, params0, opt, X, Y, epochs=1, checkpoint_dir=own, **kw)
out["own_files"] = sorted(p.name for p in own.glob("*.npz"))
shared = root / "shared"
jn.fit(logistic_loss, params0, opt, X, Y, epochs=2, checkpoint_dir=shared, **kw)
resumed, history = jn.fit(logistic_loss, params0, opt, X, Y, epochs=EPOCHS, checkpoint_dir=shared, **kw)
out["resumed"] = {k: np.asarray(v).tolist() for k, v in resumed.items()}
out["resumed_cost"] = history.cost.tolist()

np.save(root / f"x{RANK}.npy", X)
np.save(root / f"y{RANK}.npy", Y)
X_mm, Y_mm = (np.load(root / f"{name}{RANK}.npy", mmap_mode="r") for name in ("x", "y"))
streamed, history = jn.fit(logistic_loss, params0, opt, X_mm, Y_mm, epochs=EPOCHS, chunk_steps=5, **kw)
out["streamed"] = {k: np.asarray(v).tolist() for k, v in streamed.items()}
print("RESULT " + json.dumps(out))
"""

REFERENCE_SCRIPT = """
import json
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tests.test_multiprocess import (
    LOCAL, D, BATCH, EPOCHS, BAD_ROW, data, logistic_loss, global_minibatches, streamed_minibatches
)

assert jax.device_count() == 4
mesh = Mesh(np.array(jax.devices()), ("data",))
opt = optax.adam(0.05)
step = jax.jit(lambda p, s, x, y: (lambda c, g: (c, *opt.update(g, s, p)))(*jax.value_and_grad(logistic_loss)(p, x, y)))


def train(batches_of_epoch):
    params = jax.device_put({"w": jnp.zeros(D), "b": jnp.zeros(())}, NamedSharding(mesh, P()))
    state, costs = opt.init(params), []
    for epoch in range(EPOCHS):
        for x, y in batches_of_epoch(epoch):
            spec = P("data") if len(x) % 4 == 0 else P()
            x, y = jax.device_put((x, y), NamedSharding(mesh, spec))
            cost, updates, new_state = step(params, state, x, y)
            costs.append(float(cost))
            if np.isfinite(float(cost)):
                params, state = optax.apply_updates(params, updates), new_state
    return {"params": {k: np.asarray(v).tolist() for k, v in params.items()}, "cost": costs}


out = {}
for bad in (False, True):
    parts = [data(p) for p in range(2)]
    if bad:
        parts[1][0][BAD_ROW] = np.nan
    out["bad" if bad else "good"] = train(lambda epoch: global_minibatches(parts, seed=5, epoch=epoch))
out["streamed"] = train(streamed_minibatches)
print("RESULT " + json.dumps(out))
"""


def data(process):
    """Process ``process``'s own rows of a logistic-regression data set."""
    rng = np.random.default_rng(100 + process)
    X = rng.standard_normal((LOCAL, D)).astype(np.float32)
    Y = (X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3 * rng.standard_normal(LOCAL) > 0).astype(np.float32)
    return X, Y


def logistic_loss(params, x, y):
    import jax.numpy as jnp
    import optax

    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def process_seed(seed, epoch, process):
    return int(np.random.SeedSequence([seed, epoch, process]).generate_state(1)[0])


def global_minibatches(parts, *, seed, epoch):
    """The documented recipe, written out: process p shuffles its rows with
    SeedSequence([seed, epoch, p]); global minibatch s joins rows s*B/2 .. (s+1)*B/2 of every
    process's shuffle in process order; the last joins every process's leftover rows."""
    orders = []
    for process, (X, Y) in enumerate(parts):
        perm = np.random.default_rng(process_seed(seed, epoch, process)).permutation(len(X))
        orders.append((X[perm], Y[perm]))
    return cut(orders)


def streamed_minibatches(epoch):
    """Memory-mapped rows (written by the ranks) with chunk_steps=5: each process's order is
    jn.minibatches' over its file, in chunks of 5 * B/2 rows (100, then the 3 leftover rows,
    a chunk with no full minibatch), with the process's seed."""
    from jaxopt_notes import minibatches

    orders = []
    for process in range(2):
        X, Y = (np.load(os.path.join(os.environ["CHECKPOINTS"], f"{n}{process}.npy"), mmap_mode="r") for n in "xy")
        chunks = list(minibatches(X, Y, batch_size=5 * BATCH // 2, seed=process_seed(5, epoch, process)))
        orders.append(tuple(np.concatenate(parts) for parts in zip(*chunks)))
    return cut(orders)


def cut(orders):
    """Global minibatches from each process's rows in its shuffled order (see global_minibatches)."""
    half = BATCH // len(orders)
    steps = LOCAL // half
    for s in [*(slice(i * half, (i + 1) * half) for i in range(steps)), slice(steps * half, LOCAL)]:
        yield np.concatenate([X[s] for X, _ in orders]), np.concatenate([Y[s] for _, Y in orders])


def test_fit_across_two_processes_matches_one_process_on_the_same_minibatches(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKPOINTS", str(tmp_path))
    ranks = results(run_processes(FIT_SCRIPT, timeout=240))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    reference = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = results([reference.stdout])[0]
    zero, one = ranks
    # Bad input fails on every process alike, with an error that says what to pass.
    expected_errors = [
        "pass mesh=",
        "batch_size must be a multiple of the process count (2) and of the mesh's first axis ('data', 4 devices)",
        "pass checkpoint_dir on every process or on none",
        "same number of rows of X and Y; got 103 on process 0, 102 on process 1",
    ]
    for rank in ranks:
        for message, expected_error in zip(rank["errors"], expected_errors, strict=True):
            assert message is not None and expected_error in message, (message, expected_error)
    # Identical on both processes, bit for bit: they are the same global arrays.
    assert zero.keys() == one.keys()
    for key in zero.keys() - {"own_files"}:
        assert zero[key] == one[key], key
    assert "PartitionSpec()" in zero["sharding"] or "P()" in zero["sharding"]
    # Equal to one process of 4 devices fed the same global minibatches.
    for ours, theirs in (("params", "good"), ("resumed", "good"), ("streamed", "streamed")):
        for leaf in ("w", "b"):
            np.testing.assert_allclose(
                zero[ours][leaf], expected[theirs]["params"][leaf], rtol=2e-5, atol=1e-6, err_msg=ours
            )
    np.testing.assert_allclose(zero["cost"], expected["good"]["cost"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(zero["resumed_cost"], zero["cost"], rtol=0, atol=0)
    # The NaN row of rank 1 spoils one minibatch per epoch, on both processes alike.
    assert zero["skipped_steps"] == [1] * EPOCHS
    for leaf in ("w", "b"):
        np.testing.assert_allclose(zero["skip_params"][leaf], expected["bad"]["params"][leaf], rtol=2e-5, atol=1e-6)
    first_bad = next(i for i, c in enumerate(expected["bad"]["cost"]) if not np.isfinite(c))
    steps = LOCAL // (BATCH // 2) + 1
    assert zero["raised"] == [first_bad // steps + 1, first_bad % steps + 1]
    # Checkpoints come from process 0 alone.
    assert zero["own_files"] == ["epoch_000001.npz"] and one["own_files"] == []


SLOW_WRITE_SCRIPT = """
import json, os, pathlib, time
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh
import jaxopt_notes as jn
from tests.test_multiprocess import D, BATCH, data, logistic_loss

if RANK == 0:  # process 0 writes the checkpoints; make its rename of the finished file take 3 s
    real_replace = os.replace

    def slow_replace(source, target, *args, **kwargs):
        if str(target).endswith(".npz"):
            time.sleep(3)
        return real_replace(source, target, *args, **kwargs)

    os.replace = slow_replace
X, Y = data(RANK)
directory = pathlib.Path(os.environ["CHECKPOINTS"]) / "slow"
jn.fit(logistic_loss, {"w": jnp.zeros(D), "b": jnp.zeros(())}, optax.sgd(0.1), X, Y, batch_size=BATCH, epochs=1,
       mesh=Mesh(np.array(jax.devices()), ("data",)), checkpoint_dir=directory, progress=False)
seen = sorted(p.name for p in directory.glob("*.npz"))  # at once, before anything else can synchronise
print("RESULT " + json.dumps({"seen": seen}))
"""


def test_every_process_sees_the_checkpoint_as_soon_as_fit_returns(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKPOINTS", str(tmp_path))
    for rank, result in enumerate(results(run_processes(SLOW_WRITE_SCRIPT, timeout=240))):
        assert result["seen"] == ["epoch_000001.npz"], f"process {rank} returned before the checkpoint was written"
