"""Research files in and out, tried as a data manager would: real SPSS, Stata, Excel and CSV
files written here, the command line run as a subprocess, the outputs read back."""

import json
import os

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from cli_runner import run

import alliance_ts as at
from alliance_ts.errors import InvalidInputError
from alliance_ts.io import read_table


def problems_of(call):
    with pytest.raises(InvalidInputError) as info:
        call()
    return [str(p) for p in info.value.problems]


@pytest.fixture(scope="module")
def trial():
    """A simulated trial with SPSS-style names, integer ids and a therapist per client."""
    df = at.simulate(60, rng=11).scores.rename(columns={"client": "pid", "session": "week", "score": "wai"})
    df["therapist"] = "T" + (df["pid"] % 4).astype(str)
    return df


def with_codes(trial):
    """The trial with 999 in three cells and -99 in one (undeclared missing-data codes)."""
    coded = trial.copy()
    coded.loc[[3, 40, 77], "wai"] = 999.0
    coded.loc[[10], "wai"] = -99.0
    return coded


# --------------------------------------------------------------------------
# missing codes


def test_undeclared_codes_are_an_error_naming_value_count_and_rows():
    df = pd.DataFrame({"client": [1] * 5 + [2] * 5, "session": list(range(1, 6)) * 2,
                       "score": [50, 51, 999, 49, 52, 40, 41, 42, 40, 999]})
    # client 1 without its 999: 49..52, w = max(52 - 49, 0.1 * 52) = 5.2, so far above 52 + 10.4;
    # the same for client 2 (40..42): the value is code-like and far in 2 of its 2 rows
    assert problems_of(lambda: at.detect(df)) == [
        "column 'score': 2 rows hold the value 999, which looks like a missing-data code (far outside the client's "
        "other scores in 2 of these rows): declare it as a missing-data code with missing=[999], or give the "
        "instrument's range with scale= so that scores are checked against it, or pass check_codes=False if these "
        "are real scores; e.g. row 2 (client 1, session 3, value 999); row 9 (client 2, session 5, value 999)"]
    declared = at.detect(df, missing=[999], rule="vshape", pooled_sd=1.0)
    blank = at.detect(df.replace(999, np.nan), rule="vshape", pooled_sd=1.0)
    pd.testing.assert_frame_equal(declared.sessions, blank.sessions)
    assert declared.info["missing_counts"] == {999.0: 2}
    # the scale is the other way to say what a score can be: 999 is then outside it
    assert problems_of(lambda: at.detect(df, scale="wai-sr"))[0].startswith(
        "column 'score': 2 rows with a score outside the scale wai-sr:total [12, 60]")
    assert len(at.detect(df, check_codes=False).sessions) == 10


def test_a_recurring_out_of_pattern_value_is_reported():
    # -5 in three clients whose scores are 30..40: not code-like, but far in each and below every other score
    rows = []
    for c in range(3):
        rows += [(c, s, v) for s, v in enumerate([35, 36, 34, -5, 35, 37], start=1)]
    df = pd.DataFrame(rows, columns=["client", "session", "score"])
    (problem,) = problems_of(lambda: at.detect(df))
    assert problem.startswith("column 'score': 3 rows hold the value -5, which recurs far outside the clients' "
                              "other scores (far outside the client's other scores in 3 of these rows)")
    # in one client only it is a rupture, not a code
    assert len(at.detect(df[df["client"] == 0], rule="vshape", pooled_sd=1.0).episodes) == 1


def test_a_deep_rupture_is_not_a_code():
    # a client falls from 35 to 9 (SRS-like): 9 is code-like but in pattern across the trial
    sim = at.simulate(400, rng=3, scale="srs")
    at.detect(sim.scores)  # no error: the check is made for codes, not for deep ruptures


