"""Every Python example in the how-to pages runs (in order, one namespace per page)."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["testing.md", "files.md"]


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"no python examples in {page}"
    namespace: dict = {"__name__": f"docs_{page}"}
    for i, code in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"{page} example {i}", "exec"), namespace)
        except Exception as err:  # pragma: no cover - reported with the block number
            raise AssertionError(f"{page}, example {i} failed: {type(err).__name__}: {err}") from err
