"""Sphinx extension: execute every ```python block of every Markdown page, and show what it prints.

The blocks of one page run in order in one namespace (a page is a script),
in a temporary working directory, when the page is read. An example that
raises fails the build with the page and block number, so the documentation
cannot show code that does not run. What a block prints, and the warnings it
raises, are inserted after it as an output block, so the page shows what the
reader will see.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import types
import warnings

from sphinx.errors import ExtensionError

BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)


def run_page(docname: str, text: str) -> tuple[int, str]:
    """Run the page's python blocks; return how many ran and the page with their printed output."""
    blocks = list(BLOCK.finditer(text))
    if not blocks:
        return 0, text
    # a real module, so that classes defined in examples (dataclasses) can find it
    module = types.ModuleType(f"docs_{docname.replace('/', '_')}")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    here = os.getcwd()
    pieces, done = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for number, match in enumerate(blocks, start=1):
                printed = io.StringIO()
                try:
                    with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        exec(compile(match.group(1), f"{docname}.md, example {number}", "exec", dont_inherit=True),
                             namespace)
                except Exception as err:
                    raise ExtensionError(f"{docname}.md, example {number} failed: {type(err).__name__}: {err}") from err
                pieces.append(text[done:match.end()])
                done = match.end()
                out = printed.getvalue().rstrip()
                shown = [f"{w.category.__name__}: {w.message}" for w in caught
                         if w.category.__module__.startswith("alliance_ts")]
                if shown:
                    out = "\n".join([out, *shown]) if out else "\n".join(shown)
                if out:
                    fence = "````" if "```" in out else "```"
                    pieces.append(f"\n\n{fence}text\n{out}\n{fence}\n")
        finally:
            os.chdir(here)
            sys.modules.pop(module.__name__, None)
            import matplotlib.pyplot as plt

            plt.close("all")
    pieces.append(text[done:])
    return len(blocks), "".join(pieces)


def _source_read(app, docname, source):
    if app.env.doc2path(docname).suffix == ".md":
        source[0] = run_page(docname, source[0])[1]


def setup(app):
    app.connect("source-read", _source_read)
    return {"version": "1.0", "parallel_read_safe": True}
