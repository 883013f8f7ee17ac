"""``alliance-ts monitor`` as a user runs it (a subprocess): create, append, refuse bad batches unchanged."""

import json

import pandas as pd
import pytest
from cli_runner import run

import alliance_ts as at


def write(path, rows):
    pd.DataFrame(rows, columns=["pid", "week", "srs"]).to_csv(path, index=False)


@pytest.fixture
def weeks(tmp_path):
    # client "007" drops to 30 in week 2 (<= 36: alert) and is back at 38 in week 3 (repaired);
    # client "7" stays at 39-40
    write(tmp_path / "w1.csv", [["007", 1, 38], ["7", 1, 40]])
    write(tmp_path / "w2.csv", [["007", 2, 30], ["7", 2, 39]])
    write(tmp_path / "w3.csv", [["007", 3, 38], ["7", 3, 40]])
    return tmp_path


COLUMNS = ["--client", "pid", "--session", "week", "--score", "srs"]


def test_create_and_append(weeks):
    code, out, err = run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "srs36",
                         *COLUMNS, cwd=weeks)
    assert code == 0, err
    assert "srs36: 2 session(s) of 2 client(s); 0 alert(s) opened" in out
    for week in ("w2.csv", "w3.csv"):
        code, out, err = run("monitor", week, "--state", "state.json", "--out", "alerts.csv", *COLUMNS,
                             "--caseload", "caseload.csv", cwd=weeks)
        assert code == 0, err
    alerts = pd.read_csv(weeks / "alerts.csv", dtype={"pid": str})
    assert list(alerts.columns[:6]) == ["pid", "week", "srs", "alert", "new", "repaired"]
    assert alerts[["pid", "week", "alert", "new", "repaired"]].values.tolist() == [
        ["007", 1, False, False, False], ["7", 1, False, False, False],
        ["007", 2, True, True, False], ["7", 2, False, False, False],
        ["007", 3, False, False, True], ["7", 3, False, False, False]]
    assert (weeks / "alerts.csv").read_text().count("pid,week") == 1  # header once
    assert alerts.loc[2, "evidence"] == 30 - 36
    # the same as the batch run on the three weeks
    whole = pd.concat([pd.read_csv(weeks / f"w{i}.csv", dtype={"pid": str}) for i in (1, 2, 3)])
    batch = at.monitor(whole, rule="srs36", client="pid", session="week", score="srs").sessions
    assert batch["alert"].tolist() == alerts.sort_values(["pid", "week"])["alert"].tolist()
    assert pd.read_csv(weeks / "caseload.csv").empty  # week 3 repaired the only alert
    state = json.loads((weeks / "state.json").read_text())
    assert state["rule"] == "srs36" and state["clients"] == ["007", "7"]


def test_bad_batch_changes_nothing(weeks):
    assert run("monitor", "w1.csv", "--state", "state.parquet", "--out", "alerts.csv", "--rule", "srs36", *COLUMNS,
               cwd=weeks)[0] == 0
    assert run("monitor", "w2.csv", "--state", "state.parquet", "--out", "alerts.csv", *COLUMNS, cwd=weeks)[0] == 0
    before = {name: (weeks / name).read_bytes() for name in ("state.parquet", "alerts.csv")}
    # week 2 again (sent twice), and a batch with an out-of-range score and week 1 out of order
    write(weeks / "bad.csv", [["007", 1, 35], ["7", 3, 45]])
    for batch, expected in (("w2.csv", "2 rows with a session at or before the client's last session"),
                            ("bad.csv", "outside the scale srs:total [0, 40]")):
        code, out, err = run("monitor", batch, "--state", "state.parquet", "--out", "alerts.csv", *COLUMNS,
                             cwd=weeks)
        assert code == 2 and expected in err and "Traceback" not in err
        assert {name: (weeks / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in weeks.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_state_mistakes(weeks):
    code, _, err = run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", *COLUMNS, cwd=weeks)
    assert code == 2 and "does not exist: name the rule" in err
    assert not (weeks / "state.json").exists() and not (weeks / "alerts.csv").exists()
    code, _, err = run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "drop",
                       *COLUMNS, cwd=weeks)
    assert code == 2 and "needs its prior noise SD" in err
    assert run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "drop", "--param",
               "s0=2", "--param", "d0=4", "--scale", "srs", *COLUMNS, cwd=weeks)[0] == 0
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "srs36",
                       *COLUMNS, cwd=weeks)
    assert code == 2 and "written by rule 'drop', not 'srs36'" in err
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", "--param", "k=3",
                       *COLUMNS, cwd=weeks)
    assert code == 2 and "only apply when a state is created" in err
    (weeks / "state.json").write_text((weeks / "state.json").read_text()[:100])
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", *COLUMNS, cwd=weeks)
    assert code == 2 and "cannot be read as a monitoring state" in err and "Traceback" not in err
    code, _, err = run("monitor", "w1.csv", "--state", "s.json", "--out", "alerts.txt", "--rule", "srs36", *COLUMNS,
                       cwd=weeks)
    assert code == 2 and "the alerts file is a CSV file" in err


def test_prior_from_a_reference_file(tmp_path):
    ref = at.simulate(40, rng=2, scale="srs", baseline=0.92).scores
    ref.to_csv(tmp_path / "ref.csv", index=False)
    new = at.simulate(10, rng=3, scale="srs", baseline=0.92).scores
    new[new["session"] <= 4].to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run("monitor", "new.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "drop",
                         "--prior", "ref.csv", "--scale", "srs", cwd=tmp_path)
    assert code == 0, err
    prior = at.fit_prior(ref, scale="srs")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["params"]["s0"] == prior.s0 and state["prior"]["source"] == "reference file ref.csv"
    # the ids are read as text from the CSV file ("1", "10", "2", ...), as the batch run reads them here
    expected = at.monitor(pd.read_csv(tmp_path / "new.csv", dtype={"client": str}), rule="drop", scale="srs",
                          prior=prior).sessions
    got = pd.read_csv(tmp_path / "alerts.csv", dtype={"client": str})
    assert got["client"].tolist() == expected["client"].tolist()
    assert got["alert"].tolist() == expected["alert"].tolist()
    pd.testing.assert_series_equal(got["evidence"], expected["evidence"], check_names=False)


