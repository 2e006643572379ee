"""fit over resident data holds no second copy of it, whatever the layout or dtype: its peak extra
host memory, measured by the kernel (VmHWM), stays within 15% of the data's size plus 64 MiB,
for float32 rows, column views of one array, float64 rows with int64 labels (JAX narrows
them: fit does so one minibatch at a time) and column-major rows (gathered element by element)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

MEMORY_SCRIPT = """
import gc, json
import jax, jax.numpy as jnp, numpy as np, optax
import jaxopt_notes as jn

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

def loss(p, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], y.astype(jnp.float32)))

m, d = 2_500_000, 24
rng = np.random.default_rng(0)
XY = np.empty((m, d + 1), np.float32)
XY[:, :d] = rng.standard_normal((m, d), dtype=np.float32)
XY[:, d] = XY[:, :d] @ rng.standard_normal(d).astype(np.float32) > 0
X, Y = np.ascontiguousarray(XY[:, :d]), np.ascontiguousarray(XY[:, d])
params, opt = {"w": jnp.zeros(d), "b": jnp.zeros(())}, jn.adam(1e-3)
cases = {
    "separate": lambda: (X, Y),
    "column views": lambda: (XY[:, :d], XY[:, d]),
    "float64 rows, int64 labels": lambda: (X.astype(np.float64), Y.astype(np.int64)),
    "column-major rows": lambda: (np.asfortranarray(X), Y),
}
peaks, sizes = {}, {}
for name, make in cases.items():
    arrays = make()
    jn.fit(loss, params, opt, *arrays, batch_size=1000, epochs=1, seed=1, progress=False)  # compiles
    gc.collect()
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    trained, history = jn.fit(loss, params, opt, *arrays, batch_size=1000, epochs=2, seed=2, progress=False)
    assert np.isfinite(history.cost).all() and history.epoch_cost[-1] < history.epoch_cost[0]
    peaks[name], sizes[name] = status("VmHWM") - before, sum(a.nbytes for a in arrays)
    del arrays
print(json.dumps({"data": sizes, "peaks": peaks}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to measure peak memory")
def test_fit_holds_no_second_copy_of_resident_data():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_SCRIPT)], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name, peak in report["peaks"].items():
        bound = 0.15 * report["data"][name] + 64 * 2**20
        assert peak <= bound, f"{name}: fit's peak extra memory {peak / 2**20:.0f} MiB > bound {bound / 2**20:.0f} MiB"
