"""Prints, per jn.torch constructor and schedule, the largest parameter difference over the
equality cases (100 steps each), against real torch when it is installed and against the NumPy
transcription: the table of docs/guides/porting_pytorch.md.

    python -m tests.torch_differences
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp

from jaxopt_notes.testing import assert_equivalent
from tests import torch_cases

try:
    import torch
except ImportError:
    torch = None


def _tolerance(dtype):
    if dtype == jnp.float64:
        return torch_cases.FLOAT64_RTOL, torch_cases.FLOAT64_ATOL
    return torch_cases.float32_tolerance()


def _optimizer_differences(dtype, against):
    worst = collections.defaultdict(float)
    cases = torch_cases.COMPLEX_CASES if dtype == jnp.complex64 else torch_cases.OPTIMIZER_CASES
    for case in cases:
        reference = case.torch_factory() if against == "torch" else case.transcription()
        rtol, atol = _tolerance(dtype)
        difference = assert_equivalent(
            case.ours(), reference, params=torch_cases.params(dtype), steps=torch_cases.STEPS, rtol=rtol, atol=atol
        )
        worst[case.name] = max(worst[case.name], difference)
    return worst


def _schedule_differences(dtype, against):
    from tests.test_torch_real import largest_difference

    worst = collections.defaultdict(float)
    for case in torch_cases.SCHEDULE_CASES:
        if against == "torch":
            difference = largest_difference(case, dtype)
        else:
            rtol, atol = _tolerance(dtype)
            difference = assert_equivalent(
                case.ours(), case.transcription(), params=torch_cases.params(dtype), steps=torch_cases.STEPS,
                rtol=rtol, atol=atol,
            )  # fmt: skip
        worst[case.name] = max(worst[case.name], difference)
    return worst


def main() -> None:
    columns = {}
    for against in ["torch", "transcription"] if torch is not None else ["transcription"]:
        for dtype, x64 in [(jnp.float64, True), (jnp.float32, False), (jnp.complex64, False)]:
            with jax.enable_x64(x64):
                found = _optimizer_differences(dtype, against)
                if dtype != jnp.complex64:
                    found.update(_schedule_differences(dtype, against))
            columns[f"{against} {jnp.dtype(dtype).name}"] = found
    names = list(dict.fromkeys(name for column in columns.values() for name in column))
    print("| constructor | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in names:
        cells = [f"{columns[c][name]:.1e}" if name in columns[c] else "-" for c in columns]
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    if torch is not None:
        print(f"\ntorch {torch.__version__}, jax {jax.__version__}, {torch_cases.STEPS} steps per case")


if __name__ == "__main__":
    main()