def test_ids_as_numbers_after_text_are_refused(weeks):
    # week 1 from CSV: ids "007" and "7" as text; week 2 from Excel, where the ids are the numbers 7 and 12
    assert run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "srs36", *COLUMNS,
               cwd=weeks)[0] == 0
    before = {name: (weeks / name).read_bytes() for name in ("state.json", "alerts.csv")}
    pd.DataFrame({"pid": [7, 12], "week": [2, 1], "srs": [30, 39]}).to_excel(weeks / "w2.xlsx", index=False)
    code, _, err = run("monitor", "w2.xlsx", "--state", "state.json", "--out", "alerts.csv", *COLUMNS, cwd=weeks)
    assert code == 2 and "Traceback" not in err
    assert "1 client id(s) of this batch match a client already monitored written the other way" in err
    assert "7 here, '007' and '7' in the state" in err
    assert "1 other client id(s) of this batch are numbers where the clients already monitored have text ids " \
           "(e.g. 12)" in err
    assert "ids must be written the same way in every batch: read the file with the ids as text (CSV: ids are " \
           "read as text), or convert them" in err
    assert "np." not in err
    assert {name: (weeks / name).read_bytes() for name in before} == before
    assert json.loads((weeks / "state.json").read_text())["clients"] == ["007", "7"]


def test_dates_as_sessions_are_refused(weeks):
    write(weeks / "d1.csv", [["007", "2024-01-01", 38], ["7", "2024-01-01", 40]])
    for extra in ([], ["--rule", "drop", "--prior", "d1.csv", "--scale", "srs"]):
        code, _, err = run("monitor", "d1.csv", "--state", "state.json", "--out", "alerts.csv",
                           *(extra or ["--rule", "srs36"]), *COLUMNS, cwd=weeks)
        assert code == 2 and "Traceback" not in err
        assert "column 'week': monitoring numbers sessions: give each client's session number (1, 2, 3, ...)" in err
        assert "row 0: '2024-01-01'" in err
        assert "date-format" not in err and "to_datetime" not in err
        assert not (weeks / "state.json").exists() and not (weeks / "alerts.csv").exists()


def test_append_to_alerts_resaved_by_a_spreadsheet(weeks):
    # Excel's "CSV UTF-8": a byte-order mark before the header, lines ending in CRLF
    assert run("monitor", "w1.csv", "--state", "state.json", "--out", "alerts.csv", "--rule", "srs36", *COLUMNS,
               cwd=weeks)[0] == 0
    text = (weeks / "alerts.csv").read_text(encoding="utf-8")
    (weeks / "alerts.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    code, _, err = run("monitor", "w2.csv", "--state", "state.json", "--out", "alerts.csv", *COLUMNS, cwd=weeks)
    assert code == 0, err
    data = (weeks / "alerts.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfpid,week,srs,") and data.count("\ufeff".encode()) == 1
    assert data.count(b"\r\n") == data.count(b"\n") == 5  # header and 4 rows, every line ending as the file's did
    alerts = pd.read_csv(weeks / "alerts.csv", dtype={"pid": str}, encoding="utf-8-sig")
    assert list(alerts.columns[:3]) == ["pid", "week", "srs"]
    # "007" drops to 30 in week 2: 30 <= 36 opens an alert, evidence 30 - 36 = -6
    assert alerts[["pid", "week", "alert", "new", "evidence"]].values.tolist() == [
        ["007", 1, False, False, 2.0], ["7", 1, False, False, 4.0],
        ["007", 2, True, True, -6.0], ["7", 2, False, False, 3.0]]


def test_caseload_file_has_threshold_and_baseline(weeks):
    # drop with s0 = 2, d0 = 4, k = 2.5: "007" scores 38, 39, 38 (baseline n 3, mean 115/3 = 38.333,
    # M2 = 0.5 + 0.1667 = 0.6667), then 30: s^2 = (4*4 + 0.6667)/(4 + 3 - 1) = 2.7778, s = 1.6667,
    # threshold = 38.333 - 2.5*1.6667 = 34.167, z = (30 - 38.333)/1.6667 = -5: the alert opens
    write(weeks / "a.csv", [["007", 1, 38], ["007", 2, 39], ["007", 3, 38], ["7", 1, 40]])
    write(weeks / "b.csv", [["007", 4, 30], ["7", 2, 40]])
    args = ("--state", "state.json", "--out", "alerts.csv", *COLUMNS, "--caseload", "caseload.csv")
    assert run("monitor", "a.csv", *args, "--rule", "drop", "--param", "s0=2", "--param", "d0=4", cwd=weeks)[0] == 0
    code, _, err = run("monitor", "b.csv", *args, cwd=weeks)
    assert code == 0, err
    cl = pd.read_csv(weeks / "caseload.csv", dtype={"pid": str})
    assert cl["pid"].tolist() == ["007"] and cl["week"].tolist() == [4]
    assert cl["evidence"].iloc[0] == pytest.approx(-5.0)
    assert cl["baseline"].iloc[0] == pytest.approx(115 / 3)
    assert cl["threshold"].iloc[0] == pytest.approx(115 / 3 - 2.5 * 5 / 3)
