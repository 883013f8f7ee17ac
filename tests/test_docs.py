"""The documentation site builds cleanly: warnings are errors, every example runs.

The build (``make docs``) executes every ```python block of every page
(``docs/_ext/run_examples.py``), draws every figure of the tutorial with
matplotlib's plot directive and generates the API reference from the
docstrings; the docstrings' own examples run as doctests in the test suite.
"""

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")
pytest.importorskip("numpydoc")


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    pages = {p.stem for p in out.glob("*.html")}
    assert {"index", "tutorial", "files", "testing", "rules", "effects", "api", "caveats", "results"} <= pages
    # the tutorial's figures are drawn by the build
    images = {p.name for p in (out / "_images").iterdir()}
    assert {"tutorial_trajectory.png", "tutorial_panel.png", "tutorial_overview.png", "tutorial_average.png"} <= images
    # the tutorial shows what its examples print: the summary and the Methods paragraph
    tutorial = (out / "tutorial.html").read_text(encoding="utf-8")
    assert "Clients: 300 in the input" in tutorial
    assert "were identified with the rule" in tutorial
    assert (out / "generated" / "alliance_ts.detect.html").exists()


def test_a_failing_example_fails_the_build(tmp_path):
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from run_examples import run_page
        from sphinx.errors import ExtensionError
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    assert run_page("ok", "text\n```python\nx = 1\n```\n\n```python\nassert x == 1\n```\n")[0] == 2
    # what a block prints is shown after it
    count, page = run_page("shown", "```python\nprint(6 * 7)\n```\nafter\n")
    assert (count, page) == (1, "```python\nprint(6 * 7)\n```\n\n```text\n42\n```\n\nafter\n")
    with pytest.raises(ExtensionError, match=r"bad.md, example 2 failed: ZeroDivisionError"):
        run_page("bad", "```python\nx = 1\n```\n```python\nx / 0\n```\n")


def test_readme_images_work_on_the_package_index():
    # the package index shows the README without the repository's files: images need full
    # addresses, and each must point at a file of this repository
    import re

    root = DOCS.parent
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (root / "README.md").read_text(encoding="utf-8"))
    assert links
    prefix = "https://raw.githubusercontent.com/alliance-ts/alliance_ts/main/"
    for link in links:
        assert link.startswith(prefix), link
        assert (root / link[len(prefix):]).is_file(), link