def test_spss_file_with_undeclared_codes_fails_and_declared_codes_label_it(tmp_path, trial):
    pyreadstat.write_sav(with_codes(trial), str(tmp_path / "trial.sav"))
    cols = ["--client", "pid", "--session", "week", "--score", "wai"]
    rc, _, err = run("detect", "trial.sav", "--out", "o", *cols, cwd=tmp_path)
    assert rc == 2 and not (tmp_path / "o").exists()
    lines = err.splitlines()
    assert lines[0].startswith("alliance-ts: error: column 'wai': 1 row holds the value -99, which looks like a "
                               "missing-data code")
    assert "declare it as a missing-data code with --missing=-99" in lines[0]
    assert lines[1].startswith("alliance-ts: error: column 'wai': 3 rows hold the value 999")
    assert "row 3 (client 1, session 4, value 999)" in lines[1]

    rc, out, err = run("detect", "trial.sav", "--out", "o", *cols, "--missing=-99,999", "--keep", "therapist",
                       "--format", "sav", cwd=tmp_path)
    assert (rc, err) == (0, "")
    assert "note: no --scale given; observed scores range from" in out
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["input"]["missing_codes"] == {"-99": 1, "999": 3}
    # the same labels as the trial with those four cells empty
    clean = with_codes(trial).replace([999.0, -99.0], np.nan)
    direct = at.detect(clean, client="pid", session="week", score="wai", keep=["therapist"])
    episodes, meta = pyreadstat.read_sav(str(tmp_path / "o" / "episodes.sav"))
    assert episodes["pid"].tolist() == direct.episodes["client"].astype(float).tolist()
    assert episodes["start"].tolist() == direct.episodes["start"].astype(float).tolist()
    # status as codes with value labels, in category order
    assert meta.variable_value_labels["status"] == {1: "repaired", 2: "unresolved"}
    assert episodes["status"].map(meta.variable_value_labels["status"]).tolist() == \
        direct.episodes["status"].astype(str).tolist()
    # ids come back as the integers they were; the covariate is in the clients table
    clients, _ = read_table(tmp_path / "o" / "by_client.sav", text=("pid",))
    assert str(clients["pid"].dtype) == "Int64" and clients["pid"].tolist()[:3] == [1, 2, 3]
    assert clients["therapist"].tolist()[:3] == ["T1", "T2", "T3"]
    methods = (tmp_path / "o" / "methods.md").read_text()
    assert "4 cells (1 holding -99 and 3 holding 999) were recoded as missed sessions" in methods


def test_codes_declared_in_the_spss_file_keep_working(tmp_path, trial):
    coded = with_codes(trial)
    pyreadstat.write_sav(coded, str(tmp_path / "declared.sav"), missing_ranges={"wai": [999.0, -99.0]})
    rc, _, err = run("detect", "declared.sav", "--out", "o", "--client", "pid", "--session", "week", "--score",
                     "wai", "--quiet", cwd=tmp_path)
    assert (rc, err) == (0, "")
    clean = coded.replace([999.0, -99.0], np.nan)
    direct = at.detect(clean, client="pid", session="week", score="wai")
    got = pd.read_csv(tmp_path / "o" / "episodes.csv")
    assert got["start"].tolist() == direct.episodes["start"].tolist()


def test_streaming_finds_the_same_codes_as_in_memory(tmp_path, trial):
    with_codes(trial).to_csv(tmp_path / "coded.csv", index=False)
    cols = ["--client", "pid", "--session", "week", "--score", "wai"]
    whole = run("detect", "coded.csv", "--out", "a", *cols, cwd=tmp_path)
    pieces = run("detect", "coded.csv", "--out", "b", *cols, "--stream", "--chunk-rows", "7", cwd=tmp_path)
    assert whole[0] == pieces[0] == 2 and whole[2] == pieces[2]


# --------------------------------------------------------------------------
# dates


