"""Sphinx configuration of the jaxopt_notes documentation site.

Built strictly (``sphinx-build -W``): a broken cross-reference, a missing page, a public name
without an API entry or an example script that fails all stop the build. Everything the pages
load (scripts, the MathJax renderer, styles) is served from the site itself, so it works
offline; see ``_ext/`` for the local extensions.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "jaxopt_notes"
author = "the jaxopt_notes authors"
copyright = "the jaxopt_notes authors, Apache-2.0"  # noqa: A001  (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
    "api_reference",
    "gallery",
    "offline_math",
    "docstring_math",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "figures/index.md", "**/.ipynb_checkpoints"]

# MyST: $...$ and $$...$$ mathematics, ::: fences, and heading anchors for [text](page.md#anchor).
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
# offline_math sets MathJax's configuration itself.
myst_update_mathjax = False

# Every cross-reference must resolve. Names of other libraries cannot: the build is offline,
# so there is no intersphinx inventory for them, and private type aliases have no entry.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jaxlib|jnp|np|numpy|optax|flax|nnx|equinox|eqx|grain|orbax|hypothesis|torch|keras)(\..*)?"),
    (r"py:.*", r"(collections|typing|types|os|pathlib|concurrent|threading|queue|dataclasses)(\..*)?"),
    # Private modules and their names have no public entry; a docstring naming one shows it as code.
    (r"py:.*", r"jaxopt_notes\.(\w+\.)*_\w+(\..*)?"),
    (r"py:class", r"(Any|Array|ArrayLike|PyTree|Params|Updates|Schedule|OptState|Callable|Iterable|Iterator|Sequence)"),
    (r"py:class", r"(Mapping|Hashable|NamedTuple|Path|PathLike|DTypeLike|Shape|Sharding|Mesh|Device|Generator)"),
    (r"py:class", r"(.*\.)?(NamedSharding|PartitionSpec|KeyArray|GradientTransformationExtraArgs|ModuleType)"),
    (r"py:class", r"(optional|callable|array|pytree|scalar|float|int|bool|str|None|default.*)"),
    (r"py:(exc|class)", r"(CheckpointError|FloatingPointError|ValueError|TypeError|RuntimeWarning)"),
    # Sphinx splits dataclass fields annotated ``dict[str, ...]`` at the comma (its own quirk).
    (r"py:class", r"dict\[str"),
]

autodoc_typehints = "signature"
autodoc_member_order = "bysource"
# Defaults are shown as their values. (Sphinx's preserve-defaults reads them from the source,
# which for ``fit`` holds ``**options``, not the options its declared signature lists.)
autodoc_preserve_defaults = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections become fields of the class entry, not separate attribute entries that
# would collide with the members autodoc lists.
napoleon_use_ivar = True

# The copy button leaves out the prompts, so a copied doctest pastes as plain Python.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

html_theme = "furo"
html_title = "jaxopt_notes"
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_favicon = "_static/favicon.svg"
# Browsers ask for /favicon.ico before reading the page: the same icon, as a PNG, at the root.
html_extra_path = ["_extra"]
html_show_sourcelink = False
html_copy_source = False
# Furo takes no web fonts; the mathematics comes from the local MathJax copy (offline_math).
html_theme_options = {"navigation_with_keys": True}
