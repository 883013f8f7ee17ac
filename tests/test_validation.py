"""Bad input: one error listing every problem, with column, count and examples."""

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts.errors import AllianceError, InvalidInputError


def problems_of(call):
    with pytest.raises(InvalidInputError) as info:
        call()
    return info.value, [str(p) for p in info.value.problems]


def test_every_problem_is_reported_at_once():
    df = pd.DataFrame(
        {
            "id": ["a", "a", "a", "b", "b", None, "c", "c"],
            "sess": [1, 2, 2, 1, 2.5, 1, np.nan, 2],
            "wai": [50, "n/a", np.inf, 70, 40, 30, 40, 45],
        }
    )
    err, probs = problems_of(
        lambda: at.detect(df, rule="vshape", client="id", session="sess", score="wai",
                          scale="wai-sr", kk=3, k=-1)
    )
    assert isinstance(err, ValueError) and isinstance(err, AllianceError)
    text = str(err)
    assert text.startswith("alliance_ts.detect(): 9 problems with the input")
    expected = [
        "parameter 'kk': not a parameter of rule 'vshape'; valid parameters: k, sd, reference",
        "parameter 'k': must be > 0, got -1",
        "column 'id': 1 row with a missing client id; e.g. row 5",
        "column 'sess': 1 row with a missing session number; e.g. row 6 (client 'c')",
        "column 'sess': 1 row with a session number that is not a whole number; e.g. row 4 (client 'b', value 2.5)",
        "column 'wai': 1 row with a non-numeric score; e.g. row 1 (client 'a', session 2, value 'n/a')",
        "column 'wai': 1 row with an infinite score; e.g. row 2 (client 'a', session 2, value inf)",
        "column 'wai': 1 row with a score outside the scale wai-sr:total [12, 60]; e.g. row 3 (client 'b', session 1, value 70)",
        "columns 'id' x 'sess': 2 rows share their client and session with another row (1 duplicated pair(s)); e.g. row 1 (client 'a', session 2); row 2 (client 'a', session 2)",
    ]
    assert len(probs) == len(expected)
    for got, want in zip(probs, expected):
        assert got.startswith(want), (got, want)


def test_missing_columns_list_what_is_available():
    df = pd.DataFrame({"id": [1], "s": [1], "y": [3.0]})
    _, probs = problems_of(lambda: at.detect(df))
    assert probs == [
        "columns: 3 required column(s) not found: 'client', 'session', 'score'; available: "
        "'id', 's', 'y' (name yours with client=, session=, score=; on the command line --client, --session, --score)"
    ]


def test_empty_table_and_unknown_rule_together():
    df = pd.DataFrame({"client": [], "session": [], "score": []})
    _, probs = problems_of(lambda: at.detect(df, rule="vshap"))
    assert probs == [
        "parameter 'rule': no rule named 'vshap'; valid rules: changepoint, gumz2012, observer, observer_significant, psq, recommended, robust, "
        "scan, stiles2004, strauss2006, sudden_loss, vshape",
        "data: the table has no rows",
    ]


def test_duplicates_name_pairs_and_rows():
    df = pd.DataFrame({"client": [2, 1, 2, 1, 1], "session": [1, 1, 1, 1, 2], "score": [1.0, 2, 3, 4, 5]})
    _, probs = problems_of(lambda: at.detect(df))
    # rows 0 and 2 (client 2, session 1) and rows 1 and 3 (client 1, session 1): 4 rows, 2 pairs
    assert probs == [
        "columns 'client' x 'session': 4 rows share their client and session with another row "
        "(2 duplicated pair(s)); e.g. row 0 (client 2, session 1); row 1 (client 1, session 1); "
        "row 2 (client 2, session 1); row 3 (client 1, session 1)"
    ]


def test_many_bad_rows_show_five_examples_and_the_full_count():
    df = pd.DataFrame({"client": 1, "session": range(1, 21), "score": ["x"] * 20})
    _, probs = problems_of(lambda: at.detect(df))
    assert probs[0].startswith("column 'score': 20 rows with a non-numeric score; e.g. row 0")
    assert probs[0].count("(client 1, session") == 5  # five examples, not twenty


def test_booleans_and_non_numeric_sessions_are_rejected():
    df = pd.DataFrame({"client": [1, 1, 1], "session": ["1", "two", "3"], "score": [True, False, True]})
    _, probs = problems_of(lambda: at.detect(df))
    assert probs[0].startswith("column 'session': 1 row with a non-numeric session number; e.g. row 1 (client 1, value 'two')")
    assert probs[1].startswith("column 'score': 3 rows with a non-numeric score")