def test_dates_number_the_sessions_and_are_kept(tmp_path):
    csv = tmp_path / "visits.csv"
    csv.write_text("id,visit,srs\n"
                   "b,2024-03-15,30\nb,2024-03-01,31\nb,2024-03-08,30\n"
                   "a,2024-01-15,36\na,2024-01-01,37\na,2024-01-08,38\na,2024-01-29,20\na,2024-02-05,37\n")
    rc, _, err = run("detect", csv, "--out", "o", "--client", "id", "--session", "visit", "--score", "srs",
                     "--scale", "srs", "--rule", "vshape", "--param", "pooled_sd=1", "--quiet", cwd=tmp_path)
    assert (rc, err) == (0, "")
    sessions = pd.read_csv(tmp_path / "o" / "sessions.csv")
    # numbered by date order within each client; the date keeps the input's column name
    assert sessions[["id", "session", "visit"]].values.tolist() == [
        ["a", 1, "2024-01-01"], ["a", 2, "2024-01-08"], ["a", 3, "2024-01-15"], ["a", 4, "2024-01-29"],
        ["a", 5, "2024-02-05"], ["b", 1, "2024-03-01"], ["b", 2, "2024-03-08"], ["b", 3, "2024-03-15"]]
    episodes = pd.read_csv(tmp_path / "o" / "episodes.csv")
    assert episodes[["id", "start", "start_date", "end", "end_date"]].values.tolist() == [
        ["a", 4, "2024-01-29", 5, "2024-02-05"]]
    # weekly sessions: the fortnight gap before 2024-01-29 is a missed session (session 4)
    rc, _, err = run("detect", csv, "--out", "w", "--client", "id", "--session", "visit", "--score", "srs",
                     "--scale", "srs", "--session-every", "7D", "--quiet", cwd=tmp_path)
    assert (rc, err) == (0, "")
    weekly = pd.read_csv(tmp_path / "w" / "sessions.csv")
    assert weekly.loc[weekly["id"] == "a", "session"].tolist() == [1, 2, 3, 5, 6]
    assert json.loads((tmp_path / "w" / "manifest.json").read_text())["input"]["session_every"] == "7D"


def test_european_dates_need_their_format(tmp_path):
    csv = tmp_path / "eu.csv"
    csv.write_text("client;date;score\n1;01.02.2024;40\n1;08.02.2024;41\n1;15.02.2024;40\n1;2024-02-22;39\n")
    rc, _, err = run("detect", csv, "--out", "o", "--session", "date", "--date-format", "%d.%m.%Y", cwd=tmp_path)
    assert rc == 2
    assert err.splitlines() == ["alliance-ts: error: column 'date': 1 row(s) with a session date not written as "
                                "%d.%m.%Y; e.g. row 3 (value '2024-02-22')"]


def test_datetime_sessions_in_the_api():
    df = pd.DataFrame({"client": [1, 1, 1, 1],
                       "when": pd.to_datetime(["2024-01-22", "2024-01-01", "2024-01-08", "2024-01-15"], utc=True),
                       "score": [40.0, 41, 40, 41]})
    res = at.detect(df, session="when", check_codes=False)
    assert res.sessions["session"].tolist() == [1, 2, 3, 4]
    assert res.sessions["date"].dt.day.tolist() == [1, 8, 15, 22]
    assert res.info["dates"] is True
    assert problems_of(lambda: at.detect(df, session="when", session_every="weekly")) == [
        "parameter 'session_every': must be a positive duration such as '7D' or '14D', got 'weekly'"]


# --------------------------------------------------------------------------
# wide sheets and covariates


def test_to_long_with_a_range_covariates_and_trailing_empty_cells():
    wide = pd.DataFrame({"id": ["P001", "P002"], "therapist": ["T1", "T2"],
                         **{f"wai_{k}": [50.0, 50.0] for k in range(1, 21)}})
    wide.loc[1, [f"wai_{k}" for k in range(14, 21)]] = np.nan  # P002's last score is at session 13
    wide.loc[1, "wai_12"] = 35.0  # and it falls there
    long = at.to_long(wide, client="id", columns="wai_1..wai_20")
    assert long.columns.tolist() == ["id", "therapist", "session", "score"]
    # 20 rows for P001, 13 for P002: empty cells after the last score are not sessions
    assert long.groupby("id").size().tolist() == [20, 13]
    res = at.detect(long, client="id", keep=["therapist"], rule="vshape", pooled_sd=1.0)
    p2 = res.sessions[res.sessions["client"] == "P002"]
    assert p2["session"].max() == 13
    assert res.clients["therapist"].tolist() == ["T1", "T2"]
    # the same columns named by a pattern or a list
    pd.testing.assert_frame_equal(at.to_long(wide, client="id", columns=r"wai_\d+"), long)
    pd.testing.assert_frame_equal(at.to_long(wide, client="id"), long)


