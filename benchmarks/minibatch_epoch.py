"""One shuffled epoch of minibatches: ``minibatches`` against the loop a user writes.

The notes' running example: m = 5,000,000 examples of 20 float32 features (plus a float32
label), minibatches of 1,000, so 5,000 steps per epoch. The reference is
``perm = rng.permutation(m)`` then ``X[perm[i:i+B]], Y[perm[i:i+B]]`` per step.

(a) In memory: both loops over the same NumPy arrays. Goal: ``minibatches`` >= 2x the loop.
(b) Memory-mapped ``.npy`` files in a temp dir, read by a child process (so its peak RSS is
    its own): ``minibatches`` with the file in the page cache (warm) and after dropping it
    (cold, ``posix_fadvise(DONTNEED)``), and the peak RSS it added. Goal: >= 0.5x the
    in-memory user loop, with memory bounded by a window, not by the file.
(c) The cost of reading a memmap that motivated the windowed reader: scattered single rows
    against random blocks of contiguous rows, from a cold file.

Each timing is the best of ``--repeats`` runs, reference and ours alternating, in one
process. Run: ``python benchmarks/minibatch_epoch.py`` (``--quick`` for 500,000 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jaxopt_notes.data import minibatches


def user_loop(X: np.ndarray, Y: np.ndarray, batch_size: int, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(len(X))
    for i in range(0, len(X), batch_size):
        X[perm[i : i + batch_size]], Y[perm[i : i + batch_size]]


def our_loop(X: np.ndarray, Y: np.ndarray, batch_size: int, seed: int) -> None:
    for _ in minibatches(X, Y, batch_size=batch_size, seed=seed):
        pass


def best_times(runs: dict, repeats: int) -> dict[str, float]:
    """Best seconds of each run, the runs alternating so that they share the machine's noise."""
    times = {name: [] for name in runs}
    for seed in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(seed)
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> None:
    """Sets this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).

    ``ru_maxrss`` cannot serve: a child started by ``subprocess`` inherits, through fork/exec,
    the peak of the forked image, which counts the parent's pages.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def memmap_child(x_path: Path, y_path: Path, batch_size: int, repeats: int) -> None:
    """Runs in a fresh process: epochs over the memmapped files, and the peak RSS they add."""
    X, Y = np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r")
    reset_peak_rss()
    before = rss_now()
    warm = best_times({"warm": lambda seed: our_loop(X, Y, batch_size, seed)}, repeats)["warm"]
    cold = []
    for seed in range(repeats):
        drop_from_page_cache(x_path)
        drop_from_page_cache(y_path)
        start = time.perf_counter()
        our_loop(X, Y, batch_size, seed)
        cold.append(time.perf_counter() - start)
    grown = peak_rss() - before
    print(json.dumps({"warm": warm, "cold": min(cold), "rss_growth": grown}))


def access_costs(x_path: Path, budget_s: float = 1.0) -> None:
    """Rows per second for scattered rows and for random blocks, each from a cold file."""
    X = np.load(x_path, mmap_mode="r")
    m, row_bytes = len(X), X.itemsize * X.shape[1]
    rng = np.random.default_rng(0)
    print(f"(c) reading a memmapped .npy ({row_bytes} B rows), file dropped from the page cache first:")
    for block in (1, 16, 64, 256, 1024, 4096):
        drop_from_page_cache(x_path)
        starts = rng.permutation(m // block) * block
        rows, start_time = 0, time.perf_counter()
        for chunk in np.array_split(starts, max(1, len(starts) // 64)):
            if block == 1:
                np.take(X, np.sort(chunk), axis=0)
            else:
                for first in chunk.tolist():
                    np.array(X[first : first + block])
            rows += len(chunk) * block
            if time.perf_counter() - start_time > budget_s:
                break
        rate = rows / (time.perf_counter() - start_time)
        kind = "scattered single rows (sorted gather)" if block == 1 else f"random blocks of {block} rows"
        print(f"    {kind:40s} ({block * row_bytes / 1024:7.1f} KiB): {rate / 1e6:7.2f} M rows/s")


def in_memory(X: np.ndarray, Y: np.ndarray, size: int, repeats: int) -> float:
    """Prints part (a); returns the user loop's seconds per epoch, the reference for (b)."""
    m = len(X)
    best = best_times(
        {
            "reference": lambda seed: user_loop(X, Y, size, seed),
            "ours": lambda seed: our_loop(X, Y, size, seed),
            "permutation": lambda seed: np.random.default_rng(seed).permutation(m),
        },
        repeats,
    )
    reference, ours, permutation = best["reference"], best["ours"], best["permutation"]
    print("(a) in memory")
    print(f"    user loop X[perm[i:i+B]]   {m / reference / 1e6:7.2f} M rows/s  ({reference:.3f} s/epoch)")
    print(f"    minibatches                {m / ours / 1e6:7.2f} M rows/s  ({ours:.3f} s/epoch)")
    print(f"    ratio minibatches / user loop: {reference / ours:.2f}x  (goal >= 2)")
    print(
        f"    the user loop's np.random.permutation alone: {permutation:.3f} s (minibatches draws its "
        "exact permutation in buckets, most of it while the first buckets are gathered)"
    )
    return reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500,000 rows, 2 repeats")
    parser.add_argument("--memmap-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memmap_child:
        memmap_child(*args.memmap_child, args.batch_size, args.repeats)
        return
    if args.quick:
        args.rows, args.repeats = 500_000, 2
    m, n, size = args.rows, args.features, args.batch_size
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, n), dtype=np.float32)
    Y = (rng.random(m) > 0.5).astype(np.float32)
    print(f"one shuffled epoch: m={m:,} rows x {n} float32 (+1 float32 label), batch {size:,}, best of {args.repeats}")

    reference = in_memory(X, Y, size, args.repeats)

    with tempfile.TemporaryDirectory(prefix="minibatch_epoch_") as directory:
        x_path, y_path = Path(directory) / "X.npy", Path(directory) / "Y.npy"
        np.save(x_path, X)
        np.save(y_path, Y)
        del X, Y
        child = subprocess.run(
            [sys.executable, __file__, "--memmap-child", str(x_path), str(y_path)]
            + ["--batch-size", str(size), "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        file_mib = (x_path.stat().st_size + y_path.stat().st_size) / 2**20
        print(f"(b) memory-mapped .npy files ({file_mib:.0f} MiB), in a child process")
        for state in ("warm", "cold"):
            seconds = result[state]
            print(
                f"    minibatches, {state} page cache  {m / seconds / 1e6:7.2f} M rows/s  ({seconds:.3f} s/epoch)"
                f"  ratio to in-memory user loop: {reference / seconds:.2f}x  (goal >= 0.5)"
            )
        print(f"    peak RSS added by the memmap epochs: {result['rss_growth'] / 2**20:.0f} MiB")
        access_costs(x_path)


if __name__ == "__main__":
    main()
