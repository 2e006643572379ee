"""Misuses of the public API that the type checker must report (run by mypy from .ci/run, never
called). Each line silences exactly the error it expects; with ``warn_unused_ignores`` an
ignore that silences nothing fails the check, so a signature that stopped catching the mistake
is noticed."""

import numpy as np

import jaxopt_notes as jn


def _misuses() -> None:
    jn.adam("fast")  # type: ignore[arg-type]
    jn.fit(lambda p, x: x, {}, jn.adam(1e-3), np.ones(3), batch_size="64", epochs=1)  # type: ignore[arg-type]
    jn.fit(lambda p, x: x, {}, jn.adam(1e-3), np.ones(3), batch_size=64)  # type: ignore[call-arg]
    jn.fit(lambda p, x: x, {}, jn.adam(1e-3), np.ones(3), batch_size=64, epochs=1, epoch=2)  # type: ignore[call-arg]
    jn.fit(lambda p, x: x, {}, jn.adam(1e-3), np.ones(3), batch_size=64, epochs=1, on_nonfinite="ignore")  # type: ignore[arg-type]
    print(jn.fit(lambda p, x: x, {}, jn.adam(1e-3), np.ones(3), epochs=1).history.smoothed)  # type: ignore[attr-defined]
    jn.minibatches(np.ones(3), batch_size=None)  # type: ignore[arg-type]
    jn.exponential_decay(0.1, "fast")  # type: ignore[arg-type]