def test_covariates_must_be_constant_within_client():
    df = pd.DataFrame({"client": [1, 1, 1, 2, 2, 2], "session": [1, 2, 3] * 2, "score": [40.0, 41, 40, 30, 31, 30],
                       "site": ["A", None, "A", "B", "C", "B"]})
    assert problems_of(lambda: at.detect(df, keep=["site"])) == [
        "column 'site': holds more than one value within 1 client(s), so it cannot be kept as a client covariate "
        "(a column to keep must hold one value per client; missing cells are fine); e.g. client 2: 'B', 'C'"]
    ok = at.detect(df.assign(site=["A", None, "A", "B", "B", "B"]), keep="site")
    assert ok.clients["site"].tolist() == ["A", "B"]
    assert problems_of(lambda: at.detect(df, keep=["pattern"])) == [
        "parameter 'keep': 'pattern': the result tables have a column of that name; rename the input column"]


def test_wide_excel_sheet_from_the_command_line_and_its_plots(tmp_path, trial):
    wide = trial.pivot(index="pid", columns="week", values="wai")
    wide.columns = [f"wai_{c}" for c in wide.columns]
    wide = wide.reset_index()
    wide.insert(1, "therapist", "T" + (wide["pid"] % 4).astype(str))
    wide.insert(2, "arm", np.where(wide["pid"] % 2 == 0, "CBT", "TAU"))
    wide.to_excel(tmp_path / "wide.xlsx", index=False)
    last = f"wai_{int(trial['week'].max())}"
    rc, _, err = run("detect", "wide.xlsx", "--out", "o", "--wide", "--client", "pid", "--sessions",
                     f"wai_1..{last}", "--scale", "wai-sr", "--format", "xlsx", "--quiet", cwd=tmp_path)
    assert (rc, err) == (0, "")
    book = pd.read_excel(tmp_path / "o" / "results.xlsx", sheet_name=None)
    assert list(book) == ["episodes", "sessions", "clients", "by_client", "manifest"]
    by_client = book["by_client"]
    assert by_client.columns[:3].tolist() == ["pid", "therapist", "arm"]
    long = trial.dropna(subset=["wai"])
    direct = at.detect(long, client="pid", session="week", score="wai", scale="wai-sr")
    assert by_client["pattern"].tolist() == direct.clients["pattern"].astype(str).tolist()
    manifest = dict(zip(book["manifest"]["key"], book["manifest"]["value"]))
    assert manifest["rule"] == "scan" and manifest["input.keep"] == "therapist, arm"
    rc, out, err = run("plot", "wide.xlsx", "--out", "figs", "--wide", "--client", "pid", "--scale", "wai-sr",
                       cwd=tmp_path)
    assert (rc, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["clients.png", "manifest.json", "overview.png"]


def test_a_wide_sheet_with_two_numbered_families_asks_which(tmp_path):
    wide = pd.DataFrame({"id": [1], "wai_1": [40], "wai_2": [41], "phq_1": [10], "phq_2": [9]})
    wide.to_csv(tmp_path / "w.csv", index=False)
    rc, _, err = run("detect", "w.csv", "--out", "o", "--wide", "--client", "id", cwd=tmp_path)
    assert rc == 2
    assert err.splitlines() == [
        "alliance-ts: error: columns: the columns ending in a number have several prefixes ('wai_', 'phq_'); name "
        "the session columns with columns= (command line: --sessions), e.g. a range 'wai_1..wai_20'"]


# --------------------------------------------------------------------------
# writers


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_text_ids_with_leading_zeros_survive_spss_and_stata(tmp_path, fmt):
    df = pd.DataFrame({"client": ["007"] * 4 + ["7"] * 4 + ["NA"] * 4, "session": [1, 2, 3, 4] * 3,
                       "score": [50.0, 51, 38, 50, 40, 41, 40, 41, 30, 31, 30, 31]})
    res = at.detect(df, rule="vshape", pooled_sd=1.0)
    res.to_file(tmp_path / "out", format=fmt)
    back, meta = (pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta)(str(tmp_path / "out" / f"clients.{fmt}"))
    assert back["client"].tolist() == ["007", "7", "NA"]
    # pattern codes 1..4 with labels; 007 repaired its dip at session 3 (code 2), the others none (code 1)
    assert meta.variable_value_labels["pattern"] == {1: "no_rupture", 2: "repaired", 3: "unresolved", 4: "mixed"}
    assert back["pattern"].tolist() == [2, 1, 1]
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        [f"{t}.{fmt}" for t in ("episodes", "sessions", "clients", "by_client")] + ["methods.md", "manifest.json"])


