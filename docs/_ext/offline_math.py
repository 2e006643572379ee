"""Serve the mathematics renderer from the site itself.

Sphinx's ``mathjax`` extension points at a CDN by default; this site must work on machines
that reach none. The MathJax 3 build ``tex-svg-full.js`` comes from the ``django-static-mathjax``
wheel on PyPI (installed by the ``docs`` extra, nothing vendored here) and is copied into
``_static/mathjax/``. Its SVG output draws glyphs as paths, so no web font is fetched either.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

BUNDLE = "tex-svg-full.js"


def mathjax_bundle() -> Path:
    """The installed MathJax bundle, or an error saying which package brings it."""
    try:
        root = resources.files("mathjax")
    except ModuleNotFoundError:
        root = None
    path = Path(str(root)) / "static" / "mathjax" / "es5" / BUNDLE if root is not None else None
    if path is None or not path.is_file():
        raise ExtensionError(
            f"offline_math: MathJax's {BUNDLE} was not found; install the docs extra "
            "(pip install '.[docs]', which brings django-static-mathjax)"
        )
    return path


def point_at_local_copy(app: Sphinx, config: Any) -> None:
    config.mathjax_path = f"mathjax/{BUNDLE}"
    # Sphinx's inline and display math arrive as \(...\) and \[...\] inside .math elements;
    # the renderer is told to look nowhere else, so a dollar in prose stays a dollar.
    config.mathjax3_config = {
        "options": {"processHtmlClass": "math", "ignoreHtmlClass": "tex2jax_ignore|highlight"},
        "startup": {"typeset": True},
    }


def copy_bundle(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(mathjax_bundle(), target / BUNDLE)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", point_at_local_copy)
    app.connect("build-finished", copy_bundle)
    mathjax_bundle()  # fail at once, before reading any page, when the bundle is missing
    return {"parallel_read_safe": True, "parallel_write_safe": True}
