"""Sphinx configuration of the alliance_ts documentation.

Build with ``make docs`` (warnings are errors). Every ```python block of every
page is executed during the build (``_ext/run_examples.py``), figures in
``{plot}`` blocks are drawn by matplotlib's plot directive, and the API
reference is generated from the numpydoc docstrings.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import alliance_ts  # noqa: E402

project = "alliance_ts"
author = "alliance_ts developers"
copyright = "2026, alliance_ts developers"
release = version = alliance_ts.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "run_examples",
    "param_tables",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "generated/*.md", "README.md"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_typehints = "none"
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.dpi": 100}

html_theme = "furo"
html_title = f"alliance_ts {release}"
nitpicky = False