def test_one_table_to_one_file_and_the_workbook(tmp_path):
    df = pd.DataFrame({"client": ["=HYPERLINK(1)"] * 4, "session": [1, 2, 3, 4], "score": [50.0, 51, 38, 50]})
    res = at.detect(df, rule="vshape", pooled_sd=1.0)
    assert res.to_file(tmp_path / "first.dta", table="by_client") == [str(tmp_path / "first.dta")]
    one, _ = pyreadstat.read_dta(str(tmp_path / "first.dta"))
    assert one[["start", "end", "depth"]].values.tolist() == [[3.0, 4.0, 13.0]]  # pre 51 - trough 38
    res.to_file(tmp_path / "all.xlsx")
    book = pd.read_excel(tmp_path / "all.xlsx", sheet_name=None)
    assert book["episodes"]["client"].tolist() == ["=HYPERLINK(1)"]  # a text cell, never run, as written
    with pytest.raises(InvalidInputError, match="parameter 'table': must be one of"):
        res.to_file(tmp_path / "x.csv", table="everything")


def test_dask_partitions_find_the_same_codes_and_keep_the_covariates(trial):
    import dask
    import dask.dataframe as dd

    coded = with_codes(trial)
    kw = dict(client="pid", session="week", score="wai")
    with pytest.raises(InvalidInputError) as whole:
        at.detect(coded, **kw)
    with dask.config.set({"scheduler": "synchronous", "dataframe.convert-string": False}):
        with pytest.raises(InvalidInputError) as parts:
            at.detect(dd.from_pandas(coded, npartitions=3, sort=False), **kw)
        on_dask = at.detect(dd.from_pandas(coded, npartitions=3, sort=False), missing=[999, -99], keep=["therapist"],
                            **kw)
    assert parts.value.problems == whole.value.problems
    in_memory = at.detect(coded, missing=[999, -99], keep=["therapist"], **kw)
    pd.testing.assert_frame_equal(on_dask.clients, in_memory.clients)
    assert on_dask.info == in_memory.info


# --------------------------------------------------------------------------
# found by a bad-input hunt


def test_repeated_missing_options_add_up_and_undeclared_codes_are_still_caught(tmp_path):
    csv = tmp_path / "codes.csv"
    csv.write_text("client,session,score\n" + "".join(
        f"{c},{s},{v}\n" for c, vals in ((1, [50, -99, 51, 49, 50]), (2, [45, 46, 999, 44, 45]),
                                        (3, [45, 46, 44, 45, 46])) for s, v in enumerate(vals, start=1)))
    rc, _, err = run("detect", csv, "--out", "o", "--missing=-99", cwd=tmp_path)
    # -99 declared; 999 (far outside client 2's 44..46) is not, and still stops the run
    assert rc == 2 and "hold" in err and "the value 999" in err and "--missing=999" in err
    rc, _, err = run("detect", csv, "--out", "o", "--missing=-99", "--missing", "999", "-q", cwd=tmp_path)
    assert (rc, err) == (0, "")
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["input"]["missing_codes"] == {"-99": 1, "999": 1}
    assert manifest["input"]["observed_range"] == [44, 51]


