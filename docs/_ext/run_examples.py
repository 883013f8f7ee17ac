"""Sphinx extension: execute every ```python block of every Markdown page.

The blocks of one page run in order in one namespace (a page is a script),
in a temporary working directory, when the page is read. An example that
raises fails the build with the page and block number, so the documentation
cannot show code that does not run.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import types

from sphinx.errors import ExtensionError

BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)


def run_page(docname: str, text: str) -> int:
    """Run the page's python blocks; return how many ran."""
    blocks = BLOCK.findall(text)
    if not blocks:
        return 0
    # a real module, so that classes defined in examples (dataclasses) can find it
    module = types.ModuleType(f"docs_{docname.replace('/', '_')}")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for number, code in enumerate(blocks, start=1):
                try:
                    exec(compile(code, f"{docname}.md, example {number}", "exec", dont_inherit=True), namespace)
                except Exception as err:
                    raise ExtensionError(f"{docname}.md, example {number} failed: {type(err).__name__}: {err}") from err
        finally:
            os.chdir(here)
            sys.modules.pop(module.__name__, None)
            import matplotlib.pyplot as plt

            plt.close("all")
    return len(blocks)


def _source_read(app, docname, source):
    if app.env.doc2path(docname).suffix == ".md":
        run_page(docname, source[0])


def setup(app):
    app.connect("source-read", _source_read)
    return {"version": "1.0", "parallel_read_safe": True}
