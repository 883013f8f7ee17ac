"""Files in and out as a data manager has them: ids as written, strict reading, safe CSV cells.

Each test writes the real file and runs the command as a subprocess, as a user would.
"""


import numpy as np
import pandas as pd
import pytest
from cli_runner import run

import alliance_ts as at
from alliance_ts.errors import InvalidInputError
from alliance_ts.io import escape_formulas, iter_chunks, read_table


def course(client, scores):
    return [f"{client},{s},{x}" for s, x in enumerate(scores, start=1)]


def test_ids_are_what_the_user_wrote(tmp_path):
    # 007 and 7, 1e3 and 1000 are four clients; a client with the initials NA is a client;
    # a formula-looking id is written so that a spreadsheet shows it instead of running it
    lines = ["client,session,score"]
    lines += course("007", [50, 51, 50, 49])
    lines += course("7", [40, 41, 40, 41])
    lines += course("1e3", [30, 31, 32, 31])
    lines += course("1000", [20, 21, 22, 21])
    lines += course("NA", [45, 46, 44, 45])
    lines += course('"=HYPERLINK(""http://x"",""y"")"', [30, 31, 30, 30])
    lines += course("+SUM(A1)", [30, 31, 30, 30])
    lines += course("@cmd", [30, 31, 30, 30])
    lines += course("-5", [30, 31, 30, 30])
    (tmp_path / "ids.csv").write_text("\n".join(lines) + "\n")
    rc, out, err = run("detect", "ids.csv", "--out", "o", "--rule", "vshape", cwd=tmp_path)
    assert (rc, err) == (0, "")
    assert "9 clients (9 analysed)" in out
    raw = (tmp_path / "o" / "clients.csv").read_text().splitlines()
    ids = [line.rsplit(",", 9)[0] for line in raw[1:]]  # the first field (ids may hold commas)
    # sorted as text; formulas neutralised with a leading apostrophe; -5 is a plain number
    assert ids == ["'+SUM(A1)", "-5", "007", "1000", "1e3", "7", '"\'=HYPERLINK(""http://x"",""y"")"', "'@cmd", "NA"]
    sessions = pd.read_csv(tmp_path / "o" / "sessions.csv", dtype={"client": str}, keep_default_na=False)
    assert sessions.groupby("client").size().to_dict()["007"] == 4
    # --keep-formulas writes them verbatim
    rc, _, err = run("detect", "ids.csv", "--out", "raw", "--rule", "vshape", "--keep-formulas", "--quiet",
                     cwd=tmp_path)
    assert (rc, err) == (0, "")
    text = (tmp_path / "raw" / "clients.csv").read_text()
    assert "\n+SUM(A1)," in text and "\n@cmd," in text and "'" not in text


def test_streaming_keeps_one_type_for_every_chunk(tmp_path):
    # client 009 has 8 sessions; pieces of 3 rows used to read it as 9 in one piece and
    # 009 in the next (two clients); the written tables must not depend on --chunk-rows
    lines = ["client,session,score"] + course("009", [50, 51, 50, 38, 50, 51, 50, 52])
    lines += course("010", [40, 41, 40, 41, 40]) + course("9", [30, 31, 32])
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    outputs = {}
    for rows in ("1", "3", "5", "100"):
        rc, _, err = run("detect", "t.csv", "--out", f"o{rows}", "--stream", "--chunk-rows", rows, "--rule", "vshape",
                         "--param", "pooled_sd=1", "--quiet", cwd=tmp_path)
        assert (rc, err) == (0, ""), rows
        outputs[rows] = [(tmp_path / f"o{rows}" / f"{t}.csv").read_text() for t in ("episodes", "sessions", "clients")]
    assert outputs["1"] == outputs["3"] == outputs["5"] == outputs["100"]
    clients = pd.read_csv(tmp_path / "o3" / "clients.csv", dtype={"client": str})
    assert clients[["client", "n_sessions"]].values.tolist() == [["009", 8], ["010", 5], ["9", 3]]