def test_one_bad_cell_among_decimal_commas_is_the_only_one_named(tmp_path):
    csv = tmp_path / "tiny.csv"
    csv.write_text("client;session;score\n1;1;45,5\n1;2;abc\n1;3;44,0\n1;4;46,5\n")
    for extra in ([], ["--stream", "--chunk-rows", "2"]):
        rc, _, err = run("detect", csv, "--out", "o", "--decimal", ",", *extra, cwd=tmp_path)
        assert rc == 2
        assert err.splitlines() == ["alliance-ts: error: column 'score': 1 row with a non-numeric score; e.g. row 1 "
                                    "(client '1', session 2, value 'abc')"]


def test_streamed_duplicates_are_one_problem_with_the_counts_added(tmp_path):
    rows = "".join(f"{c},{s},40\n{c},{s},41\n" for c in range(1, 7) for s in (1, 2))
    (tmp_path / "dup.csv").write_text("client,session,score\n" + rows)
    whole = run("detect", "dup.csv", "--out", "a", cwd=tmp_path)
    pieces = run("detect", "dup.csv", "--out", "b", "--stream", "--chunk-rows", "5", cwd=tmp_path)
    # 6 clients x 2 sessions, each written twice: 24 rows in 12 duplicated pairs
    assert whole[2] == pieces[2]
    assert whole[2].startswith("alliance-ts: error: columns 'client' x 'session': 24 rows share their client and "
                               "session with another row (12 duplicated pair(s))")


def test_dates_in_the_same_step_are_named_with_their_dates():
    df = pd.DataFrame({"client": [1] * 5, "d": pd.to_datetime(["2024-03-01", "2024-03-04", "2024-03-11",
                                                                "2024-03-19", "2024-03-25"]),
                       "score": [40.0, 41, 40, 41, 40]})
    # weekly steps from 03-01: 03-04 is 3 days on (rounds to session 1), 03-19 and 03-25 both round to session 4
    assert problems_of(lambda: at.detect(df, session="d", session_every="7D")) == [
        "columns 'client' x 'd': 4 rows fall in the same 7D step from their client's first date as another row, so "
        "they would be the same session (2 duplicated session(s)); e.g. row 0 (client 1, session 1 (2024-03-01)); "
        "row 1 (client 1, session 1 (2024-03-04)); row 3 (client 1, session 4 (2024-03-19)); row 4 (client 1, "
        "session 4 (2024-03-25))"]
    numbered = df.assign(d=range(1, 6))
    assert problems_of(lambda: at.detect(numbered, session="d", session_every="7D")) == [
        "parameter 'session_every': numbers sessions from their dates, but column 'd' does not hold dates; drop "
        "session_every (--session-every)"]
    text = df.assign(d=["01.03.2024", "04.03.2024", "11.03.2024", "19.03.2024", "25.03.2024"])
    assert "(dates? convert them with pandas.to_datetime(..., format='%d.%m.%Y')" in \
        problems_of(lambda: at.detect(text, session="d"))[0]


def test_wide_sheet_errors_name_the_sheets_rows():
    wide = pd.DataFrame({"id": ["a", None, "c"], **{f"wai_{k}": [40.0, 41.0, 42.0] for k in range(1, 4)}})
    long = at.to_long(wide, client="id")
    assert problems_of(lambda: at.detect(long, client="id")) == [
        "column 'id': 3 rows with a missing client id; e.g. row 1; row 1; row 1"]


