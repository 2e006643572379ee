"""fit across processes: one JAX process per host, each holding its own rows of the data.

On this machine, as N local processes of 2 CPU devices each (a free local port, gloo
collectives, every process killed if one fails):

    python examples/multi_process.py --processes 2
    python examples/multi_process.py --quick            # 2 processes, fewer rows

On a cluster, once per host, either with the coordinator spelled out:

    python examples/multi_process.py --coordinator 10.0.0.1:1234 --process-count 4 --process-id 0

or, under SLURM, on Cloud TPU pods and on GKE, where ``jax.distributed.initialize()`` reads
all three from the environment:

    python examples/multi_process.py --cluster

Every process trains a logistic regression on its own rows with ``jn.fit`` (each global
minibatch takes ``batch_size / process_count`` rows of every process's own shuffle), then
checks that its parameters equal every other process's, and shows an Adam state placed by
``jn.init_sharded``: each device holds only its slice of a sharded weight's moments.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np


def launch_locally(processes: int, local_devices: int, extra: list[str], timeout: float) -> int:
    """Runs this script as ``processes`` local ranks on a free port; returns the exit status."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, os.path.abspath(__file__), "--coordinator", f"127.0.0.1:{port}"]
    command += ["--process-count", str(processes), "--local-devices", str(local_devices), *extra]
    ranks = [
        subprocess.Popen([*command, "--process-id", str(rank)], start_new_session=True, env={**os.environ})
        for rank in range(processes)
    ]
    deadline, status = time.monotonic() + timeout, None
    while status is None:
        codes = [rank.poll() for rank in ranks]
        if any(code not in (None, 0) for code in codes):
            status = next(code for code in codes if code not in (None, 0))
            print(f"a process failed (exit status {status}); stopping the others", file=sys.stderr)
        elif all(code == 0 for code in codes):
            status = 0
        elif time.monotonic() > deadline:
            status = 124
            print(f"timed out after {timeout} s; stopping every process", file=sys.stderr)
        else:
            time.sleep(0.1)
    for rank in ranks:
        if rank.poll() is None:
            os.killpg(rank.pid, signal.SIGKILL)
        rank.wait()
    return status


def own_rows(process: int, rows: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's rows. A real job reads its own shard of the files here (np.load(...,
    mmap_mode="r") streams), never the whole data set."""
    rng = np.random.default_rng(1000 + process)
    X = rng.standard_normal((rows, d), dtype=np.float32)
    w_true = np.linspace(-2.0, 2.0, d, dtype=np.float32)
    return X, (X @ w_true + rng.logistic(size=rows).astype(np.float32) > 0).astype(np.float32)


def run_rank(args: argparse.Namespace) -> None:
    import jax

    if args.local_devices:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", args.local_devices)
    if args.cluster:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(args.coordinator, args.process_count, args.process_id)

    import jax.numpy as jnp
    import optax
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jaxopt_notes as jn

    def cost(params, x, y):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))

    me, count = jax.process_index(), jax.process_count()
    d, rows = 16, 2_000 if args.quick else 50_000
    X, Y = own_rows(me, rows, d)
    mesh = Mesh(np.array(jax.devices()), ("data",))  # every device of every process
    batch_size = 64 * jax.device_count()
    params, history = jn.fit(
        cost, {"w": jnp.zeros(d), "b": jnp.zeros(())}, jn.adam(0.01), X, Y,
        batch_size=batch_size, epochs=2 if args.quick else 3, mesh=mesh, seed=0, progress=False,
    )  # fmt: skip
    mine = np.concatenate([np.asarray(params["w"]), np.asarray(params["b"])[None]])
    everyone = np.asarray(multihost_utils.process_allgather(mine))
    identical = bool((everyone == mine).all())
    sharded = {"w": jax.device_put(jnp.zeros(8 * jax.device_count()), NamedSharding(mesh, PartitionSpec("data")))}
    state = jn.init_sharded(jn.adam(0.01), sharded)
    slices = sorted({shard.data.shape for shard in state[0].mu["w"].addressable_shards})
    print(
        f"process {me} of {count}: {jax.local_device_count()} of {jax.device_count()} devices, {rows} own rows, "
        f"global minibatch {batch_size}; epoch costs {np.round(history.epoch_cost, 4).tolist()}; "
        f"w[:3] = {[round(float(v), 4) for v in mine[:3]]}; "
        f"parameters identical on all {count} processes: {identical}; "
        f"Adam's mu of a {sharded['w'].shape[0]}-float weight sharded over the mesh is "
        f"{state[0].mu['w'].sharding.spec}, {slices[0][0]} floats per device",
        flush=True,
    )
    if not identical:
        raise SystemExit(f"process {me}: parameters differ from another process's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="local processes to launch (default 2)")
    parser.add_argument("--local-devices", type=int, default=0, help="CPU devices per process (local runs: 2)")
    parser.add_argument("--coordinator", help="host:port of process 0, to run one process of a cluster")
    parser.add_argument("--process-count", type=int, help="processes in the cluster")
    parser.add_argument("--process-id", type=int, help="this process's id, 0 .. process-count - 1")
    parser.add_argument("--cluster", action="store_true", help="SLURM, TPU pod or GKE: jax.distributed.initialize()")
    parser.add_argument("--quick", action="store_true", help="fewer rows and epochs")
    args = parser.parse_args(argv)
    if args.cluster or args.coordinator:
        if not args.cluster and (args.process_count is None or args.process_id is None):
            parser.error("--coordinator needs --process-count and --process-id")
        run_rank(args)
        return 0
    return launch_locally(args.processes, args.local_devices or 2, ["--quick"] if args.quick else [], timeout=600)


if __name__ == "__main__":
    sys.exit(main())