def test_ragged_rows_and_repeated_columns_are_errors(tmp_path):
    (tmp_path / "ragged.csv").write_text("client,session,score\n1,1,50\n1,2\n1,3,40,99\n1,4,41\n\n1,5,40\n")
    rc, out, err = run("detect", "ragged.csv", "--out", "o", cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err == ("alliance-ts: error: input: 2 lines of 'ragged.csv' have a different number of fields than the "
                   "header (3); fix or remove them (a wrong delimiter? then give --sep); e.g. line 3 has 2 fields; "
                   "line 4 has 4 fields\n")
    assert not (tmp_path / "o").exists()
    # quoted fields may hold the delimiter and line breaks: counted by the csv module
    (tmp_path / "quoted.csv").write_text('client,session,score\n"a,b",1,50\n"a,b",2,51\n"c\nd",1,3,4\n')
    with pytest.raises(InvalidInputError, match=r"1 line of .* has a different .* e.g. line 5 has 4 fields"):
        read_table(tmp_path / "quoted.csv")
    (tmp_path / "dup.csv").write_text("client,session,score,score\n1,1,50,40\n")
    rc, _, err = run("detect", "dup.csv", "--out", "o", cwd=tmp_path)
    assert rc == 2 and err == ("alliance-ts: error: column 'score': appears 2 times in the header (columns 3, 4); "
                               "rename the copies so that every column has its own name\n")
    # streaming checks the same before the first piece
    with pytest.raises(InvalidInputError, match="different number of fields"):
        next(iter_chunks(tmp_path / "ragged.csv", chunk_rows=2))


def test_a_european_spreadsheet_export(tmp_path):
    # semicolons, decimal commas, cp1252 text (é in an id): the hints name the options,
    # and with them the file reads as written
    text = "client;session;score\nJosé;1;4,5\nJosé;2;4,25\nJosé;3;3,0\nAnn;1;4,0\nAnn;2;4,5\nAnn;3;4,5\n"
    (tmp_path / "eu.csv").write_bytes(text.encode("cp1252"))
    rc, _, err = run("detect", "eu.csv", "--out", "o", cwd=tmp_path)
    assert rc == 2 and "--encoding cp1252" in err and "is not 'utf-8-sig' text (byte 0xe9" in err
    rc, _, err = run("detect", "eu.csv", "--out", "o", "--encoding", "cp1252", cwd=tmp_path)
    assert rc == 2
    assert err.startswith("alliance-ts: error: column 'score': 6 rows with a non-numeric score (numbers written "
                          "with a decimal comma: pass decimal=',' when reading; on the command line --decimal ,)")
    rc, _, err = run("detect", "eu.csv", "--out", "o", "--encoding", "cp1252", "--decimal", ",", "--quiet",
                     "--rule", "vshape", cwd=tmp_path)
    assert (rc, err) == (0, "")
    sessions = pd.read_csv(tmp_path / "o" / "sessions.csv")
    assert sessions["client"].tolist()[:3] == ["Ann"] * 3
    assert sessions["score"].tolist() == [4.0, 4.5, 4.5, 4.5, 4.25, 3.0]
    rc, _, err = run("detect", "eu.csv", "--out", "o", "--encoding", "klingon", "--decimal", "..", cwd=tmp_path)
    assert rc == 2 and err.splitlines() == [
        "alliance-ts: error: encoding: unknown text encoding 'klingon' (e.g. utf-8, cp1252, latin-1)",
        "alliance-ts: error: decimal: the decimal mark must be one character ('.' or ','), got '..'",
    ]


def test_typed_files_keep_their_id_types(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    df = pd.DataFrame({"pid": [12.0, 12, 12, 7, 7, 7], "week": [1, 2, 3, 1, 2, 3],
                       "wai": [50.0, 38, 50, 40, 41, 40]})
    pyreadstat.write_sav(df, str(tmp_path / "t.sav"))
    rc, _, err = run("detect", "t.sav", "--out", "o", "--client", "pid", "--session", "week", "--score", "wai",
                     "--rule", "vshape", "--param", "pooled_sd=1", "--quiet", cwd=tmp_path)
    assert (rc, err) == (0, "")
    # SPSS stores 12 as 12.0; the id the user wrote is 12
    assert (tmp_path / "o" / "clients.csv").read_text().splitlines()[1].startswith("7,")
    assert "\n12,1,50.0," in (tmp_path / "o" / "sessions.csv").read_text()
    # integer ids in Parquet with a missing one stay integers in every piece
    pq = pd.DataFrame({"client": pd.array([1, 1, 1, 2, 2, 2, None], dtype="Int64"), "session": [1, 2, 3] * 2 + [1],
                       "score": np.arange(7.0)})
    pq.to_parquet(tmp_path / "t.parquet", index=False, row_group_size=2)
    pieces = list(iter_chunks(tmp_path / "t.parquet", chunk_rows=2, text=("client",)))
    assert {str(p["client"].dtype) for p in pieces} == {"Int64"}
    frame, _ = read_table(tmp_path / "t.parquet", text=("client",))
    assert str(frame["client"].dtype) == "Int64"


def test_escape_formulas_only_touches_text():
    df = pd.DataFrame({"client": ["=1+1", "\tx", "ok", "-1.5e3"], "score": [-1.0, 2.0, 3.0, 4.0],
                       "pattern": pd.Categorical(["@a", "b", "b", "b"])})
    out = escape_formulas(df)
    assert out["client"].tolist() == ["'=1+1", "'\tx", "ok", "-1.5e3"]
    assert out["score"].tolist() == [-1.0, 2.0, 3.0, 4.0]
    assert out["pattern"].tolist() == ["'@a", "b", "b", "b"]
    assert df["client"].tolist()[0] == "=1+1"  # the input is not changed


def test_the_api_reads_the_same_ids(tmp_path):
    (tmp_path / "t.csv").write_text("client,session,score\n007,1,5\n007,2,4\n7,1,3\n,1,2\n")
    frame, meta = read_table(tmp_path / "t.csv", text=("client",))
    assert frame["client"].tolist()[:3] == ["007", "007", "7"] and pd.isna(frame["client"].iloc[3])
    with pytest.raises(InvalidInputError, match=r"column 'client': 1 row with a missing client id; e.g. row 3"):
        at.detect(frame)


# --------------------------------------------------------------------------
# found by a bad-input hunt after the first version


def test_excel_ids_are_the_cells_as_written(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["client", "session", "score"])
    for s in range(1, 4):
        ws.append(["007", s, 30 + s])  # a text cell: stays 007
        ws.append(["NA", s, 40])  # a client's initials, not a missing id
        ws.append([12.0, s, "NA"])  # Excel stores 12 as 12.0; "NA" as a score is a missed session
    ws.append([None, 1, 3])  # an empty id cell: a missing id
    wb.save(tmp_path / "ok.xlsx")
    frame, _ = read_table(tmp_path / "ok.xlsx", text=("client",))
    assert frame["client"].tolist()[:3] == ["007", "NA", 12] and frame["client"].iloc[-1] is None
    assert frame["score"].isna().tolist()[:3] == [False, False, True]
    # the number 1 and the text "1" in one column print the same: an error, not one client
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["client", "session", "score"])
    for s in range(1, 4):
        ws.append([1, s, 40])
        ws.append(["1", s + 3, 40])
    wb.save(tmp_path / "clash.xlsx")
    rc, _, err = run("detect", "clash.xlsx", "--out", "o", cwd=tmp_path)
    assert rc == 2 and "client ids of different types print the same" in err and "1 and '1'" in err


def test_dask_reads_csv_as_strictly_as_in_memory(tmp_path):
    dask = pytest.importorskip("dask")
    from alliance_ts.distributed import read_dask

    # empty and NA scores are missed sessions in both paths
    (tmp_path / "e.csv").write_text("client,session,score\na,1,40\na,2,\na,3,NA\na,4,41\nb,1,40\nb,2,30\nb,3,40\n")
    frame, _ = read_table(tmp_path / "e.csv", text=("client",))
    with dask.config.set(scheduler="synchronous"):
        ddf = read_dask(tmp_path / "e.csv", format="csv", text=("client",))
        got = ddf.compute()
    assert got["score"].isna().tolist() == frame["score"].isna().tolist()
    (tmp_path / "d.csv").write_text("client,session,score,score\na,1,40,1\n")
    with pytest.raises(InvalidInputError, match="appears 2 times in the header"):
        read_dask(tmp_path / "d.csv", format="csv", text=("client",))
    (tmp_path / "l1.csv").write_bytes("client,session,score\nJosé,1,40\n".encode("cp1252"))
    with pytest.raises(InvalidInputError, match=r"--encoding cp1252"):
        read_dask(tmp_path / "l1.csv", format="csv", text=("client",))
    (tmp_path / "r.csv").write_text("client,session,score\na,1,40\na,2\n")
    with pytest.raises(InvalidInputError, match="line 3 has 2 fields"):
        read_dask(tmp_path / "r.csv", format="csv", text=("client",))


def test_missing_numeric_ids_are_reported_in_every_path(tmp_path):
    with pytest.raises(InvalidInputError, match="1 row with a missing client id"):
        at.detect(pd.DataFrame({"client": [float("nan")], "session": [4], "score": [40.0]}))
    pq = pd.DataFrame({"client": pd.array([1, 1, 1, 2, 2, 2, None], dtype="Int64"),
                       "session": [1, 2, 3, 1, 2, 3, 1], "score": np.arange(7.0)})
    pq.to_parquet(tmp_path / "t.parquet", index=False)
    for extra in ([], ["--stream", "--chunk-rows", "100"]):
        rc, _, err = run("detect", "t.parquet", "--out", "o", *extra, cwd=tmp_path)
        assert rc == 2 and "column 'client': 1 row with a missing client id; e.g. row 6" in err, extra


def test_item_columns_that_are_not_names():
    df = pd.DataFrame({"client": 1, "session": [1, 2, 3], "rupture": [1.0, 4, 1], "rater": "p"})
    for bad in (dict(rater=["rater"]), dict(rupture=["rupture"]), dict(resolved={"x": 1}), dict(rater=5)):
        with pytest.raises(InvalidInputError) as info:
            at.detect(df, rule="psq", **bad)
        (name,) = bad
        assert [p.where for p in info.value.problems] == [f"parameter {name!r}"]


def test_carriage_returns(tmp_path):
    # a lone CR is a line break to every CSV reader: "Sm\rith" splits a row, which is an error
    (tmp_path / "cr.csv").write_bytes(b"client,session,score\nSm\rith,1,40\nx,2,41\n")
    with pytest.raises(InvalidInputError, match=r"1 line of .* e.g. line 2 has 1 field$"):
        read_table(tmp_path / "cr.csv")
    # an id holding a CR is written quoted, so the table reads back with its rows
    from alliance_ts.io import write_table

    write_table(pd.DataFrame({"client": ["a\rb", "c"], "n": [1, 2]}), tmp_path / "out.csv")
    back = pd.read_csv(tmp_path / "out.csv")
    assert back["client"].tolist() == ["a\rb", "c"] and back["n"].tolist() == [1, 2]


def test_utf16_gets_its_own_hint(tmp_path):
    (tmp_path / "u.csv").write_bytes("client,session,score\nx,1,40\n".encode("utf-16"))
    with pytest.raises(InvalidInputError, match=r"UTF-16 text .* --encoding utf-16"):
        read_table(tmp_path / "u.csv")