def test_numeric_strings_and_integer_floats_are_accepted():
    df = pd.DataFrame({"client": ["a"] * 4, "session": [1.0, 2.0, 3.0, 4.0], "score": ["4.5", "4", None, "3.25"]})
    res = at.detect(df, rule="vshape", pooled_sd=1.0)
    assert res.sessions["session"].tolist() == [1, 2, 3, 4]
    assert res.sessions["session"].dtype == np.int64
    assert res.sessions["score"].isna().tolist() == [False, False, True, False]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scale="nope"), "parameter 'scale': unknown instrument 'nope'; valid ids: wai, wai-s, wai-sr, srs"),
        (dict(scale=(5, 1)), "parameter 'scale': a (low, high) scale needs finite low < high, got (5, 1)"),
        (dict(min_sessions=0), "parameter 'min_sessions': must be >= 1, got 0"),
        (dict(min_sessions=2.5), "parameter 'min_sessions': must be a whole number, got 2.5"),
        (dict(rule="vshape", sd="median"), "parameter 'sd': must be one of 'max', 'client', 'pooled'; got 'median'"),
        (dict(rule="vshape", tol=1.0), "parameter 'tol': must be >= 0 and < 1, got 1.0"),
        (dict(rule="sudden_loss"), "parameter 'cutoff': sudden_loss needs cutoff="),
        (dict(rule="sudden_loss", cutoff=3, reliability=0.8), "parameter 'cutoff': give cutoff= or reliability=, not both"),
        (dict(rule="sudden_loss", cutoff=3, alpha=1.5), "parameter 'alpha': must be > 0 and < 1, got 1.5"),
    ],
)
def test_parameter_problems(kwargs, message):
    df = pd.DataFrame({"client": 1, "session": [1, 2, 3], "score": [1.0, 2.0, 3.0]})
    _, probs = problems_of(lambda: at.detect(df, **kwargs))
    assert any(p.startswith(message) for p in probs), probs


def test_two_dimensional_array_points_to_to_long():
    _, probs = problems_of(lambda: at.detect(np.zeros((3, 3))))
    assert probs == [
        "data: a 2-D array cannot be read as one client's scores; pass a long DataFrame "
        "(client, session, score), or convert a wide table with alliance_ts.to_long()"
    ]


def test_unknown_rule_lookup_is_a_key_and_value_error():
    with pytest.raises(KeyError):
        at.rules.get_rule("nope")
    with pytest.raises(ValueError, match="valid rules: changepoint, gumz2012"):
        at.rules.get_rule("nope")


def test_valid_but_unanalysable_clients_are_not_errors():
    df = pd.DataFrame(
        {"client": ["short", "short", "nan_only", "ok", "ok", "ok"],
         "session": [1, 2, 1, 1, 2, 3],
         "score": [3.0, 4.0, np.nan, 3.0, 4.0, 5.0]}
    )
    res = at.detect(df, rule="vshape", pooled_sd=1.0)
    c = res.clients.set_index("client")
    assert c.loc["short", "reason"] == "fewer than 3 observed scores (2)"
    assert c.loc["nan_only", "reason"] == "fewer than 3 observed scores (0)"
    assert c.loc["nan_only", "n_sessions"] == 0
    assert bool(c.loc["ok", "included"])
    assert len(res.sessions) == len(df)  # every row accounted for


def test_rows_are_named_by_their_index_label():
    # a filtered table keeps its labels: the bad row is labelled 12, not "np.int64(12)" or position 1
    df = pd.DataFrame({"client": [1, 1, 1], "session": [1, 2, 3], "score": [5.0, "x", 4]},
                      index=pd.Index(np.array([10, 12, 14], dtype=np.int64)))
    _, probs = problems_of(lambda: at.detect(df))
    assert probs == ["column 'score': 1 row with a non-numeric score; e.g. row 12 (client 1, session 2, value 'x')"]


# --------------------------------------------------------------------------
# inputs that used to give tracebacks or silent changes (the one-pipeline issue)


def _frame():
    return pd.DataFrame({"client": [1, 1, 1, 2, 2, 2], "session": [1, 2, 3, 1, 2, 3],
                         "score": [50.0, 40, 50, 30, 31, 30]})


def test_duplicated_columns_are_named():
    df = _frame()
    twice = pd.concat([df, df[["score"]]], axis=1)
    _, probs = problems_of(lambda: at.detect(twice))
    assert probs == ["column 'score': appears 2 times in the table (columns 3, 4); rename or drop the copies so "
                     "that it names one column"]
    twice = pd.concat([df, df[["session"]]], axis=1)
    _, probs = problems_of(lambda: at.detect(twice))
    assert probs[0].startswith("column 'session': appears 2 times in the table (columns 2, 4)")


