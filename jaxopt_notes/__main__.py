"""``python -m jaxopt_notes``: the same command line as ``jaxopt-notes``."""

from jaxopt_notes.cli import main

raise SystemExit(main())
