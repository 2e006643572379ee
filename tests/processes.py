"""Runs one script as several JAX processes on 127.0.0.1, the way a cluster runs one per host.

Each process sees ``local_devices`` forced CPU devices, joins the others through
``jax.distributed.initialize`` on a free local port, and talks to them over gloo, so a global
mesh spans ``processes * local_devices`` devices. The script is run after a prelude that
defines ``RANK`` (this process's id) and ``PROCESSES``; whatever it prints comes back, one
string per process. If any process fails, the others are killed at once; if the run outlasts
``timeout`` seconds, all are killed; either way the error shows every process's output. No
process outlives the call.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = """
import sys
import jax
PORT, RANK, PROCESSES, LOCAL_DEVICES = (int(arg) for arg in sys.argv[1:5])
jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", LOCAL_DEVICES)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{PORT}", num_processes=PROCESSES, process_id=RANK,
    initialization_timeout=60, heartbeat_timeout_seconds=10, shutdown_timeout_seconds=10,
)
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def run_processes(script: str, *, processes: int = 2, local_devices: int = 2, timeout: float = 120) -> list[str]:
    """Runs ``PRELUDE + script`` as ``processes`` ranks; returns each rank's stdout and stderr.

    Raises AssertionError when a rank exits non-zero or the run takes longer than ``timeout``.
    """
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
    env.pop("XLA_FLAGS", None)
    with tempfile.TemporaryDirectory() as logs:
        paths = [os.path.join(logs, f"rank{rank}.log") for rank in range(processes)]
        running = []
        try:
            for rank, path in enumerate(paths):
                with open(path, "w") as log:
                    command = [sys.executable, "-c", PRELUDE + script, str(port), str(rank), str(processes)]
                    running.append(
                        subprocess.Popen(
                            [*command, str(local_devices)],
                            cwd=ROOT,
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            failure = _wait(running, timeout)
        finally:
            for process in running:
                _kill(process)
        outputs = [open(path).read() for path in paths]
    if failure:
        shown = "\n".join(f"--- rank {rank} ---\n{text[-4000:]}" for rank, text in enumerate(outputs))
        raise AssertionError(f"{failure}\n{shown}")
    return outputs


def _wait(running: list[subprocess.Popen], timeout: float) -> str | None:
    """None once every process exited 0; else why not (a failed rank, or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [process.poll() for process in running]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                return f"rank {rank} exited with code {code}; the others were killed"
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.05)
    return f"timed out after {timeout} s; every rank was killed"


def results(outputs: list[str]) -> list[dict]:
    """The JSON each rank printed on its line starting with ``RESULT ``, one dict per rank."""
    found = []
    for rank, text in enumerate(outputs):
        lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
        assert len(lines) == 1, f"rank {rank} printed {len(lines)} RESULT lines:\n{text[-4000:]}"
        found.append(json.loads(lines[0][len("RESULT ") :]))
    return found
