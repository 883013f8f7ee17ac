"""Tests of alliance_ts.export: result tables as CSV, Parquet, SPSS, Stata and Excel files.

The hand-worked example used throughout (rule "vshape", sd="pooled",
pooled_sd=1.0, default k=2, tol=0.5, so the threshold is theta = 2 * 1.0 = 2
and a repair needs a score >= pre - 0.5 * 2 = pre - 1):

- client 1, scores 5 5 2 5 5 (sessions 1-5): the fall 5 -> 2 into session 3 is
  3 >= 2, a rupture starting at session 3 (trough 3, pre 5, depth 5 - 2 = 3);
  session 4 scores 5 >= 5 - 1 = 4, the repair (end 4). Labels: none, none,
  rupture, repair, none. Phase: span 5 - 1 = 4, position 3 - 1 = 2,
  3 * 2 = 6 is not < 4 but < 8: "middle". Pattern "repaired".
- client 12, scores 5 5 5 2 2: the fall 5 -> 2 into session 4 starts an
  episode that never returns to 4: unresolved, labels none x 3, unresolved x 2.
  Phase: position 4 - 1 = 3, 3 * 3 = 9 is not < 8: "late". Pattern
  "unresolved".
- client 305, scores 4 4: fewer than 3 observed scores, not analysed
  (included False, pattern missing, counts <NA>).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_ts as at
from alliance_ts import export
from alliance_ts.errors import InvalidInputError
from alliance_ts.export import COLUMN_LABELS, EXTENSIONS, FORMATS, write_frame, write_workbook
from alliance_ts.io import read_table

pyreadstat = pytest.importorskip("pyreadstat")
openpyxl = pytest.importorskip("openpyxl")

READERS = {"sav": pyreadstat.read_sav, "dta": pyreadstat.read_dta}
INT_FORMAT = {"sav": "F8.0", "dta": "%9.0f"}  # no decimals, the default widths


def long_table(ids: list) -> pd.DataFrame:
    """The three clients of the module docstring, with the given ids, in unusual column names."""
    a, b, c = ids
    return pd.DataFrame({
        "pid": [a] * 5 + [b] * 5 + [c] * 2,
        "visit": [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2],
        "wai": [5.0, 5.0, 2.0, 5.0, 5.0, 5.0, 5.0, 5.0, 2.0, 2.0, 4.0, 4.0],
    })


def detect(ids: list) -> at.Detection:
    return at.detect(long_table(ids), rule="vshape", sd="pooled", pooled_sd=1.0, client="pid", session="visit",
                     score="wai")


@pytest.fixture(scope="module")
def res() -> at.Detection:
    return detect([1, 12, 305])


@pytest.fixture(scope="module")
def res_text() -> at.Detection:
    return detect(["007", "7", "NA"])


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_example_is_as_worked_by_hand(res):
    e = res.episodes
    assert e["client"].tolist() == [1, 12]
    assert e["start"].tolist() == [3, 4]
    assert e["end"].tolist() == [4, pd.NA]
    assert e["status"].tolist() == ["repaired", "unresolved"]
    assert e["phase"].tolist() == ["middle", "late"]
    assert res.clients["pattern"].tolist()[:2] == ["repaired", "unresolved"]
    assert res.clients["included"].tolist() == [True, True, False]


def test_formats_and_extensions():
    assert FORMATS == ("csv", "parquet", "sav", "dta", "xlsx")
    assert set(EXTENSIONS) == set(FORMATS)
    assert EXTENSIONS["sav"] == ".sav" and EXTENSIONS["dta"] == ".dta" and EXTENSIONS["xlsx"] == ".xlsx"
    # every library label fits Stata's 80 characters
    assert max(len(v) for v in COLUMN_LABELS.values()) <= 80


# --------------------------------------------------------------------------
# SPSS and Stata


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_episodes_codes_labels_and_formats(res, tmp_path, fmt):
    path = tmp_path / f"episodes.{fmt}"
    write_frame(res.episodes, path, fmt)
    df, meta = READERS[fmt](str(path))
    assert df["client"].tolist() == [1.0, 12.0]
    assert df["start"].tolist() == [3.0, 4.0]
    assert df["end"].iloc[0] == 4.0 and math.isnan(df["end"].iloc[1])  # <NA> -> system missing
    # status categories (repaired, unresolved): repaired = position 0 -> code 1, unresolved -> 2
    assert df["status"].tolist() == [1.0, 2.0]
    assert meta.variable_value_labels["status"] == {1: "repaired", 2: "unresolved"}
    # phase categories (early, middle, late): middle -> 2, late -> 3
    assert df["phase"].tolist() == [2.0, 3.0]
    assert meta.variable_value_labels["phase"] == {1: "early", 2: "middle", 3: "late"}
    assert df["rule"].tolist() == [1.0, 1.0]
    assert meta.variable_value_labels["rule"] == {1: "vshape"}
    # depth = pre - trough score = 5 - 2 = 3
    assert df["depth"].tolist() == [3.0, 3.0]
    labels = meta.column_names_to_labels
    assert labels["start"] == "Session of the rupture onset"
    assert labels["status"] == COLUMN_LABELS["status"]
    assert labels["client"] == "Client id"
    # ids and other whole numbers are displayed without decimals
    assert meta.original_variable_types["client"] == INT_FORMAT[fmt]
    assert meta.original_variable_types["end"] == INT_FORMAT[fmt]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
@pytest.mark.parametrize("table", ["episodes", "sessions", "clients"])
def test_every_categorical_is_its_position_plus_one(res, tmp_path, fmt, table):
    original = getattr(res, table)
    path = tmp_path / f"{table}.{fmt}"
    write_frame(original, path, fmt)
    df, meta = READERS[fmt](str(path))
    assert list(df.columns) == list(original.columns)
    categorical = [c for c in original.columns if isinstance(original[c].dtype, pd.CategoricalDtype)]
    assert categorical  # each table has at least one (rule/status/phase, label, pattern)
    for col in categorical:
        codes = original[col].cat.codes.to_numpy()
        expected = np.where(codes < 0, np.nan, codes + 1.0)
        np.testing.assert_array_equal(df[col].to_numpy(dtype=float), expected)
        cats = list(original[col].cat.categories)
        assert meta.variable_value_labels[col] == {i + 1: c for i, c in enumerate(cats)}
    for col in original.columns:
        assert meta.column_names_to_labels[col] == COLUMN_LABELS.get(col)


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_sessions_labels(res, tmp_path, fmt):
    path = tmp_path / f"sessions.{fmt}"
    write_frame(res.sessions, path, fmt)
    df, meta = READERS[fmt](str(path))
    # labels (none, rupture, repair, unresolved) -> codes 1..4:
    # client 1: none none rupture repair none = 1 1 2 3 1
    # client 12: none none none unresolved unresolved = 1 1 1 4 4; client 305: 1 1
    assert df["label"].tolist() == [1, 1, 2, 3, 1, 1, 1, 1, 4, 4, 1, 1]
    assert meta.variable_value_labels["label"] == {1: "none", 2: "rupture", 3: "repair", 4: "unresolved"}
    assert meta.column_names_to_labels["label"] == COLUMN_LABELS["label"]
    # episode: <NA> outside episodes -> system missing
    episode = df["episode"].tolist()
    assert [i for i, v in enumerate(episode) if not math.isnan(v)] == [2, 3, 8, 9]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_clients_bool_pattern_and_nullable_counts(res, tmp_path, fmt):
    path = tmp_path / f"clients.{fmt}"
    write_frame(res.clients, path, fmt)
    df, meta = READERS[fmt](str(path))
    # included True True False -> 1 1 0, with value labels no/yes
    assert df["included"].tolist() == [1, 1, 0]
    assert meta.variable_value_labels["included"] == {0: "no", 1: "yes"}
    # pattern (no_rupture, repaired, unresolved, mixed): repaired -> 2, unresolved -> 3, missing -> NaN
    assert df["pattern"].tolist()[:2] == [2.0, 3.0] and math.isnan(df["pattern"].iloc[2])
    assert meta.variable_value_labels["pattern"] == {1: "no_rupture", 2: "repaired", 3: "unresolved", 4: "mixed"}
    # Int64 counts: 1, 1, <NA> -> 1.0, 1.0, NaN
    assert df["n_ruptures"].tolist()[:2] == [1.0, 1.0] and math.isnan(df["n_ruptures"].iloc[2])
    assert df["reason"].tolist() == ["", "", "fewer than 3 observed scores (2)"]
    assert meta.column_names_to_labels["n_unresolved"] == "Number of unresolved episodes"


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_integer_ids_read_back_as_integers(res, tmp_path, fmt):
    path = tmp_path / f"clients.{fmt}"
    write_frame(res.clients, path, fmt)
    df, _ = read_table(path, text=("client",))
    # stored as doubles 1.0, 12.0, 305.0; whole numbers come back as Int64
    assert df["client"].dtype == "Int64"
    assert df["client"].tolist() == [1, 12, 305]
    twelve = df["client"].iloc[1]
    assert twelve == 12 and isinstance(twelve, (int, np.integer))


@pytest.mark.parametrize("fmt", ["sav", "dta"])
@pytest.mark.parametrize("table", ["episodes", "sessions", "clients"])
def test_text_ids_stay_text(res_text, tmp_path, fmt, table):
    original = getattr(res_text, table)
    path = tmp_path / f"{table}.{fmt}"
    write_frame(original, path, fmt)
    raw, _ = READERS[fmt](str(path))
    assert raw["client"].tolist() == original["client"].tolist()
    df, _ = read_table(path, text=("client",))
    assert df["client"].tolist() == original["client"].tolist()
    if table == "clients":
        # "007" keeps its zero, "NA" is an id, not a missing value
        assert df["client"].tolist() == ["007", "7", "NA"]
        assert meta_type(path, fmt, "client") in ("A3", "%-9s")


def meta_type(path: Path, fmt: str, col: str) -> str:
    _, meta = READERS[fmt](str(path), metadataonly=True)
    return meta.original_variable_types[col]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_own_labels_take_precedence(res, tmp_path, fmt):
    path = tmp_path / f"clients.{fmt}"
    write_frame(res.clients, path, fmt, labels={"client": "Patient number", "elsewhere": "ignored"})
    _, meta = READERS[fmt](str(path))
    assert meta.column_names_to_labels["client"] == "Patient number"
    assert meta.column_names_to_labels["pattern"] == COLUMN_LABELS["pattern"]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_column_types(tmp_path, fmt):
    df = pd.DataFrame({
        "flag": pd.array([True, None, False], dtype="boolean"),
        "count": pd.array([3, None, 70000], dtype="Int64"),
        "ratio": pd.array([0.25, None, 1.5], dtype="Float64"),
        "mixed": pd.Series([1, "a", None], dtype=object),
        "date": pd.to_datetime(["2024-01-01", None, "2024-03-04"]),
        "when": pd.to_datetime(["2024-01-01 10:30", "2024-01-02 00:00", None]).tz_localize("Europe/Berlin"),
        "days": pd.to_timedelta(["1D", "12h", None]),
        "grade": pd.Categorical(["low", None, "high"], categories=["low", "high"], ordered=True),
    })
    path = tmp_path / f"types.{fmt}"
    write_frame(df, path, fmt)
    out, meta = READERS[fmt](str(path))
    assert out["flag"].tolist()[::2] == [1, 0] and math.isnan(out["flag"].iloc[1])
    assert meta.variable_value_labels["flag"] == {0: "no", 1: "yes"}
    assert out["count"].tolist()[::2] == [3.0, 70000.0] and math.isnan(out["count"].iloc[1])
    # 70000 has 5 digits: the default widths (8 and 9) suffice
    assert meta.original_variable_types["count"] == INT_FORMAT[fmt]
    assert out["ratio"].tolist()[::2] == [0.25, 1.5] and math.isnan(out["ratio"].iloc[1])
    # numbers and text mixed: the text of each value, missing as ""
    assert out["mixed"].tolist() == ["1", "a", ""]
    # midnight-only datetimes are dates; others date-times, local clock time kept
    assert meta.original_variable_types["date"] in ("DATE11", "%td")
    assert out["date"].iloc[0] == pd.Timestamp("2024-01-01").date()
    assert meta.original_variable_types["when"] in ("DATETIME20", "%tc")
    assert out["when"].iloc[0] == pd.Timestamp("2024-01-01 10:30")
    # durations: 1 day and 12 hours = 0.5 days
    assert out["days"].tolist()[:2] == [1.0, 0.5]
    assert out["grade"].tolist()[::2] == [1.0, 2.0] and math.isnan(out["grade"].iloc[1])
    assert meta.variable_value_labels["grade"] == {1: "low", 2: "high"}
    if fmt == "sav":
        assert meta.variable_measure["grade"] == "ordinal"
        assert meta.variable_measure["flag"] == "nominal"


def test_wide_integers_get_a_wider_format(tmp_path):
    # 12345678901 has 11 digits, -5 a sign: F11.0 and %11.0f
    df = pd.DataFrame({"id": [12345678901, -5]})
    write_frame(df, tmp_path / "w.sav", "sav")
    write_frame(df, tmp_path / "w.dta", "dta")
    assert meta_type(tmp_path / "w.sav", "sav", "id") == "F11.0"
    assert meta_type(tmp_path / "w.dta", "dta", "id") == "%11.0f"


def test_stata_long_text_round_trips(tmp_path):
    # longer than Stata's 2,045-byte str: written as strL
    df = pd.DataFrame({"note": ["x" * 3000, "short"]})
    write_frame(df, tmp_path / "long.dta", "dta")
    out, _ = pyreadstat.read_dta(str(tmp_path / "long.dta"))
    assert [len(v) for v in out["note"]] == [3000, 5]


def test_bad_stata_names_are_all_named(tmp_path):
    df = pd.DataFrame({"a" * 33: [1], "two words": [2], "1st": [3], "in": [4], "ok_name": [5], "x-y": [6]})
    path = tmp_path / "bad.dta"
    with pytest.raises(InvalidInputError) as err:
        write_frame(df, path, "dta")
    text = str(err.value)
    assert "5 problems" in text
    assert f"column '{'a' * 33}': is 33 characters long" in text
    assert "column 'two words': holds ' '" in text
    assert "column '1st': starts with '1'" in text
    assert "column 'in': is a reserved word in Stata" in text
    assert "column 'x-y': holds '-'" in text
    assert "ok_name" not in text
    assert "rename the column or write csv, parquet or xlsx" in text
    assert files_in(tmp_path) == []


def test_bad_spss_names_are_all_named(tmp_path):
    df = pd.DataFrame({"_x": [1], "a b": [2], "by": [3], "end.": [4], "Score": [5], "score": [6], "b" * 65: [7]})
    with pytest.raises(InvalidInputError) as err:
        write_frame(df, tmp_path / "bad.sav", "sav")
    text = str(err.value)
    assert "6 problems" in text
    assert "column '_x': starts with '_'" in text
    assert "column 'a b': holds ' '" in text
    assert "column 'by': is a reserved word in SPSS" in text
    assert "column 'end.': ends with a period" in text
    assert "column 'score': SPSS ignores case in names, so it is the same as 'Score'" in text
    assert "is 65 bytes long" in text
    assert files_in(tmp_path) == []


def test_stata_value_label_names(tmp_path):
    # pyreadstat names a value-label set after the column plus a running number:
    # 32 characters + "0" = 33 > 32, which Stata refuses; 31 + "0" = 32 fits
    ok = pd.DataFrame({"c" * 31: pd.Categorical(["a"])})
    write_frame(ok, tmp_path / "ok.dta", "dta")
    bad = pd.DataFrame({"c" * 32: pd.Categorical(["a"])})
    with pytest.raises(InvalidInputError, match="at most 31 characters here"):
        write_frame(bad, tmp_path / "bad.dta", "dta")
    assert files_in(tmp_path) == ["ok.dta"]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_values_the_formats_cannot_hold(tmp_path, fmt):
    df = pd.DataFrame({
        "big": [2**53 + 1, 1],  # not exact as a double
        "nul": ["a\x00b", "c"],  # cut at the NUL
        "inf": [math.inf, 1.0],  # Stata has no infinity
        "dup": [1, 2],
    })
    with pytest.raises(InvalidInputError) as err:
        write_frame(df, tmp_path / f"x.{fmt}", fmt)
    text = str(err.value)
    assert "column 'big': 1 integer is beyond 2**53 = 9,007,199,254,740,992" in text
    assert "column 'nul': 1 cell holds a NUL character" in text
    assert ("column 'inf': 1 value is infinite" in text) == (fmt == "dta")
    assert "e.g. row 0" in text
    assert files_in(tmp_path) == []


def test_labels_too_long(tmp_path):
    df = pd.DataFrame({"x": [1]})
    with pytest.raises(InvalidInputError, match="Stata column labels hold at most 80 characters"):
        write_frame(df, tmp_path / "x.dta", "dta", labels={"x": "L" * 81})
    with pytest.raises(InvalidInputError, match="SPSS column labels hold at most 256 bytes"):
        write_frame(df, tmp_path / "x.sav", "sav", labels={"x": "é" * 129})  # 258 bytes
    long = pd.DataFrame({"x": pd.Categorical(["v" * 121])})
    with pytest.raises(InvalidInputError, match="1 category is longer than the 120 bytes a SPSS value label"):
        write_frame(long, tmp_path / "x.sav", "sav")
    assert files_in(tmp_path) == []


def test_duplicated_columns_refused_in_every_format(tmp_path):
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    for fmt in FORMATS:
        with pytest.raises(InvalidInputError, match="1 column name appears more than once"):
            write_frame(df, tmp_path / f"x.{fmt}", fmt)
    assert files_in(tmp_path) == []


def test_unknown_format(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown output format 'sas'; known: csv, parquet, sav, dta, xlsx"):
        write_frame(pd.DataFrame({"a": [1]}), tmp_path / "x.sas", "sas")
    write_frame(pd.DataFrame({"a": [1]}), tmp_path / "x.sav", ".SAV")  # case and a leading dot forgiven
    assert files_in(tmp_path) == ["x.sav"]


# --------------------------------------------------------------------------
# whole or nothing


def test_error_while_writing_leaves_no_file(res, tmp_path, monkeypatch):
    def broken(df, dst_path, **kwargs):
        Path(dst_path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pyreadstat, "write_sav", broken)
    with pytest.raises(OSError, match="disk full"):
        write_frame(res.episodes, tmp_path / "episodes.sav", "sav")
    assert files_in(tmp_path) == []  # neither the file nor the temporary one


def test_error_while_writing_keeps_the_previous_file(res, tmp_path, monkeypatch):
    path = tmp_path / "episodes.sav"
    write_frame(res.episodes, path, "sav")
    before = path.read_bytes()

    def broken(df, dst_path, **kwargs):
        raise pyreadstat.ReadstatError("something readstat refuses")

    monkeypatch.setattr(pyreadstat, "write_sav", broken)
    # a refusal by pyreadstat is an input error naming the format, not a raw traceback
    with pytest.raises(InvalidInputError, match="SPSS cannot hold this table: something readstat refuses"):
        write_frame(res.clients, path, "sav")
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["episodes.sav"]


def test_error_while_writing_excel_leaves_no_file(res, tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(pd.DataFrame, "to_excel", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_workbook({"episodes": res.episodes}, tmp_path / "result.xlsx")
    assert files_in(tmp_path) == []


# --------------------------------------------------------------------------
# CSV and Parquet


def test_csv(res_text, tmp_path):
    clients = res_text.clients.copy()
    clients["note"] = ["=HYPERLINK(1)", "-5", None]
    write_frame(clients, tmp_path / "c.csv", "csv")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "client,n_sessions,included,reason,n_ruptures,n_repaired,n_unresolved,pattern,sd,threshold,note"
    assert lines[1] == "007,5,True,,1,1,0,repaired,1.0,2.0,'=HYPERLINK(1)"  # neutralised
    assert lines[2] == "7,5,True,,1,0,1,unresolved,1.0,2.0,-5"  # a plain number is left alone
    assert lines[3] == "NA,2,False,fewer than 3 observed scores (2),,,,,,,"
    write_frame(clients, tmp_path / "c.csv", "csv", escape=False)
    assert (tmp_path / "c.csv").read_text().splitlines()[1].endswith(",=HYPERLINK(1)")
    df, _ = read_table(tmp_path / "c.csv", text=("client",))
    assert df["client"].tolist() == ["007", "7", "NA"]


def test_parquet_keeps_types(res_text, tmp_path):
    pytest.importorskip("pyarrow")
    clients = res_text.clients.copy()
    clients["mixed"] = pd.Series([1, "a", None], dtype=object)  # pyarrow alone refuses this column
    write_frame(clients, tmp_path / "c.parquet", "parquet")
    back = pd.read_parquet(tmp_path / "c.parquet")
    assert back["client"].tolist() == ["007", "7", "NA"]
    assert back["n_ruptures"].dtype == "Int64"
    assert isinstance(back["pattern"].dtype, pd.CategoricalDtype)
    assert back["mixed"].tolist()[:2] == ["1", "a"] and back["mixed"].isna().iloc[2]


# --------------------------------------------------------------------------
# Excel


def test_workbook_round_trip(res, tmp_path):
    path = tmp_path / "result.xlsx"
    manifest = {"rule": "vshape", "params": {"k": 2.0, "sd": "pooled", "window": {"max_decline": 3}},
                "observed_range": [2.0, 5.0], "seed": None, "files": []}
    write_workbook({"episodes": res.episodes, "sessions": res.sessions, "clients": res.clients}, path,
                   manifest=manifest)
    sheets = pd.read_excel(path, sheet_name=None)
    assert list(sheets) == ["episodes", "sessions", "clients", "manifest"]
    e = sheets["episodes"]
    assert e["client"].tolist() == [1, 12]
    assert e["status"].tolist() == ["repaired", "unresolved"]  # categories as text
    assert e["phase"].tolist() == ["middle", "late"]
    assert e["end"].iloc[0] == 4 and math.isnan(e["end"].iloc[1])
    c = sheets["clients"]
    assert c["included"].tolist() == [True, True, False]
    assert c["pattern"].iloc[:2].tolist() == ["repaired", "unresolved"] and pd.isna(c["pattern"].iloc[2])
    m = sheets["manifest"]
    assert list(m.columns) == ["key", "value"]
    rows = dict(zip(m["key"], m["value"]))
    assert list(rows) == ["rule", "params.k", "params.sd", "params.window.max_decline", "observed_range", "seed",
                          "files"]
    assert rows["rule"] == "vshape"
    assert rows["params.k"] == 2.0
    assert rows["params.window.max_decline"] == 3
    assert rows["observed_range"] == "2.0, 5.0"
    assert pd.isna(rows["seed"]) and pd.isna(rows["files"])

    # cell types: numbers, booleans, text; missing values are truly empty cells
    wb = openpyxl.load_workbook(path)
    ws = wb["clients"]
    assert ws["C2"].value is True and ws["C2"].data_type == "b"  # included
    assert ws["E4"].value is None  # n_ruptures <NA> for client 305
    assert ws["A3"].value == 12 and ws["A3"].data_type == "n"
    assert wb["episodes"]["F3"].value is None  # end <NA> of the unresolved episode


def test_workbook_text_ids_and_dates(tmp_path):
    df = pd.DataFrame({
        "client": ["007", "7", "NA"],
        "date": pd.to_datetime(["2024-01-01", "2024-01-08", None]),
        "when": pd.to_datetime(["2024-01-01 10:30", "2024-01-02 00:00", None]).tz_localize("UTC"),
    })
    write_workbook({"t": df}, tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx")["t"]
    assert [ws.cell(row=r, column=1).value for r in (2, 3, 4)] == ["007", "7", "NA"]
    assert ws["B2"].is_date and ws["B2"].number_format == "YYYY-MM-DD"
    assert ws["C2"].is_date and ws["C2"].value == pd.Timestamp("2024-01-01 10:30").to_pydatetime()
    assert ws["B4"].value is None
    df2, _ = read_table(tmp_path / "t.xlsx", text=("client",))
    assert df2["client"].tolist() == ["007", "7", "NA"]


def test_workbook_formulas_kept_as_text(res, tmp_path):
    clients = res.clients.copy()
    clients["client"] = ["=HYPERLINK(1)", "@cmd", "P3"]
    write_workbook({"clients": clients}, tmp_path / "safe.xlsx")
    back = pd.read_excel(tmp_path / "safe.xlsx", sheet_name="clients")
    # as written (the ids join back to the input), in text cells that are never run
    assert back["client"].tolist() == ["=HYPERLINK(1)", "@cmd", "P3"]
    assert openpyxl.load_workbook(tmp_path / "safe.xlsx")["clients"]["A2"].data_type == "s"

    write_workbook({"clients": clients}, tmp_path / "raw.xlsx", escape=False)
    back = pd.read_excel(tmp_path / "raw.xlsx", sheet_name="clients")
    assert back["client"].tolist() == ["=HYPERLINK(1)", "@cmd", "P3"]
    # verbatim, but a text cell, never a formula
    cell = openpyxl.load_workbook(tmp_path / "raw.xlsx")["clients"]["A2"]
    assert cell.value == "=HYPERLINK(1)" and cell.data_type == "s"


def test_manifest_formulas_are_text(tmp_path):
    write_workbook({}, tmp_path / "m.xlsx", manifest={"note": "=1+1", "n": -5})
    m = pd.read_excel(tmp_path / "m.xlsx", sheet_name="manifest")
    assert m["value"].tolist() == ["=1+1", -5]
    assert openpyxl.load_workbook(tmp_path / "m.xlsx")["manifest"]["B2"].data_type == "s"


def test_write_frame_xlsx_sheet_after_the_stem(res, tmp_path):
    write_frame(res.episodes, tmp_path / "episodes.xlsx", "xlsx")
    write_frame(res.episodes, tmp_path / "my [final] episodes table for the paper.xlsx", "xlsx")
    assert sheet_names(tmp_path / "episodes.xlsx") == ["episodes"]
    # [ and ] replaced by _, cut to Excel's 31 characters
    assert sheet_names(tmp_path / "my [final] episodes table for the paper.xlsx") == [
        "my _final_ episodes table for t"]


def sheet_names(path: Path) -> list:
    with pd.ExcelFile(path) as book:
        return list(book.sheet_names)


def test_too_many_rows_for_excel(res, tmp_path, monkeypatch):
    # the sessions table has 12 rows, the episodes table 2: only sessions is too long for 5
    monkeypatch.setattr(export, "EXCEL_MAX_ROWS", 5)
    with pytest.raises(InvalidInputError) as err:
        write_workbook({"episodes": res.episodes, "sessions": res.sessions}, tmp_path / "r.xlsx")
    text = str(err.value)
    assert "1 problem" in text
    assert "table 'sessions': 12 rows, more than the 5 data rows of an Excel sheet; write it as csv, parquet or sav" \
        in text
    with pytest.raises(InvalidInputError, match="table 'sessions': 12 rows"):
        write_frame(res.sessions, tmp_path / "sessions.xlsx", "xlsx")
    assert files_in(tmp_path) == []


def test_excel_cells_it_cannot_hold(tmp_path):
    df = pd.DataFrame({"long": ["x" * 32_768, "ok"], "ctrl": ["a\x01", "b"], "big": [2**60, 1]})
    with pytest.raises(InvalidInputError) as err:
        write_workbook({"t": df}, tmp_path / "t.xlsx")
    text = str(err.value)
    assert "table 't', column 'long': 1 cell is longer than the 32,767 characters of an Excel cell" in text
    assert "table 't', column 'ctrl': 1 cell holds control characters" in text
    assert "table 't', column 'big': 1 integer is beyond 2**53" in text
    assert files_in(tmp_path) == []


def test_sheet_names(res, tmp_path):
    tables = {"manifest": res.clients, "Clients": res.clients, "clients": res.clients, "a/b": res.clients,
              "x" * 32: res.clients, "History": res.clients}
    with pytest.raises(InvalidInputError) as err:
        write_workbook(tables, tmp_path / "r.xlsx", manifest={"rule": "vshape"})
    text = str(err.value)
    assert "5 problems" in text
    assert "sheet 'manifest': the manifest is written to the sheet 'manifest'" in text
    assert "sheet 'clients': Excel ignores case in sheet names, so it is the same sheet as 'Clients'" in text
    assert "sheet 'a/b': Excel sheet names cannot hold" in text
    assert f"sheet '{'x' * 32}': 32 characters long" in text
    assert "sheet 'History': 'History' is reserved by Excel" in text
    with pytest.raises(InvalidInputError, match="nothing to write"):
        write_workbook({}, tmp_path / "r.xlsx")
    assert files_in(tmp_path) == []


def test_an_empty_episodes_table(tmp_path):
    # a flat course 5 5 5 5 has no fall at all: no episodes, but the files still carry the labels
    flat = at.detect(pd.DataFrame({"client": [1] * 4, "session": [1, 2, 3, 4], "score": [5.0] * 4}),
                     rule="vshape", sd="pooled", pooled_sd=1.0)
    assert len(flat.episodes) == 0
    for fmt in FORMATS:
        write_frame(flat.episodes, tmp_path / f"episodes{EXTENSIONS[fmt]}", fmt)
    for fmt in ("sav", "dta"):
        df, meta = READERS[fmt](str(tmp_path / f"episodes.{fmt}"))
        assert df.shape == (0, 11)
        assert meta.variable_value_labels["status"] == {1: "repaired", 2: "unresolved"}
    assert pd.read_excel(tmp_path / "episodes.xlsx").columns.tolist() == flat.episodes.columns.tolist()


def test_no_temporary_files_after_success(res, tmp_path):
    for fmt in FORMATS:
        write_frame(res.clients, tmp_path / f"clients{EXTENSIONS[fmt]}", fmt)
    assert files_in(tmp_path) == sorted(f"clients{EXTENSIONS[f]}" for f in FORMATS)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
