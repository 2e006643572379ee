"""Layer 5: the command line (``compare``, ``figures``, ``saddle``) and the plots it draws, the
only part of the package that needs matplotlib (the ``cli`` extra)."""

from jaxopt_notes.cli._commands import main

__all__ = ["main"]
