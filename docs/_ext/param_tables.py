"""Sphinx extension: regenerate the parameter tables of a page from the rules' declarations.

A table between ``<!-- params: NAME -->`` and ``<!-- /params -->`` is replaced,
when the page is read, by :func:`alliance_ts.params.parameter_table` of that
rule, so the built docs always show the declared defaults, allowed values and
meanings.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from update_params import fill


def _source_read(app, docname, source):
    source[0] = fill(source[0])


def setup(app):
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True}
