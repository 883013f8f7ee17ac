"""Rule parameters declared once: checks, list_rules(), --param parsing, docs tables, docstrings."""

import ast
import re
from pathlib import Path

import pytest

import alliance_ts as at
from alliance_ts import cli
from alliance_ts.params import Param, parameter_table, parameters
from alliance_ts.rules._base import _REGISTRY

numpydoc = pytest.importorskip("numpydoc.docscrape")

RULE_CLASSES = sorted({s.cls for s in _REGISTRY.values()}, key=lambda c: c.__name__)
DOCS = Path(__file__).parent.parent / "docs"


def _documented(doc):
    """name -> type line of every parameter in a docstring's Parameters section."""
    out = {}
    for p in numpydoc.NumpyDocString(doc or "")["Parameters"]:
        for name in p.name.split(","):
            out[name.strip()] = p.type
    return out


def docstring_mismatches(cls, doc=None):
    """Every way the docstring's Parameters section disagrees with the declared fields."""
    documented = _documented(cls.__doc__ if doc is None else doc)
    found = []
    for p in parameters(cls):
        if p.kind == "any" or not p.meaning:
            found.append(f"{p.name}: no declaration or no meaning")
        elif p.name not in documented:
            found.append(f"{p.name}: not documented")
        else:
            m = re.search(r"default\s+(.+)$", documented[p.name])
            if not m:
                found.append(f"{p.name}: no default documented")
                continue
            written = ast.literal_eval(m.group(1).strip())
            if written != p.default or type(written) not in (type(p.default), int):
                found.append(f"{p.name}: docstring says {m.group(1)}, field is {p.default!r}")
    found += [f"{n}: documented but not a parameter" for n in set(documented) - {p.name for p in parameters(cls)}]
    return found


@pytest.mark.parametrize("cls", RULE_CLASSES, ids=lambda c: c.__name__)
def test_docstring_defaults_match_the_fields(cls):
    assert docstring_mismatches(cls) == []


def test_the_mismatch_this_check_was_written_for_is_caught():
    # ChangePoint's docstring once said penalty="calibrated" and min_drop=2.0 while the
    # fields were "bic" and 3.0: that docstring gives exactly these two complaints
    from alliance_ts.rules.changepoint import ChangePoint

    old = ChangePoint.__doc__.replace('default "bic"', 'default "calibrated"').replace(
        "min_drop : float, default 3.0", "min_drop : float, default 2.0")
    assert docstring_mismatches(ChangePoint, old) == [
        "penalty: docstring says \"calibrated\", field is 'bic'",
        "min_drop: docstring says 2.0, field is 3.0",
    ]


def test_list_rules_parameters_come_from_the_declarations():
    table = at.list_rules().set_index("name")
    assert table.loc["gumz2012", "parameters"].startswith("k=2.0, sd='max', reference='previous', max_decline=6")
    assert "penalty='bic'" in table.loc["changepoint", "parameters"]
    assert "min_drop=3.0" in table.loc["changepoint", "parameters"]
    assert table.loc["psq", "input"] == "psq" and table.loc["vshape", "input"] == "scores"


def test_checks_come_from_the_declarations():
    with pytest.raises(at.InvalidInputError) as info:
        at.detect([1.0, 2.0, 3.0], rule="vshape", k=0, sd="mad", max_decline=1.5, repair_within=True)
    messages = [str(p) for p in info.value.problems]
    assert messages == [
        "parameter 'k': must be > 0, got 0",
        "parameter 'sd': must be one of 'max', 'client', 'pooled'; got 'mad'",
        "parameter 'max_decline': must be a whole number, got 1.5",
        "parameter 'repair_within': must be a whole number or None, got True",
    ]
    with pytest.raises(at.InvalidInputError, match="parameter 'dip': must be True or False, got 'yes'"):
        at.detect([1.0, 2.0, 3.0], rule="robust", dip="yes")
    with pytest.raises(at.InvalidInputError, match=r"parameter 'penalty': must be number >= 0 or one of"):
        at.detect([1.0, 2.0, 3.0], rule="changepoint", penalty=-1.0)


@pytest.mark.parametrize("rule, item, value", [
    ("changepoint", "penalty=bic", "bic"),
    ("changepoint", "penalty=12", 12.0),
    ("changepoint", "min_size=2", 2),
    ("recommended", "repair_within=none", None),
    ("recommended", "dip=false", False),
    ("recommended", "pooled_noise=1.5, 0.3", (1.5, 0.3)),
    ("psq", "rater=rater", "rater"),
    ("psq", "rupture=3", "3"),  # a column named "3" stays a name, not a number
    ("vshape", "sd=client", "client"),
    ("sudden_loss", "cutoff=6", 6.0),
])
def test_cli_param_values_are_read_by_their_declared_kind(rule, item, value):
    params, problems = cli._params([item], rule)
    assert problems == []
    (got,) = params.values()
    assert got == value and type(got) is type(value)


def test_a_repeated_cli_param_is_an_error():
    _, problems = cli._params(["k=1", "k=2"], "vshape")
    assert [str(p) for p in problems] == ["--param: 'k' is given twice"]


def test_describe_and_parse():
    p = parameters(at.rules.RobustDrop)
    alpha = next(x for x in p if x.name == "alpha")
    assert alpha.describe() == "number in (0, 1)"
    assert alpha.parse("0.1") == 0.1 and alpha.parse("x") == "x"  # left for the check to report
    assert Param("flag", "").parse("Yes") is True


def test_docs_parameter_tables_are_generated_from_the_declarations():
    # docs/rules.md holds each rule's table between markers; it must equal what the
    # declarations give (update with: python docs/update_params.py)
    text = (DOCS / "rules.md").read_text()
    blocks = re.findall(r"<!-- params: (\S+) -->\n(.*?)\n<!-- /params -->", text, re.S)
    names = {name for name, _ in blocks}
    assert {"vshape", "robust", "sudden_loss", "changepoint", "psq"} <= names
    for name, table in blocks:
        assert table.strip() == parameter_table(name).strip(), f"docs/rules.md: the {name} table is out of date"
