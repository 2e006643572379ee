"""Tools for reference-equivalence tests: :func:`assert_equivalent`, and hypothesis
strategies in :mod:`jaxopt_notes.testing.strategies` (imported on first use, since they need
``hypothesis``)."""

from types import ModuleType

from jaxopt_notes.testing._equivalence import NotEquivalentError, assert_equivalent, random_gradients

__all__ = ["NotEquivalentError", "assert_equivalent", "random_gradients", "strategies"]


def __getattr__(name: str) -> ModuleType:
    if name == "strategies":
        import importlib

        return importlib.import_module("jaxopt_notes.testing.strategies")
    raise AttributeError(f"module 'jaxopt_notes.testing' has no attribute {name!r}")