def test_column_names_and_rules_that_are_not_names():
    _, probs = problems_of(lambda: at.detect(_frame(), score=["score", "other"]))
    assert probs == ["parameter 'score': must be a column name (a string), got ['score', 'other'] "
                     "(one column per argument)"]
    _, probs = problems_of(lambda: at.detect(_frame(), rule=["vshape", "gumz2012"]))
    assert len(probs) == 1
    assert probs[0].startswith("parameter 'rule': must be a rule name (a string) or a Rule object, got "
                               "['vshape', 'gumz2012']; valid rules: ")
    _, probs = problems_of(lambda: at.detect(_frame(), client="client", session="client"))
    assert probs[0].startswith("columns: the client, session and value columns must be different columns")


@pytest.mark.parametrize("sessions, kind", [
    (pd.to_timedelta([0, 7, 14] * 2, unit="D"), "durations (timedelta values)"),
])
def test_durations_as_sessions_are_errors(sessions, kind):
    df = _frame().assign(session=list(sessions) if isinstance(sessions, pd.Series) else sessions)
    _, probs = problems_of(lambda: at.detect(df))
    assert probs == [f"column 'session': holds {kind}, not session numbers; number each client's sessions "
                     f"1, 2, 3, ... (for example {'from the dates in order' if kind.startswith('date') else 'in time order'})"]


def test_complex_scores_are_errors_not_their_real_part():
    df = _frame().assign(score=[50 + 1j, 40, 50, 30, 31, 30])
    _, probs = problems_of(lambda: at.detect(df))
    assert probs == ["column 'score': holds complex numbers, not scores"]
    mixed = _frame().assign(score=pd.Series([50.0, 1 + 2j, 50, 30, 31, 30], dtype=object))
    _, probs = problems_of(lambda: at.detect(mixed))
    assert probs == ["column 'score': 1 row with a non-numeric score; e.g. row 1 (client 1, session 2, value (1+2j))"]


def test_ids_that_print_the_same_are_an_error():
    df = _frame().assign(client=pd.Series([1, 1, 1, "1", "1", "1"], dtype=object))
    _, probs = problems_of(lambda: at.detect(df))
    assert probs == ["column 'client': client ids of different types print the same, so they cannot be told apart "
                     "in the results: 1 and '1'; make every id text (or every id a number)"]
    # numbers and text that differ are fine, numbers first
    ok = _frame().assign(client=pd.Series([2, 2, 2, "a", "a", "a"], dtype=object))
    assert at.detect(ok, rule="vshape").clients["client"].tolist() == [2, "a"]


def test_blank_and_unhashable_ids():
    df = _frame().assign(client=pd.Series(["a", "a", "a", " ", " ", "b"], dtype=object))
    _, probs = problems_of(lambda: at.detect(df))
    assert probs == ["column 'client': 2 rows with a missing client id; e.g. row 3; row 4"]
    df = _frame().assign(client=pd.Series([[1], [1], "a", "a", "a", "a"], dtype=object))
    err, probs = problems_of(lambda: at.detect(df))
    assert probs[0].startswith("column 'client': 2 rows with a client id that is not a single value")


def test_non_string_column_names():
    # a table with numbered columns: naming them by number is refused with a clear message,
    # and the default names report what is there
    df = pd.DataFrame({0: [1, 1, 1], 1: [1, 2, 3], 2: [50.0, 40, 50]})
    _, probs = problems_of(lambda: at.detect(df, client=0, session=1, score=2))
    assert probs == [f"parameter {arg!r}: must be a column name (a string), got {v}"
                     for arg, v in (("client", 0), ("session", 1), ("score", 2))]
    _, probs = problems_of(lambda: at.detect(df))
    assert probs[0].startswith("columns: 3 required column(s) not found: 'client', 'session', 'score'; "
                               "available: 0, 1, 2")
    renamed = df.rename(columns=str).rename(columns={"0": "client", "1": "session", "2": "score"})
    assert at.detect(renamed, rule="vshape", pooled_sd=1.0).clients["included"].tolist() == [True]


def test_numbers_in_an_object_id_column_beside_a_missing_id():
    # an object column of numbers and NaN (what a merge or a hand-built list gives): the missing id is named
    df = pd.DataFrame({"client": pd.Series([1, 2, np.nan, 1, 2, 2], dtype=object), "session": [1, 1, 1, 2, 2, 3],
                       "score": [1.0, 2, 3, 4, 5, 6]})
    _, probs = problems_of(lambda: at.detect(df, rule="vshape", pooled_sd=1.0))
    assert probs == ["column 'client': 1 row with a missing client id; e.g. row 2"]
