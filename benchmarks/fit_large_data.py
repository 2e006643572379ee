"""``fit`` over a memory-mapped data set of more than 2**31 elements, read in place in blocks:
its peak extra host memory against the bound of 15% of the data plus 64 MiB beyond fit's
fixed cost.

Writes ``X`` (``--rows`` x 20 float32: 110,000,000 rows are 2.2e9 elements, 8.8 GB) and
labels ``Y`` as ``.npy`` files, then, in a fresh interpreter, opens them with
``np.load(mmap_mode="r")`` and passes ``np.asarray`` views of the mappings to ``fit`` (a plain
ndarray, so fit reads the mapped file in place rather than streaming it in chunks; ``X``
alone spans two blocks of under 2**31 units).

*Extra host memory* is anonymous memory (``RssAnon`` in ``/proc/self/status``): what fit
allocates. The pages of the mapped file that fit reads also count in the process's resident
size (``RssFile``), but they belong to the kernel's page cache, are shared with every reader
of the file and are reclaimed under pressure; the user's own loop over the same mapping
touches the same pages. ``RssAnon`` is sampled every millisecond by a thread (there is no
kernel peak for it alone). *Fit's fixed cost* is the peak of the same fit call on the first
50,000 rows (compiling included, as in the large call). Also checked at full size: rows
around the block boundary gathered by fit's own code equal NumPy indexing, and the cost falls.

Run: ``python benchmarks/fit_large_data.py [--dir DIR] [--rows N] [--epochs E] [--keep]``
(about 9.3 GB of disk, deleted afterwards unless ``--keep``; a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

D = 20
WRITE_ROWS = 2_000_000

MEASURE = """
import json, sys, threading, time
import jax, jax.numpy as jnp, numpy as np, optax
import jaxopt_notes as jn
from jaxopt_notes.training import _rows

x_path, y_path, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])


def field(name):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(name + ":"))


class PeakAnon:
    \"\"\"The largest RssAnon seen by a thread sampling every millisecond.\"\"\"

    def __init__(self):
        self.peak, self.running = field("RssAnon"), True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while self.running:
            self.peak = max(self.peak, field("RssAnon"))
            time.sleep(0.001)

    def stop(self):
        self.running = False
        self.thread.join()
        return max(self.peak, field("RssAnon"))


def loss(p, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], y))


X = np.asarray(np.load(x_path, mmap_mode="r"))
Y = np.asarray(np.load(y_path, mmap_mode="r"))
params = {"w": jnp.zeros(X.shape[1]), "b": jnp.zeros(())}
out = {"elements": int(X.size), "data_bytes": int(X.nbytes + Y.nbytes)}


def measured(rows, epochs):
    before, sampler = field("RssAnon"), None
    sampler = PeakAnon()
    started = time.perf_counter()
    _, history = jn.fit(loss, params, jn.adam(1e-3), X[:rows], Y[:rows], batch_size=1000, epochs=epochs, seed=0,
                        progress=False)
    seconds = time.perf_counter() - started
    return sampler.stop() - before, seconds, history


out["fixed_cost"], _, _ = measured(50_000, epochs)
peak, seconds, history = measured(len(X), epochs)
out |= {"peak": peak, "seconds": seconds, "epoch_seconds": history.epoch_time.tolist(),
        "epoch_cost": history.epoch_cost.tolist(), "vm_hwm": field("VmHWM"), "rss_file": field("RssFile")}

bx, by, layout = _rows.place_rows(X, Y)
region = layout.regions[0]
out["blocks"], out["block_rows"] = len(bx), region.block_rows
edge = region.block_rows
idx = np.unique(np.clip([0, edge - 2, edge - 1, edge, edge + 1, len(X) - 1, 12345], 0, len(X) - 1)).astype(np.int32)
x, y = jax.jit(_rows.take_rows, static_argnums=1)((bx, by), layout, jnp.asarray(idx))
out["boundary_rows_equal_numpy"] = bool(np.array_equal(x, X[idx]) and np.array_equal(y, Y[idx]))
print("RESULT " + json.dumps(out))
"""


def write_data(directory: str, rows: int) -> tuple[str, str]:
    """X: ``rows`` x D standard normal float32; Y: a noiseless linear labelling of X."""
    x_path, y_path = os.path.join(directory, "x.npy"), os.path.join(directory, "y.npy")
    X = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(rows, D))
    Y = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.float32, shape=(rows,))
    rng = np.random.default_rng(0)
    w = rng.standard_normal(D).astype(np.float32)
    for first in range(0, rows, WRITE_ROWS):
        stop = min(first + WRITE_ROWS, rows)
        X[first:stop] = rng.standard_normal((stop - first, D), dtype=np.float32)
        Y[first:stop] = X[first:stop] @ w > 0
    X.flush()
    Y.flush()
    return x_path, y_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write the data (default: a temporary directory)")
    parser.add_argument("--rows", type=int, default=110_000_000, help="rows of 20 float32 (default 2.2e9 elements)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="fit-large-", dir=args.dir)
    try:
        started = time.perf_counter()
        x_path, y_path = write_data(directory, args.rows)
        print(f"wrote {args.rows:,} x {D} float32 rows in {time.perf_counter() - started:.0f} s to {directory}")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(MEASURE), x_path, y_path, str(args.epochs)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": root},
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(done.stderr[-4000:])
        result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    finally:
        if not args.keep:
            shutil.rmtree(directory)
    mib = 2**20
    extra = result["peak"] - result["fixed_cost"]
    bound = 0.15 * result["data_bytes"] + 64 * mib
    relation = ">" if result["elements"] > 2**31 - 1 else "<="
    print(f"data: {result['elements']:,} elements of X ({relation} 2**31 - 1 = {2**31 - 1:,}), "
          f"{result['data_bytes'] / mib:,.0f} MiB with Y; X read in {result['blocks']} blocks of "
          f"{result['block_rows']:,} rows")  # fmt: skip
    print(f"fit's fixed cost (same fit on 50,000 rows): peak RssAnon {result['fixed_cost'] / mib:,.0f} MiB")
    print(f"fit on all rows, {args.epochs} epochs: peak RssAnon {result['peak'] / mib:,.0f} MiB, "
          f"{result['seconds']:.1f} s (epochs {', '.join(f'{s:.1f}' for s in result['epoch_seconds'])} s), "
          f"epoch costs {', '.join(f'{c:.4f}' for c in result['epoch_cost'])}")  # fmt: skip
    print(f"extra beyond the fixed cost: {extra / mib:,.0f} MiB = {extra / result['data_bytes']:.1%} of the data; "
          f"bound 15% + 64 MiB = {bound / mib:,.0f} MiB: {'within' if extra <= bound else 'OVER'}")  # fmt: skip
    print(f"(resident file pages, not fit's: RssFile {result['rss_file'] / mib:,.0f} MiB; VmHWM "
          f"{result['vm_hwm'] / mib:,.0f} MiB)")  # fmt: skip
    print(f"rows around the block boundary equal NumPy indexing: {result['boundary_rows_equal_numpy']}")


if __name__ == "__main__":
    main()