def test_spss_declared_missing_values_are_counted_and_labels_carried(tmp_path):
    df = at.simulate(20, rng=4).scores.rename(columns={"client": "pid", "session": "week", "score": "wai"})
    df.loc[[2, 9], "wai"] = 99.0
    df.loc[[5], "wai"] = 95.0
    df["arm"] = (df["pid"] % 2 + 1).astype(float)
    pyreadstat.write_sav(df, str(tmp_path / "t.sav"), missing_ranges={"wai": [99.0, {"lo": 90.0, "hi": 96.0}]},
                         column_labels={"pid": "Participant", "arm": "Treatment arm", "wai": "WAI-SR total"},
                         variable_value_labels={"arm": {1.0: "CBT", 2.0: "TAU"}})
    rc, _, err = run("detect", "t.sav", "--out", "o", "--client", "pid", "--session", "week", "--score", "wai",
                     "--keep", "arm", "--format", "sav", "-q", cwd=tmp_path)
    assert (rc, err) == (0, "")
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["input"]["missing_recoded"] == {"wai": 3}  # two 99s and one 95
    assert "The data file declared 90 to 96 and 99 as missing for wai; 3 cells were read as missed sessions." in \
        (tmp_path / "o" / "methods.md").read_text()
    _, meta = pyreadstat.read_sav(str(tmp_path / "o" / "by_client.sav"))
    assert meta.column_names_to_labels["pid"] == "Participant"
    assert meta.column_names_to_labels["arm"] == "Treatment arm"
    assert meta.variable_value_labels["arm"] == {1.0: "CBT", 2.0: "TAU"}


def test_scores_too_large_to_compute_with_and_a_range_scale_message():
    df = pd.DataFrame({"client": [1] * 4, "session": [1, 2, 3, 4], "score": [1e308, 40, 41, 40]})
    assert problems_of(lambda: at.detect(df, check_codes=False)) == [
        "column 'score': 1 row with a score too large to compute with (larger than 1e+100 in size); e.g. row 0 "
        "(client 1, session 1, value 1e+308)"]
    assert problems_of(lambda: at.detect(df.assign(score=[70.0, 40, 41, 40]), scale=(0, 60))) == [
        "column 'score': 1 row with a score outside the scale [0, 60]; e.g. row 0 (client 1, session 1, value 70)"]


# --------------------------------------------------------------------------
# found by a newcomer's run of the README


def test_to_file_xlsx_folder_is_one_workbook_and_a_file_path_needs_a_table(tmp_path):
    df = pd.DataFrame({"client": [1] * 4, "session": [1, 2, 3, 4], "score": [50.0, 51, 38, 50]})
    res = at.detect(df, rule="vshape", pooled_sd=1.0)
    res.to_file(tmp_path / "labels", format="xlsx")
    assert sorted(os.listdir(tmp_path / "labels")) == ["manifest.json", "methods.md", "results.xlsx"]
    with pytest.raises(InvalidInputError, match=r"'.*out.sav' names one .sav file, but the result has 4 tables: "
                                                r"give table="):
        res.to_file(tmp_path / "out.sav")
    assert not (tmp_path / "out.sav").exists()


def test_codes_outside_a_declared_scale_get_the_missing_hint_and_dates_one_message():
    df = pd.DataFrame({"client": [1] * 5, "session": range(1, 6), "score": [40.0, 999, 41, -99, 40]})
    assert problems_of(lambda: at.detect(df, scale="wai-sr")) == [
        "column 'score': 2 rows with a score outside the scale wai-sr:total [12, 60] (missing-data codes? declare "
        "them with missing=[-99,999]; on the command line --missing=-99,999); e.g. row 1 (client 1, session 2, "
        "value 999); row 3 (client 1, session 4, value -99)"]
    text_dates = df.assign(session=["01.03.2024", "08.03.2024", "15.03.2024", "22.03.2024", "29.03.2024"],
                           score=[40.0, 41, 40, 41, 40])
    found = problems_of(lambda: at.detect(text_dates, session_every="7D"))
    assert len(found) == 1 and "--date-format %d.%m.%Y" in found[0]  # not also "drop session_every"


def test_outcomes_without_the_id_column_name_it():
    from alliance_ts.effects import outcome_association

    sim = at.simulate(60, rng=2)
    res = at.detect(sim.scores, scale="wai-sr")
    outcomes = sim.clients.rename(columns={"client": "pid"})
    with pytest.raises(InvalidInputError, match=r"\(name the outcomes' id column with client=\)"):
        outcome_association(res, outcomes, outcome="outcome")
