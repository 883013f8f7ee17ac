"""Regenerate the parameter tables of docs/rules.md from the rules' declarations.

Each table sits between ``<!-- params: NAME -->`` and ``<!-- /params -->``;
the documentation build regenerates them too (``_ext/param_tables.py``) and
``tests/test_params.py`` fails when the committed tables are out of date.
Run: ``python docs/update_params.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from alliance_ts.params import parameter_table  # noqa: E402

MARKED = re.compile(r"(<!-- params: (\S+) -->\n)(.*?)(\n<!-- /params -->)", re.S)


def fill(text: str) -> str:
    """``text`` with every marked table regenerated."""
    return MARKED.sub(lambda m: m.group(1) + "\n" + parameter_table(m.group(2)) + "\n" + m.group(4), text)


if __name__ == "__main__":
    page = HERE / "rules.md"
    page.write_text(fill(page.read_text()))
    print(f"updated the parameter tables of {page}")
